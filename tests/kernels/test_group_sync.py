"""The scans' CTA groups cannot hang: a refused cooperative launch falls back to one CTA per scan,
and a group barrier whose CTAs never all arrive traps after a bounded wait (kernels/_group_sync.py).

The fallback runs here: the refusal is simulated (the cooperative launch seam raises the error the
CUDA driver gives through triton's launcher), and the G = 1 relaunch runs under the interpreter
and must equal both the grouped scan (the interpreter's one-launch-per-step path) and the
reference. The timeout needs a GPU (``gpu`` tier): a kernel waits for a CTA that does not exist,
in a subprocess, since a trap leaves the CUDA context unusable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fastpixel import reference

ROOT = Path(__file__).resolve().parents[2]
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}
REFUSAL = "Triton Error [CUDA]: too many blocks in cooperative launch"


def _refuse_cooperative_launches(monkeypatch) -> list[tuple]:
    """From here on, the cooperative path is taken as on a GPU (not the interpreter's per-step
    launches) and every cooperative launch is refused by the 'driver' as CUDA refuses one (triton's
    launcher raises RuntimeError with cuGetErrorString's text); returns the grids that were asked for."""
    from fastpixel.kernels import _group_sync

    asked: list[tuple] = []

    def refuse(kernel, grid, args, meta):
        asked.append(tuple(grid))
        raise RuntimeError(REFUSAL)

    monkeypatch.setattr(_group_sync, "triton_interpreter_enabled", lambda: False)
    monkeypatch.setattr(_group_sync, "_cooperative_launch", refuse)
    monkeypatch.setattr(_group_sync, "_REFUSED", set())
    return asked


def _diag_inputs(device, dtype, seed=3):
    g = torch.Generator().manual_seed(seed)
    b, hid, hh, ww = 1, 20, 3, 4  # two chunks of 16 units: G = 2 is a real split
    gates = [torch.randn(b, 4 * hid, hh, ww, generator=g, dtype=torch.float64).to(device, dtype) for _ in range(2)]
    ws = [((torch.rand(4 * hid, hid, 2, 1, generator=g, dtype=torch.float64) * 2 - 1) / 4).to(device, dtype)
          for _ in range(2)]
    cot = torch.randn(b, hid, hh, ww, generator=g, dtype=torch.float64).to(device, dtype)
    return gates[0], ws[0], gates[1], ws[1], cot


def _assert_all_close(names, got, want, dtype):
    for name, a, b in zip(names, got, want):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m, name=name: f"{name}: {m}")


def test_refused_cooperative_diagonal_scan_reruns_with_one_cta_per_scan(device, monkeypatch):
    from fastpixel.kernels import _group_sync
    from fastpixel.kernels import diagonal_bilstm as kernels

    dtype = torch.float64
    g_lr, w_lr, g_rl, w_rl, cot = _diag_inputs(device, dtype)
    # the grouped scan as it runs here (G = 2: one launch per step under the interpreter)
    grouped = kernels.diagonal_bilstm_forward(g_lr, w_lr, g_rl, w_rl, ctas_per_scan=2)
    grouped_grads = kernels.diagonal_bilstm_backward(cot, *grouped[1:], w_lr, w_rl, ctas_per_scan=2)

    asked = _refuse_cooperative_launches(monkeypatch)
    with pytest.warns(RuntimeWarning, match="refused a cooperative launch"):
        out, pre, c, h = kernels.diagonal_bilstm_forward(g_lr, w_lr, g_rl, w_rl, ctas_per_scan=2)
    with pytest.warns(RuntimeWarning, match="refused a cooperative launch"):
        grads = kernels.diagonal_bilstm_backward(cot, pre, c, h, w_lr, w_rl, ctas_per_scan=2)
    assert asked == [(1, 2, 2), (1, 2, 2)], asked  # each grouped launch was tried first, with G = 2
    assert _group_sync._REFUSED == {str(torch.device(device))}  # later scans there plan G = 1

    _assert_all_close(("out", "pre", "c", "h", "dg_lr", "dw_lr", "dg_rl", "dw_rl"),
                      (out, pre, c, h, *grads), (*grouped, *grouped_grads), dtype)
    torch.testing.assert_close(out, reference.diagonal_bilstm_scan(g_lr, w_lr, g_rl, w_rl), **TOL[dtype])


