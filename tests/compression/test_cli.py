"""fastpixel-compress / fastpixel-decompress: round trips through every input and output kind, the
summary line, and one-line errors (exit 2) that leave nothing written and overwrite nothing."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fastpixel.cli import compress as compress_cli
from fastpixel.cli import decompress as decompress_cli
from tests.cli_helpers import one_line_error
from tests.compression.helpers import sample_images, tiny_model

pytest.importorskip("constriction")

C, D = "fastpixel-compress", "fastpixel-decompress"


@pytest.fixture(scope="module")
def digits_stream(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    summary = compress_cli.run(["--pretrained", "digits", "builtin_mnist:test", "--limit", "12", "--chunk-size", "5",
                                "-o", str(folder / "d.fpx"), "--quiet"])
    return folder, summary


def test_compress_summary_and_decompress_to_pngs_and_npz(digits_stream, tmp_path, capsys):
    folder, summary = digits_stream
    assert summary["images"] == 12 and summary["bytes"] == (folder / "d.fpx").stat().st_size
    assert summary["overhead"] > summary["coding_overhead"] >= 0 and summary["decode_images_per_s"] > 0
    assert abs(summary["nll_bits_per_dim"] - 0.15) < 0.05
    decompress_cli.run([str(folder / "d.fpx"), "-o", str(tmp_path / "pngs"), "--quiet"])  # the model: from the stream
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:06d}.png" for i in range(12)]
    decompress_cli.run([str(folder / "d.fpx"), "-o", str(tmp_path / "d.npz"), "--pretrained", "digits", "--quiet"])
    with np.load(tmp_path / "d.npz") as z:
        images, levels = z["images"], int(z["levels"])
    assert images.shape == (12, 1, 28, 28) and levels == 2 and set(np.unique(images)) <= {0, 1}
    # PNGs and the npz compress back to the very same stream
    for source in (tmp_path / "pngs", tmp_path / "d.npz"):
        out = tmp_path / f"again-{source.name}.fpx"
        compress_cli.run(["--pretrained", "digits", str(source), "--chunk-size", "5", "-o", str(out), "--quiet"])
        assert out.read_bytes() == (folder / "d.fpx").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "images/s" in printed
    info = decompress_cli.run([str(folder / "d.fpx"), "--info"])
    assert info["header"]["model"]["name"] == "digits" and [c[0] for c in info["chunks"]] == [5, 5, 2]
    assert '"cpu_capability"' in capsys.readouterr().out


def test_any_saved_model_rgb_npy_and_pngs(tmp_path):
    model = tiny_model("pixelcnn", channels=3, levels=4)
    model.save_pretrained(tmp_path / "m")
    images = sample_images(model, 3, 5, 4).numpy().astype(np.uint8)
    np.save(tmp_path / "x.npy", images)
    model_dir = str(tmp_path / "m")
    compress_cli.run(["--model", model_dir, str(tmp_path / "x.npy"), "-o", str(tmp_path / "x.fpx"), "--quiet"])
    decompress_cli.run([str(tmp_path / "x.fpx"), "--model", str(tmp_path / "m"), "-o", str(tmp_path / "p"), "--quiet"])
    compress_cli.run(["--model", str(tmp_path / "m"), str(tmp_path / "p"), "-o", str(tmp_path / "y.fpx"), "--quiet"])
    assert (tmp_path / "y.fpx").read_bytes() == (tmp_path / "x.fpx").read_bytes()
    decompress_cli.run([str(tmp_path / "y.fpx"), "--model", model_dir, "-o", str(tmp_path / "y.npy"), "--quiet"])
    assert np.array_equal(np.load(tmp_path / "y.npy"), images)


def test_nothing_is_overwritten_without_overwrite(digits_stream, tmp_path, capsys):
    folder, _ = digits_stream
    out = tmp_path / "o.fpx"
    out.write_bytes(b"keep")
    one_line_error(compress_cli.main, ["--pretrained", "digits", "builtin_mnist:test", "--limit", "2", "-o", str(out)],
                   capsys, C, "exists", "--overwrite")
    assert out.read_bytes() == b"keep"
    compress_cli.run(["--pretrained", "digits", "builtin_mnist:test", "--limit", "2", "-o", str(out), "--overwrite",
                      "--quiet"])
    assert out.read_bytes()[:4] == b"\x89FPX"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "mine.txt").write_text("keep")
    one_line_error(decompress_cli.main, [str(folder / "d.fpx"), "-o", str(tmp_path / "dir")], capsys, D, "exists")
    assert (tmp_path / "dir" / "mine.txt").read_text() == "keep"


@pytest.mark.parametrize("damage", ["flip", "truncate", "newer", "model"])
def test_a_bad_stream_is_one_line_and_writes_nothing(digits_stream, tmp_path, capsys, damage):
    folder, _ = digits_stream
    data = (folder / "d.fpx").read_bytes()
    argv_model = []
    if damage == "flip":
        data = data[:-60] + bytes([data[-60] ^ 1]) + data[-59:]
        fragments = ("corrupted",)
    elif damage == "truncate":
        data = data[: len(data) // 2 + 100]
        fragments = ("truncated",)
    elif damage == "newer":
        data = data[:8] + struct.pack("<H", 3) + data[10:]
        fragments = ("format version 3", "upgrade")
    else:
        other = tiny_model("diagonal_bilstm", channels=1, levels=2)
        other.save_pretrained(tmp_path / "other")
        argv_model = ["--model", str(tmp_path / "other")]
        fragments = ("decode with the model that encoded",)
    (tmp_path / "bad.fpx").write_bytes(data)
    for out in ("out", "out.npz"):
        one_line_error(decompress_cli.main, [str(tmp_path / "bad.fpx"), "-o", str(tmp_path / out), *argv_model],
                       capsys, D, *fragments)
        assert not (tmp_path / out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bad.fpx"] + (["other"] if argv_model else []))


def test_data_that_do_not_fit_the_model(tmp_path, capsys):
    np.save(tmp_path / "grey.npy", np.full((2, 28, 28), 200, dtype=np.uint8))
    np.save(tmp_path / "float.npy", np.zeros((2, 1, 28, 28)))
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 28, 28), dtype=np.uint8))
    cases = {"grey.npy": ("values in [200, 200]", "2 levels", "binarize"), "float.npy": ("float64",),
             "rgb.npy": ("3-channel",), "missing.png": ("not found",), "nosuch:test": ("no such file",)}
    for name, fragments in cases.items():
        out = tmp_path / f"{name}.fpx"
        one_line_error(compress_cli.main, ["--pretrained", "digits", str(tmp_path / name) if "." in name else name,
                                           "-o", str(out)], capsys, C, *fragments)
        assert not out.exists()
    from PIL import Image

    Image.fromarray(np.full((4, 4), 100, dtype=np.uint8), "L").save(tmp_path / "grey.png")
    one_line_error(compress_cli.main, ["--pretrained", "digits", str(tmp_path / "grey.png"), "-o",
                                       str(tmp_path / "g.fpx")], capsys, C, "not on the model's 2-level grid")
