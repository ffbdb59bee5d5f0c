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
