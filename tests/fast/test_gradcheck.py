"""float64 ``torch.autograd.gradcheck`` of every op of the fast ("torch") backend, at tiny shapes."""

from __future__ import annotations

import pytest
import torch

from fastpixel.fast import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, masked_conv, row_lstm
from fastpixel.masks import MaskSpec, color_groups, gate_groups


def rand(*shape, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()


@pytest.mark.parametrize("batch,hidden,height,width", [(1, 1, 1, 1), (2, 2, 3, 2), (1, 3, 2, 4)])
def test_diagonal_bilstm_gradcheck(batch, hidden, height, width):
    inputs = (
        rand(batch, 4 * hidden, height, width, seed=1), rand(4 * hidden, hidden, 2, 1, scale=0.5, seed=2),
        rand(batch, 4 * hidden, height, width, seed=3), rand(4 * hidden, hidden, 2, 1, scale=0.5, seed=4),
    )
    assert torch.autograd.gradcheck(diagonal_bilstm.diagonal_bilstm_scan, inputs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch,cin,hidden,colors,height,width", [(1, 1, 1, 1, 1, 1), (2, 3, 2, 1, 3, 2), (1, 3, 3, 3, 2, 4)])
def test_conv_diagonal_bilstm_gradcheck(batch, cin, hidden, colors, height, width, bias):
    """The fused layer (input-to-state conv folded into the scan): x, conv weight and bias, both state kernels."""
    spec = MaskSpec((1, 1), "B", color_groups(cin, colors), gate_groups(hidden, colors, num_gates=8))
    x, w_in, b_in = rand(batch, cin, height, width, seed=1), rand(8 * hidden, cin, 1, 1, scale=0.5, seed=2), rand(8 * hidden, seed=3)
    w_lr, w_rl = rand(4 * hidden, hidden, 2, 1, scale=0.5, seed=4), rand(4 * hidden, hidden, 2, 1, scale=0.5, seed=5)
    if bias:
        fn = lambda x, w, b, k1, k2: diagonal_bilstm_layer.conv_diagonal_bilstm(x, w, b, spec, k1, k2)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w_in, b_in, w_lr, w_rl))
    else:
        fn = lambda x, w, k1, k2: diagonal_bilstm_layer.conv_diagonal_bilstm(x, w, None, spec, k1, k2)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, w_in, w_lr, w_rl))


@pytest.mark.parametrize("batch,hidden,height,width", [(1, 1, 1, 1), (2, 2, 3, 2), (1, 3, 2, 4)])
def test_row_lstm_gradcheck(batch, hidden, height, width):
    inputs = (rand(batch, 4 * hidden, height, width, seed=1), rand(4 * hidden, hidden, 1, 3, scale=0.5, seed=2))
    assert torch.autograd.gradcheck(row_lstm.row_lstm_scan, inputs)


@pytest.mark.parametrize("kernel,mask_type", [(3, "A"), (1, "B"), ((1, 3), "B"), (3, None)])
def test_masked_conv_gradcheck(kernel, mask_type):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    spec = MaskSpec((kh, kw), mask_type, color_groups(3, 3), color_groups(6, 3))
    inputs = (rand(2, 3, 4, 3, seed=1), rand(6, 3, kh, kw, seed=2), rand(6, seed=3))
    assert torch.autograd.gradcheck(lambda x, w, b: masked_conv.masked_conv2d(x, w, b, spec), inputs)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_gradcheck(reduction, monkeypatch):
    monkeypatch.setattr(cross_entropy, "FUSED_MIN_LOGITS", 0)  # the fused autograd.Function, not the fallback
    logits = rand(2, 5, 3, 2, 3, scale=2.0)
    targets = torch.randint(0, 5, (2, 3, 2, 3), generator=torch.Generator().manual_seed(5))
    assert torch.autograd.gradcheck(lambda x: cross_entropy.pixel_cross_entropy(x, targets, reduction), (logits,))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel,mask_type", [(1, "B"), ((1, 3), "B"), (3, "A"), (3, None)])
def test_live_tap_gemm_conv_gradcheck(monkeypatch, bias, kernel, mask_type):
    monkeypatch.setattr(masked_conv, "GEMM_MIN_OUTPUT", 1)  # per-image GEMMs at a tiny shape
    monkeypatch.setattr(masked_conv, "GEMM_MIN_INNER", 1)
    monkeypatch.setattr(masked_conv, "gemm_wins", lambda spec, live: True)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    spec = MaskSpec((kh, kw), mask_type, color_groups(3, 3), color_groups(6, 3))
    x, w, b = rand(2, 3, 2, 3, seed=1), rand(6, 3, kh, kw, seed=2), rand(6, seed=3)
    if bias:
        assert torch.autograd.gradcheck(lambda x, w, b: masked_conv.masked_conv2d(x, w, b, spec), (x, w, b))
    else:
        assert torch.autograd.gradcheck(lambda x, w: masked_conv.masked_conv2d(x, w, None, spec), (x, w))
