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
        assert sum(k["kernel_loads_by_width"].values()) >= sum(k["loop_loads_by_width"].values())
    # --others: the DMoL loss's two kernels (B=2, 8x8 RGB, K=10), every one reading global memory
    dmol = {k["name"]: k for k in kernels if k["scan"] == "dmol"}
    assert set(dmol) == {"dmol_fwd", "dmol_bwd"}, names
    assert all(k["kernel_loads_by_width"] for k in dmol.values())
    assert dmol["dmol_fwd"]["constexprs"]["COMPUTE_GRAD"] is True
    assert "| dmol_fwd |" in proc.stdout and "| kernel |" in proc.stdout  # the table


# -- the counts against counts made by hand --------------------------------------------------------
DATA = ROOT / "tests" / "data"


def _hand_fixture(ncg: int):
    import bench.static as st

    sass = (DATA / f"static_hand_ncg{ncg}.sass").read_text()
    ttgir = (DATA / f"static_hand_ncg{ncg}.ttgir").read_text()
    args = dict(W=128, NCG=ncg, NCH=4, T_BEGIN=0, T_END=8, BLOCK_J=32)
    lines, loops = st.read_sass(sass)
    return st.step_loop_counts(lines, loops, st._step_source(ttgir), args), lines, loops


def test_step_counts_equal_hand_counts_from_the_sass():
    """tests/static_hand_kernel.py compiled for sm_90 by triton 3.9 with NCG = 1 (the chunk loop
    folded away, as the Row LSTM's at the CIFAR preset), its SASS and TTGIR stored in tests/data.
    Counted by hand from static_hand_ncg1.sass: the step loop is instructions 87-190 (the BRA at 190
    goes back to 0x570); inside it the column loop, instructions 94-154 (BRA 0x5e0), holds per
    iteration 1 LDG.E.128 and 3 LDGSTS.E.BYPASS.128 (4 128-bit loads), 5 BAR.SYNC and 4 HMMA.16816;
    after it the step has 3 BAR.SYNC and the group barrier's wait, instructions 174-183 (BRA P6,
    0xae0), with one LDG.E.STRONG.GPU (32-bit) and no barrier per poll. W / BLOCK_J = 4 columns
    tiles: per step 4 x 4 = 16 128-bit loads, 4 x 5 + 3 = 23 barriers, 4 x 4 = 16 HMMA, 1 32-bit load
    (one poll). Before this count followed trip counts by nesting depth, the folded chunk loop made
    the column loop "depth 2" and its counts came out 4x too small (the issue's Row LSTM backward)."""
    counts, lines, loops = _hand_fixture(1)
    assert len(lines) == 208 and (87, 190) in loops and (94, 154) in loops and (174, 183) in loops
    assert counts.matched and counts.trips == {"0..W/32": 4}
    assert counts.loads == {"32": 1, "128": 16}
    assert counts.barriers == 23
    assert counts.mma == 16
    assert counts.spin_loops == 1 and counts.per_poll == {"loads": 1, "barriers": 0}
    assert counts.inner_loops == 1


def test_loops_the_source_does_not_have_are_flagged_not_guessed():
    """With NCG = 2 the chunk loop stays, software-pipelined, and ptxas splits it into two SASS loops
    (a main loop and a remainder): the SASS has more loops than the source, no mapping is claimed."""
    counts, _, _ = _hand_fixture(2)
    assert not counts.matched and counts.trips == {} and counts.inner_loops == 3


def test_sass_is_read_past_address_0x10000():
    """triton 3.6's tools.disasm stops at the first 5-digit address; read_sass reads every one, and
    a predicated two-operand branch (BRA P2, 0x...) closes a loop too."""
    import bench.static as st

    body = [f"        /*{a:04x}*/                   NOP ;" for a in range(0xFFC0, 0x10040, 0x10)]
    text = "\n".join([
        "\t\tFunction : k",
        *body,
        "        /*10040*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;",
        "        /*10050*/                   LDG.E.128 R4, desc[UR4][R2.64] ;",
        "        /*10060*/              @!P0 BRA P2, 0xffd0 ;",
        "        /*10070*/                   EXIT ;",
    ])
    lines, loops = st.read_sass(text)
    assert len(lines) == len(body) + 4 and lines[-1] == "EXIT"
    assert loops == [(1, len(body) + 2)]
    counts = st.step_loop_counts(lines, loops)
    assert counts.barriers == 1 and counts.loads == {"128": 1}


@pytest.mark.skipif(_toolchain_missing() is not None, reason=str(_toolchain_missing()))
def test_row_lstm_backward_counts_follow_the_real_trip_counts():
    """The issue's case at the CIFAR preset (bf16, G = 8 so NCG = 1 is folded): per step 111 128-bit
    loads and 192 HMMA per warp (4 BK-chunks of h), on triton 3.6 and 3.9 alike."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = """if 1:
        import json, torch, bench.static as st
        [launch] = [x for _, x in st._record_scans(16, 32, 128, torch.bfloat16)
                    if x.fn.__name__ == "_row_lstm_bwd_tiled_kernel"]
        kernel, log, constexprs, ints, grid = st._compile(launch)
        lines, loops = st._sass(kernel.asm["cubin"])
        c = st.step_loop_counts(lines, loops, st._step_source(kernel.asm["ttgir"]), {**ints, **constexprs})
        print(json.dumps(dict(loads=c.loads, mma=c.mma, matched=c.matched, trips=c.trips, poll=c.per_poll)))
    """
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["matched"] and got["trips"]["0..HID/32"] == 4, got
    assert got["loads"]["128"] == 111 and got["mma"] == 192, got
    assert got["poll"] == {"loads": 1, "barriers": 0}, got
