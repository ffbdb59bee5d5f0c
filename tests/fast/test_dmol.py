"""The ``torch`` backend's DMoL NLL (fastpixel/fast/dmol.py) against the reference.

float64: gradcheck and agreement to ~1e-12; float32: loss and gradient within twice the reference's
own float32 error (both measured against the float64 reference) plus a small atol, at odd shapes
(1x1, 1xW, non-square, K = 1, batch 1), RGB and grey, every reduction; the cache blocks (batch and
row splits) change nothing; strided params are read as they are; extreme inputs stay finite.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel import ops
from fastpixel.fast import dmol as fast
from fastpixel.reference import dmol as ref
from tests.reference.test_dmol import extreme_params, make_params, make_x

REDUCTIONS = ("none", "sum", "mean")


def run(fn, params, x, levels, k, reduction, seed=7):
    """Loss and d(loss . cotangent)/d params for a fixed random cotangent (same values for any dtype)."""
    p = params.detach().clone().requires_grad_(True)
    loss = fn(p, x, levels, k, reduction)
    cot = torch.randn(loss.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (g,) = torch.autograd.grad(loss, p, cot.to(loss.dtype))
    return loss.detach(), g


def assert_within_twice_reference_error(actual, ref32, ref64, atol):
    """|actual - ref64| <= 2 |ref32 - ref64| + atol * max(1, |ref64|max) elementwise (flash-attention's rule)."""
    scale = max(1.0, ref64.abs().max().item())
    err = (actual.double() - ref64).abs()
    bound = 2 * (ref32.double() - ref64).abs() + atol * scale
    assert (err <= bound).all(), f"max excess {(err - bound).max().item():.3g}, max err {err.max().item():.3g}"


SHAPES = [  # (B, H, W, K)
    (1, 1, 1, 3),
    (1, 1, 7, 2),
    (2, 5, 3, 4),
    (1, 4, 4, 1),
    (3, 2, 6, 10),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_float32_parity(shape, channels, reduction):
    b, h, w, k = shape
    levels = 256
    p64 = make_params(b, k, h, w, channels=channels, seed=b + h + w + k, scale=2.0, log_scale_shift=-2.0)
    x = make_x(b, channels, h, w, levels, seed=h * w)
    loss64, g64 = run(ref.dmol_nll, p64, x, levels, k, reduction)
    loss32, g32 = run(ref.dmol_nll, p64.float(), x, levels, k, reduction)
    loss, g = run(fast.dmol_nll, p64.float(), x, levels, k, reduction)
    assert loss.dtype == torch.float32 and g.dtype == torch.float32 and loss.shape == loss64.shape
    assert_within_twice_reference_error(loss, loss32, loss64, atol=1e-6)
    assert_within_twice_reference_error(g, g32, g64, atol=1e-6)


@pytest.mark.parametrize("levels", [256, 5, 2])
@pytest.mark.parametrize("channels", [3, 1])
def test_float64_parity_and_gradcheck(channels, levels):
    k = 3
    p = make_params(2, k, 3, 4, channels=channels, scale=2.0)
    x = make_x(2, channels, 3, 4, levels)
    loss, g = run(fast.dmol_nll, p, x, levels, k, "none")
    loss_ref, g_ref = run(ref.dmol_nll, p, x, levels, k, "none")
    torch.testing.assert_close(loss, loss_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    small = make_params(1, 2, 2, 2, channels=channels, scale=1.5).requires_grad_(True)
    xs = make_x(1, channels, 2, 2, levels)
    for reduction in REDUCTIONS:
        torch.autograd.gradcheck(lambda p: fast.dmol_nll(p, xs, levels, 2, reduction), (small,))


def test_blocks_change_nothing(monkeypatch):
    """Cache blocks of several images, of one image, and of a few rows give the same numbers."""
    levels, k = 256, 3
    p = make_params(3, k, 5, 4, scale=2.0)
    x = make_x(3, 3, 5, 4, levels)
    whole_loss, whole_g = run(fast.dmol_nll, p, x, levels, k, "none")
    for elements in (3 * k * 4 * 5 * 2, 3 * k * 4 * 5, 3 * k * 4 * 2, 1):  # 2 images, 1 image, 2 rows, 1 row
        monkeypatch.setattr(fast, "BLOCK_ELEMENTS", elements)
        loss, g = run(fast.dmol_nll, p, x, levels, k, "none")
        torch.testing.assert_close(loss, whole_loss, rtol=1e-14, atol=0)
        torch.testing.assert_close(g, whole_g, rtol=1e-14, atol=0)


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_strided_params(layout):
    levels, k = 256, 2
    p = make_params(2, k, 3, 4, scale=2.0)
    if layout == "channels_last":
        strided = p.to(memory_format=torch.channels_last)
    else:
        strided = torch.cat([p, p], dim=3)[..., ::2]
        strided.copy_(p)
    assert not strided.is_contiguous()
    x = make_x(2, 3, 3, 4, levels)
    loss, g = run(fast.dmol_nll, strided, x, levels, k, "sum")
    loss_ref, g_ref = run(ref.dmol_nll, p, x, levels, k, "sum")
    torch.testing.assert_close(loss, loss_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_no_grad_path_and_integer_dtypes():
    levels, k = 256, 2
    p = make_params(2, k, 3, 4, dtype=torch.float32)
    x = make_x(2, 3, 3, 4, levels)
    with torch.no_grad():
        expected = ref.dmol_nll(p, x, levels, k)
        torch.testing.assert_close(fast.dmol_nll(p, x, levels, k), expected)
        torch.testing.assert_close(fast.dmol_nll(p, x.to(torch.uint8), levels, k), expected)
        torch.testing.assert_close(fast.dmol_nll(p, x.int(), levels, k), expected)


def test_backward_twice_accumulates():
    levels, k = 256, 2
    p = make_params(2, k, 3, 4).requires_grad_(True)
    x = make_x(2, 3, 3, 4, levels)
    loss = fast.dmol_nll(p, x, levels, k, "mean")
    loss.backward(retain_graph=True)
    loss.backward()
    _, g_ref = run(ref.dmol_nll, p, x, levels, k, "mean")
    cot = torch.randn((), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(p.grad, 2 * g_ref / cot, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("levels", [256, 2])
def test_extreme_inputs(levels, channels, dtype):
    """Log-scales far below -7 and far above, huge means, tiny mixture weights, both edge values:
    finite, and the reference's numbers (float64: to 1e-9; float32: to the twice-error rule)."""
    k = 3
    p = extreme_params(channels, k, dtype)
    x = make_x(6, channels, 1, 4, levels)
    x[:, :, :, 0], x[:, :, :, 1] = 0, levels - 1
    loss, g = run(fast.dmol_nll, p, x, levels, k, "none")
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    p64 = extreme_params(channels, k, torch.float64) if dtype == torch.float32 else p
    loss64, g64 = run(ref.dmol_nll, p64, x, levels, k, "none")
    if dtype == torch.float64:
        torch.testing.assert_close(loss, loss64, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(g, g64, rtol=1e-9, atol=1e-9)
    else:
        loss32, g32 = run(ref.dmol_nll, p, x, levels, k, "none")
        assert_within_twice_reference_error(loss, loss32, loss64, atol=1e-6)
        assert_within_twice_reference_error(g, g32, g64, atol=1e-6)


@pytest.mark.parametrize("channels", [3, 1])
def test_extreme_inputs_bfloat16_finite(channels):
    k = 3
    p = extreme_params(channels, k, torch.bfloat16)
    x = make_x(6, channels, 1, 4, 256)
    x[:, :, :, 0], x[:, :, :, 1] = 0, 255
    loss, g = run(fast.dmol_nll, p, x, 256, k, "sum")
    assert loss.dtype == torch.float32 and g.dtype == torch.bfloat16
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    torch.testing.assert_close(loss, ref.dmol_nll(p.float(), x, 256, k, "sum"), rtol=1e-5, atol=1e-3)


def test_bfloat16_params_read_in_float32():
    levels, k = 256, 2
    p = make_params(2, k, 3, 4, scale=2.0).bfloat16()
    x = make_x(2, 3, 3, 4, levels)
    loss, g = run(fast.dmol_nll, p, x, levels, k, "sum")
    loss_ref, g_ref = run(ref.dmol_nll, p.float(), x, levels, k, "sum")
    assert loss.dtype == torch.float32 and g.dtype == torch.bfloat16
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g.float(), g_ref.bfloat16().float(), rtol=1e-2, atol=1e-2)


def test_public_op_runs_the_torch_backend(monkeypatch):
    calls = []
    real = fast.DMoLNLL.apply
    monkeypatch.setattr(fast.DMoLNLL, "apply", lambda *a: calls.append(1) or real(*a))
    p = make_params(1, 2, 2, 3, dtype=torch.float32).requires_grad_(True)
    x = make_x(1, 3, 2, 3, 256)
    ops.dmol_nll(p, x, num_mixtures=2, reduction="sum", backend="torch").backward()
    assert calls and p.grad is not None
