"""``python -m bench.static`` keeps working: it compiles every scan kernel for sm_90 (no GPU needed)
and reports the fields docs/kernels.md's static table is made of."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"name", "ctas", "registers", "spill_bytes", "shared_bytes", "mma", "loop_loads_by_width",
          "barriers_per_step"}


def _toolchain_missing() -> str | None:
    try:
        from triton import knobs

        for tool in (knobs.nvidia.ptxas, knobs.nvidia.cuobjdump):
            if not os.path.exists(tool.path):
                return f"{tool.path} missing"
    except Exception as exc:  # triton absent, or without its NVIDIA backend
        return f"triton's sm_90 toolchain unavailable: {exc}"
    return None


@pytest.mark.skipif(_toolchain_missing() is not None, reason=str(_toolchain_missing()))
def test_static_report_tiny_preset(tmp_path):
    out = tmp_path / "static.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.static", "--preset", "tiny", "--others", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    kernels = doc["kernels"]
    names = {k["name"] for k in kernels}
    # both scans: a forward, a backward and a weight-gradient kernel each
    for scan in ("diagonal_bilstm", "row_lstm"):
        mine = [k for k in kernels if k["scan"] == scan]
        assert len(mine) >= 3, (scan, names)
    for k in kernels:
        assert FIELDS <= set(k), k
        assert k["ctas"] >= 1 and k["registers"] > 0 and k["mma"] in ("wgmma", "mma.sync", "fma")
        assert all(isinstance(n, int) and n > 0 for n in k["loop_loads_by_width"].values())
    assert "| kernel |" in proc.stdout  # the table
