"""Fused DMoL kernel (kernels/dmol.py) against the reference: loss and gradient, every reduction.

Runs through Triton's CPU interpreter without CUDA (float32 / float64, tiny shapes); the ``gpu``
tier checks bfloat16 / float16 params and autocast against a float32 reference. Every torch.empty
is NaN-poisoned (tests/kernels/conftest.py), so an unwritten loss or gradient element fails.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel import ops
from fastpixel.reference import dmol as ref
from tests.reference.test_dmol import extreme_params, make_params, make_x

kd = pytest.importorskip("fastpixel.kernels.dmol")

REDUCTIONS = ("none", "sum", "mean")


def run(fn, params, x, levels, k, reduction, seed=7):
    p = torch.empty_strided(params.shape, params.stride(), dtype=params.dtype, device=params.device)
    p = p.copy_(params).requires_grad_(True)
    loss = fn(p, x, levels, k, reduction)
    cot = torch.randn(loss.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (g,) = torch.autograd.grad(loss, p, cot.to(loss.device, loss.dtype))
    return loss.detach(), g


def assert_within_twice_reference_error(actual, ref32, ref64, atol):
    scale = max(1.0, ref64.abs().max().item())
    err = (actual.double().cpu() - ref64.cpu()).abs()
    bound = 2 * (ref32.double().cpu() - ref64.cpu()).abs() + atol * scale
    assert (err <= bound).all(), f"max excess {(err - bound).max().item():.3g}, max err {err.max().item():.3g}"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("shape", [(1, 1, 1, 3), (1, 1, 7, 1), (2, 3, 5, 2)], ids=lambda s: "x".join(map(str, s)))
def test_parity(shape, channels, reduction, device):
    b, h, w, k = shape
    levels = 256
    p64 = make_params(b, k, h, w, channels=channels, seed=b + h + w, scale=2.0, log_scale_shift=-2.0)
    x = make_x(b, channels, h, w, levels, seed=w).to(device)
    loss64, g64 = run(ref.dmol_nll, p64, x.cpu(), levels, k, reduction)
    loss32, g32 = run(ref.dmol_nll, p64.float(), x.cpu(), levels, k, reduction)
    loss, g = run(kd.dmol_nll, p64.float().to(device), x, levels, k, reduction)
    assert loss.dtype == torch.float32 and g.dtype == torch.float32 and loss.shape == loss64.shape
    assert_within_twice_reference_error(loss, loss32, loss64, atol=1e-6)
    assert_within_twice_reference_error(g, g32, g64, atol=1e-6)
    loss_d, g_d = run(kd.dmol_nll, p64.to(device), x, levels, k, reduction)  # float64 throughout
    torch.testing.assert_close(loss_d.cpu(), loss64, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_d.cpu(), g64, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("levels", [2, 5])
def test_parity_small_levels(levels, device):
    k = 2
    p = make_params(2, k, 2, 3, scale=2.0).to(device)
    x = make_x(2, 3, 2, 3, levels).to(device)
    loss, g = run(kd.dmol_nll, p, x, levels, k, "none")
    loss_ref, g_ref = run(ref.dmol_nll, p.cpu(), x.cpu(), levels, k, "none")
    torch.testing.assert_close(loss.cpu(), loss_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g.cpu(), g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels", [3, 1])
def test_gradcheck(channels, device):
    p = make_params(1, 1, 1, 2, channels=channels, scale=1.5).to(device).requires_grad_(True)
    x = make_x(1, channels, 1, 2, 256).to(device)
    torch.autograd.gradcheck(lambda p: kd.dmol_nll(p, x, 256, 1, "none"), (p,))


@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_strided_params_read_in_place(layout, device):
    levels, k = 256, 2
    p = make_params(2, k, 3, 4, scale=2.0)
    if layout == "channels_last":
        strided = p.to(memory_format=torch.channels_last)
    else:  # H and W swapped in memory: (H, W) do not merge, the kernel splits the pixel index
        strided = p.transpose(2, 3).contiguous().transpose(2, 3)
    assert not strided.is_contiguous()
    x = make_x(2, 3, 3, 4, levels)
    x_strided = x.transpose(2, 3).contiguous().transpose(2, 3) if layout == "transposed" else x
    loss, g = run(kd.dmol_nll, strided.to(device), x_strided.to(device), levels, k, "none")
    loss_ref, g_ref = run(ref.dmol_nll, p, x, levels, k, "none")
    torch.testing.assert_close(loss.cpu(), loss_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g.cpu(), g_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("levels", [256, 2])
def test_extreme_inputs(levels, channels, device):
    k = 3
    p = extreme_params(channels, k, torch.float64)
    x = make_x(6, channels, 1, 4, levels)
    x[:, :, :, 0], x[:, :, :, 1] = 0, levels - 1
    loss, g = run(kd.dmol_nll, p.to(device), x.to(device), levels, k, "none")
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    loss_ref, g_ref = run(ref.dmol_nll, p, x, levels, k, "none")
    torch.testing.assert_close(loss.cpu(), loss_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(g.cpu(), g_ref, rtol=1e-9, atol=1e-9)
    p32 = extreme_params(channels, k, torch.float32).to(device)
    loss32, g32 = run(kd.dmol_nll, p32, x.to(device), levels, k, "sum")
    assert torch.isfinite(loss32).all() and torch.isfinite(g32).all()


def test_forward_without_grad_and_uint8(device):
    levels, k = 256, 2
    p = make_params(2, k, 2, 3).to(device)
    x = make_x(2, 3, 2, 3, levels)
    with torch.no_grad():
        loss = kd.dmol_nll(p, x.to(torch.uint8).to(device), levels, k, "none")
    torch.testing.assert_close(loss.cpu(), ref.dmol_nll(p.cpu(), x, levels, k), rtol=1e-12, atol=1e-12)


def test_backward_twice(device):
    levels, k = 256, 1
    p = make_params(1, k, 2, 2).to(device).requires_grad_(True)
    x = make_x(1, 3, 2, 2, levels).to(device)
    loss = kd.dmol_nll(p, x, levels, k, "sum")
    loss.backward(retain_graph=True)
    loss.backward()
    pr = p.detach().cpu().requires_grad_(True)
    ref.dmol_nll(pr, x.cpu(), levels, k, "sum").backward()
    torch.testing.assert_close(p.grad.cpu(), 2 * pr.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch(reduction, device):
    p = torch.zeros(0, 10, 2, 3, device=device, dtype=torch.float64)
    x = torch.zeros(0, 3, 2, 3, dtype=torch.int64, device=device)
    loss = kd.dmol_nll(p, x, 256, 1, reduction)
    expected = ref.dmol_nll(p.cpu(), x.cpu(), 256, 1, reduction)
    assert loss.shape == expected.shape
    torch.testing.assert_close(loss.cpu(), expected, equal_nan=True)


def test_public_op_dispatches_to_the_kernel(device, monkeypatch):
    calls = []
    real = kd.dmol_nll_forward
    monkeypatch.setattr(kd, "dmol_nll_forward", lambda *a: calls.append(a[2:]) or real(*a))
    p = make_params(1, 1, 1, 2).to(device).requires_grad_(True)
    x = make_x(1, 3, 1, 2, 256).to(device)
    ops.dmol_nll(p, x, reduction="mean", backend="triton").backward()
    assert calls == [(256, 1, "mean", True)] and p.grad is not None


def test_autocast_reads_params_as_they_come(device, monkeypatch):
    """Under autocast the op gets the params uncast and returns the float32 loss, as the reference."""
    levels, k = 256, 2
    p = make_params(2, k, 2, 3, dtype=torch.float32).to(device)
    x = make_x(2, 3, 2, 3, levels).to(device)
    seen = []
    real = kd.dmol_fwd
    monkeypatch.setattr(kd, "dmol_fwd", lambda params, *a, **kw: seen.append(params.dtype) or real(params, *a, **kw))
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = kd.dmol_nll(p, x, levels, k, "sum")
        expected = ref.dmol_nll(p.cpu(), x.cpu(), levels, k, "sum")
    assert seen == [torch.float32] and loss.dtype == torch.float32 and expected.dtype == torch.float32
    torch.testing.assert_close(loss.cpu(), expected, rtol=1e-5, atol=1e-5)


def test_compiles_into_one_graph(device):
    """torch.compile(fullgraph=True): the custom op is one opaque node, forward and backward."""
    torch._dynamo.reset()
    levels, k = 256, 2
    p = make_params(1, k, 2, 3).to(device)
    x = make_x(1, 3, 2, 3, levels).to(device)
    fn = torch.compile(lambda p, x: kd.dmol_nll(p, x, levels, k, "mean"), fullgraph=True, backend="aot_eager")
    loss, g = run(lambda p, x, *_: fn(p, x), p, x, levels, k, "mean")
    loss_e, g_e = run(kd.dmol_nll, p, x, levels, k, "mean")
    torch.testing.assert_close(loss, loss_e, rtol=0, atol=0)
    torch.testing.assert_close(g, g_e, rtol=0, atol=0)
    torch._dynamo.reset()


def test_constants_match_the_reference():
    assert kd.REDUCTIONS == ref.REDUCTIONS
    assert kd.LOG_SCALE_MIN == ref.LOG_SCALE_MIN


# -- GPU tier ----------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_params_float32_math(dtype):
    """16-bit params are read as they come, every formula in float32: the loss equals the float32
    reference on the same (rounded) params to float32 accuracy; the gradient, stored in 16 bits,
    to 16-bit rounding."""
    levels, k = 256, 10
    p = make_params(4, k, 16, 16, scale=2.0, log_scale_shift=-2.0).to("cuda", dtype)
    x = make_x(4, 3, 16, 16, levels).cuda()
    loss, g = run(kd.dmol_nll, p, x, levels, k, "none")
    loss_ref, g_ref = run(ref.dmol_nll, p.float(), x, levels, k, "none")
    assert loss.dtype == torch.float32 and g.dtype == dtype
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(g.float(), g_ref, rtol=tol, atol=tol * g_ref.abs().max().item())


@pytest.mark.gpu
def test_autocast_returns_float32():
    levels, k = 256, 5
    p = make_params(2, k, 8, 8).to("cuda", torch.float32).requires_grad_(True)
    x = make_x(2, 3, 8, 8, levels).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = ops.dmol_nll(p.bfloat16(), x, reduction="sum", backend="triton")
    assert loss.dtype == torch.float32
    loss.backward()
    assert p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()


@pytest.mark.gpu
def test_extreme_inputs_bfloat16():
    k = 3
    p = extreme_params(3, k, torch.float32).to("cuda", torch.bfloat16)
    x = make_x(6, 3, 1, 4, 256).cuda()
    x[:, :, :, 0], x[:, :, :, 1] = 0, 255
    loss, g = run(kd.dmol_nll, p, x, 256, k, "none")
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