def test_refused_cooperative_row_lstm_scan_reruns_with_one_cta_per_image(device, monkeypatch):
    from fastpixel.kernels import row_lstm as kernels

    dtype = torch.float32
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4 * 20, 3, 4, generator=g, dtype=torch.float64).to(device, dtype)
    w = ((torch.rand(4 * 20, 20, 1, 3, generator=g, dtype=torch.float64) * 2 - 1) / 4).to(device, dtype)
    dy = torch.randn(2, 20, 3, 4, generator=g, dtype=torch.float64).to(device, dtype)
    grouped = kernels.row_lstm_forward(x, w, variant="tiled", ctas_per_scan=2)
    grouped_grads = kernels.row_lstm_backward(x, w, *grouped, dy, variant="tiled", ctas_per_scan=2)

    asked = _refuse_cooperative_launches(monkeypatch)
    with pytest.warns(RuntimeWarning, match="refused a cooperative launch"):
        h, c = kernels.row_lstm_forward(x, w, variant="tiled", ctas_per_scan=2)
    with pytest.warns(RuntimeWarning, match="refused a cooperative launch"):
        dx, dw = kernels.row_lstm_backward(x, w, h, c, dy, variant="tiled", ctas_per_scan=2)
    assert asked == [(2, 2), (2, 2)], asked
    _assert_all_close(("h", "c", "dx", "dw"), (h, c, dx, dw), (*grouped, *grouped_grads), dtype)
    torch.testing.assert_close(h, reference.row_lstm_scan(x, w), **TOL[dtype])


def test_other_launch_errors_are_not_taken_for_a_refusal(device, monkeypatch):
    """Only the driver's refusal is retried: any other launch error (here an illegal address, a
    sticky error after which nothing can run) propagates unchanged, and nothing is remembered."""
    from fastpixel.kernels import _group_sync
    from fastpixel.kernels import diagonal_bilstm as kernels

    def fail(kernel, grid, args, meta):
        raise RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered")

    monkeypatch.setattr(_group_sync, "triton_interpreter_enabled", lambda: False)
    monkeypatch.setattr(_group_sync, "_cooperative_launch", fail)
    monkeypatch.setattr(_group_sync, "_REFUSED", set())
    g_lr, w_lr, g_rl, w_rl, _ = _diag_inputs(device, torch.float64)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        kernels.diagonal_bilstm_forward(g_lr, w_lr, g_rl, w_rl, ctas_per_scan=2)
    assert not _group_sync._REFUSED
    assert _group_sync.is_cooperative_refusal(RuntimeError("Triton Error [CUDA]: operation not supported"))
    assert not _group_sync.is_cooperative_refusal(ValueError(REFUSAL))


def test_group_size_plans_one_cta_per_scan_after_a_refusal(monkeypatch):
    from fastpixel.kernels import _common, _group_sync

    monkeypatch.setattr(_group_sync, "triton_interpreter_enabled", lambda: False)
    monkeypatch.setattr(_group_sync, "cooperative_launch_supported", lambda: True)
    monkeypatch.setattr(_group_sync, "_REFUSED", set())
    with _common.assume_num_sms(132):
        assert _group_sync.group_size(32, 8, torch.device("cuda", 0)) == 4
        _group_sync._REFUSED.add("cuda:0")
        assert _group_sync.group_size(32, 8, torch.device("cuda", 0)) == 1
        assert _group_sync.group_size(32, 8, torch.device("cuda", 1)) == 4  # another device: unaffected


# -- GPU tier: the bounded wait ------------------------------------------------------------------
_WAIT_SCRIPT = textwrap.dedent("""
    import sys, torch, triton, triton.language as tl
    from fastpixel.kernels._group_sync import bounded_group_barrier

    @triton.jit
    def waiter(p_count, p_out, target, TIMEOUT_NS: tl.constexpr):
        bounded_group_barrier(p_count, target, True, TIMEOUT_NS)
        tl.store(p_out + tl.program_id(0), 1)

    groups, target = int(sys.argv[1]), int(sys.argv[2])
    count = torch.zeros(1, device="cuda", dtype=torch.int32)
    out = torch.zeros(groups, device="cuda", dtype=torch.int32)
    waiter[(groups,)](count, out, target, TIMEOUT_NS=50_000_000, launch_cooperative_grid=True)
    torch.cuda.synchronize()
    print("arrived", count.item(), "stored", out.sum().item())
""")


def _run_waiter(groups: int, target: int) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TRITON_INTERPRET", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _WAIT_SCRIPT, str(groups), str(target)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0


@pytest.mark.gpu
def test_gpu_group_barrier_returns_when_every_cta_arrives():
    proc, _ = _run_waiter(groups=4, target=4)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "arrived 4 stored 4" in proc.stdout


@pytest.mark.gpu
def test_gpu_group_barrier_traps_instead_of_hanging():
    """Two CTAs wait for a third that was never launched: after the 50 ms bound the kernel traps and
    the process gets a CUDA error, instead of the GPU spinning forever."""
    proc, seconds = _run_waiter(groups=2, target=3)
    assert proc.returncode != 0, proc.stdout
    assert "arrived" not in proc.stdout
    assert any(s in proc.stderr for s in ("unspecified launch failure", "illegal instruction", "CUDA error")), \
        proc.stderr[-2000:]
    assert seconds < 100  # bounded: the subprocess's start and compile, not a hang
