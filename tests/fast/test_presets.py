"""The presets of docs/results.md: three kinds, one architecture size and one step budget."""

from __future__ import annotations

from fastpixel import presets

NAMES = ("cpu_diagonal_bilstm_digits", "cpu_row_lstm_digits", "cpu_pixelcnn_digits")


def test_ordering_presets_differ_only_in_the_model_kind():
    configs = [presets.resolve(name, {}) for name in NAMES]
    assert [c["model"] for c in configs] == ["diagonal_bilstm", "row_lstm", "pixelcnn"]
    strip = lambda c: {k: v for k, v in c.items() if k not in ("model", "preset")}  # noqa: E731
    assert strip(configs[0]) == strip(configs[1]) == strip(configs[2])
    c = configs[0]
    assert (c["hidden"], c["layers"], c["output_hidden"]) == (16, 7, 32)  # the paper's binarized-MNIST sizes
    assert c["dataset"] == "builtin_mnist" and c["binarize"] == "fixed" and c["steps"] == 1500
