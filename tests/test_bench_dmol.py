"""bench.dmol keeps working: a tiny run of every part (timing, memory in a subprocess, JSON) and the
byte accounting of the memory-bound line."""

from __future__ import annotations

import json

from bench import dmol


def test_cost_counts_the_bytes_the_op_must_move():
    c = dmol.dmol_cost(batch=2, channels=3, height=4, width=5, k=10, itemsize=4, x_itemsize=1)
    pixels, params = 2 * 4 * 5, 2 * 4 * 5 * 100 * 4
    assert c.forward.bytes == params + pixels * 3 + pixels * 4  # read params, x; write the loss
    assert c.forward_backward.bytes == c.forward.bytes + pixels * 4 + params + pixels * 3 + params
    grey = dmol.dmol_cost(batch=1, channels=1, height=1, width=1, k=4, itemsize=2, x_itemsize=8)
    assert grey.forward.bytes == 12 * 2 + 8 + 4


def test_tiny_run(tmp_path):
    out = tmp_path / "dmol.json"
    result = dmol.main(["--batch=1", "--size=3", "--mixtures=2", "--reps=1", "--warmup=0", f"--json={out}"])
    for backend in ("reference", "torch"):
        for mode in ("fwd", "fwd_bwd"):
            assert result["timings"][f"{backend}:{mode}"]["median_s"] > 0
        assert result["memory"][backend]["peak_extra_bytes"] >= 0
    assert json.loads(out.read_text())["header"]["torch"]


def test_static_report_is_bench_static_s(tmp_path):
    """``bench.dmol --static`` reads the kernels through bench.static's one implementation
    (``_record_dmol`` + ``report_launches``); run in a subprocess, as bench.static drops the interpreter."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    from tests.test_bench_static import _toolchain_missing

    if _toolchain_missing():
        pytest.skip(_toolchain_missing())
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "static.json"
    proc = subprocess.run([sys.executable, "-m", "bench.dmol", "--static", "--batch=1", "--size=3", "--mixtures=2",
                           f"--json={out}"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads(out.read_text())["static"]
    assert {(r["name"], r["dtype"]) for r in reports} == {(k, d) for k in ("dmol_fwd", "dmol_bwd")
                                                          for d in ("float32", "bfloat16")}
    assert all(r["registers"] > 0 and r["kernel_loads_by_width"] and r["scan"] == "dmol" for r in reports)
    assert "| dmol_fwd | bfloat16 |" in proc.stdout
