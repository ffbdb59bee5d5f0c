"""bench/sampling.py on a tiny size: the report's schema and that its figures are consistent."""

from __future__ import annotations

import json

import pytest
import torch

sampling_bench = pytest.importorskip("bench.sampling", reason="bench/ is importable from a source checkout only")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the benchmark sets its own thread count


def test_tiny_benchmark_run(tmp_path, capsys, restore_threads):
    out = tmp_path / "sampling.json"
    report = sampling_bench.main(["--case", "mnist", "--case", "rgb32_row_lstm", "--size", "3", "--batch", "2",
                                  "--naive-steps", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert {"device", "torch", "commit", "date", "threads"} <= set(report["machine"])
    mnist, rgb = report["results"]
    assert (mnist["case"], mnist["layers"], mnist["hidden"], mnist["subpixels"]) == ("mnist", 7, 16, 9)
    assert rgb["subpixels"] == 27 and rgb["levels"] == 256
    for r in report["results"]:
        assert r["cached_s"] > 0 and r["naive_step_s"] > 0
        assert r["naive_s"] == pytest.approx(r["naive_step_s"] * r["subpixels"])
        assert r["speedup"] == pytest.approx(r["naive_s"] / r["cached_s"])
    assert "mnist" in capsys.readouterr().out
