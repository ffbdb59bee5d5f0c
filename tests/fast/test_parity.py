"""The fast ("torch") backend against the reference: outputs and every gradient, float32 and float64.

Odd shapes on purpose: 1x1, 1xW, Hx1, non-square maps, h not a power of two (3, 5), batch 1 and 3.
float64 must agree to rounding (1e-12); float32 to ~1e-5 relative (the scans accumulate a
recurrence over up to W + H - 1 steps, and the fast path computes tanh as 2 sigmoid(2x) - 1).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel import dispatch, ops, reference
from fastpixel.fast import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, masked_conv, row_lstm
from fastpixel.masks import MaskSpec, color_groups, gate_groups

SHAPES = [(1, 1, 1, 1), (3, 3, 1, 6), (1, 5, 5, 1), (3, 3, 4, 7), (1, 5, 6, 3), (3, 2, 5, 5)]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=2e-6)}


def _reference_layer(x, w, b, spec, k1, k2, gate_bias=None):
    """The layer as written: the reference's masked 1x1 conv (+ gate bias), then its scan."""
    gates = reference.masked_conv2d(x, w, b, spec)
    gates = gates if gate_bias is None else gates + gate_bias
    lr, rl = gates.chunk(2, dim=1)
    return reference.diagonal_bilstm_scan(lr, k1, rl, k2)


def leaves(seed, dtype, *shapes_scales):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(*s, generator=g, dtype=torch.float64) * k).to(dtype).requires_grad_() for s, k in shapes_scales]


def compare(fast_fn, ref_fn, inputs, dtype):
    out_fast, out_ref = fast_fn(*inputs), ref_fn(*inputs)
    cotangent = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64).to(dtype)
    grads_fast = torch.autograd.grad(out_fast, inputs, cotangent)
    grads_ref = torch.autograd.grad(out_ref, inputs, cotangent)
    scale = lambda t: max(1.0, t.abs().max().item())  # noqa: E731
    tol = TOL[dtype]
    torch.testing.assert_close(out_fast, out_ref, rtol=tol["rtol"], atol=tol["atol"] * scale(out_ref))
    for i, (gf, gr) in enumerate(zip(grads_fast, grads_ref)):
        assert gf.shape == gr.shape and gf.dtype == gr.dtype
        torch.testing.assert_close(gf, gr, rtol=tol["rtol"], atol=tol["atol"] * scale(gr), msg=f"gradient {i}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,hidden,height,width", SHAPES)
def test_diagonal_bilstm_matches_reference(batch, hidden, height, width, dtype):
    g, w = (batch, 4 * hidden, height, width), (4 * hidden, hidden, 2, 1)
    inputs = leaves(height * 7 + width, dtype, (g, 1.0), (w, 0.5), (g, 1.0), (w, 0.5))
    compare(diagonal_bilstm.diagonal_bilstm_scan, reference.diagonal_bilstm_scan, inputs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("colors", [1, 3])
@pytest.mark.parametrize("batch,hidden,height,width", SHAPES)
def test_conv_diagonal_bilstm_matches_reference(batch, hidden, height, width, colors, dtype):
    """The fused layer: output and the gradients of x, conv weight, conv bias and both state kernels."""
    cin = 3 * colors
    spec = MaskSpec((1, 1), "B", color_groups(cin, colors), gate_groups(hidden, colors, num_gates=8))
    inputs = leaves(height * 7 + width, dtype, ((batch, cin, height, width), 1.0), ((8 * hidden, cin, 1, 1), 0.5),
                    ((8 * hidden,), 0.3), ((4 * hidden, hidden, 2, 1), 0.5), ((4 * hidden, hidden, 2, 1), 0.5))
    x, w_in, b_in, w_lr, w_rl = inputs
    compare(lambda *a: diagonal_bilstm_layer.conv_diagonal_bilstm(a[0], a[1], a[2], spec, a[3], a[4]),
            lambda *a: _reference_layer(a[0], a[1], a[2], spec, a[3], a[4]), inputs, dtype)
    no_bias = [x, w_in, w_lr, w_rl]
    compare(lambda *a: diagonal_bilstm_layer.conv_diagonal_bilstm(a[0], a[1], None, spec, a[2], a[3]),
            lambda *a: _reference_layer(a[0], a[1], None, spec, a[2], a[3]), no_bias, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_diagonal_bilstm_with_gate_bias_matches_reference(dtype, monkeypatch):
    """With a gate bias (conditioning) the op composes the torch backend's conv, the sum and its scan;
    the fused function is the layer without one (dispatch's fusion contract) and is not called."""
    spec = MaskSpec((1, 1), "B", color_groups(4, 1), gate_groups(2, 1, num_gates=8))
    inputs = leaves(5, dtype, ((2, 4, 3, 5), 1.0), ((16, 4, 1, 1), 0.5), ((16,), 0.3), ((8, 2, 2, 1), 0.5),
                    ((8, 2, 2, 1), 0.5), ((2, 16, 3, 5), 1.0))

    def no_fusion(*args):
        raise AssertionError("the fused layer was called with a gate bias")

    dispatch.load("torch")
    monkeypatch.setitem(dispatch.FUSED["diagonal_bilstm_layer"], "torch", no_fusion)
    compare(lambda x, w, b, k1, k2, gb: ops.conv_diagonal_bilstm(x, w, b, spec, k1, k2, gb, backend="torch"),
            lambda x, w, b, k1, k2, gb: _reference_layer(x, w, b, spec, k1, k2, gb), inputs, dtype)
    with pytest.raises(TypeError):
        diagonal_bilstm_layer.conv_diagonal_bilstm(*inputs[:3], spec, *inputs[3:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,hidden,height,width", SHAPES)
def test_row_lstm_matches_reference(batch, hidden, height, width, dtype):
    inputs = leaves(height * 7 + width, dtype, ((batch, 4 * hidden, height, width), 1.0), ((4 * hidden, hidden, 1, 3), 0.5))
    compare(row_lstm.row_lstm_scan, reference.row_lstm_scan, inputs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,mask_type,colors", [(7, "A", 3), (3, "B", 1), (1, "B", 3), ((1, 3), "B", 1)])
def test_masked_conv_matches_reference(kernel, mask_type, colors, dtype):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    spec = MaskSpec((kh, kw), mask_type, color_groups(3, colors), color_groups(5, colors))
    x, w, b = leaves(3, dtype, ((3, 3, 5, 4), 1.0), ((5, 3, kh, kw), 0.3), ((5,), 0.3))
    compare(lambda *a: masked_conv.masked_conv2d(*a, spec), lambda *a: reference.masked_conv2d(*a, spec), [x, w, b], dtype)


@pytest.fixture
def fused_always(monkeypatch):
    monkeypatch.setattr(cross_entropy, "FUSED_MIN_LOGITS", 0)  # the autograd.Function at every size


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("levels,channels", [(2, 1), (256, 3), (7, 3)])
def test_cross_entropy_matches_reference(levels, channels, reduction, dtype, fused_always):
    (logits,) = leaves(4, dtype, ((3, levels, channels, 5, 2), 3.0))
    targets = torch.randint(0, levels, (3, channels, 5, 2), generator=torch.Generator().manual_seed(1))
    compare(lambda x: cross_entropy.pixel_cross_entropy(x, targets, reduction),
            lambda x: reference.pixel_cross_entropy(x, targets, reduction), [logits], dtype)


def test_cross_entropy_low_precision_logits_keep_their_dtype(fused_always):
    logits = torch.randn(2, 4, 1, 3, 3).bfloat16().requires_grad_()
    targets = torch.randint(0, 4, (2, 1, 3, 3))
    loss = cross_entropy.pixel_cross_entropy(logits, targets, "none")
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, reference.pixel_cross_entropy(logits, targets, "none"))


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction must be one of"):
        cross_entropy.pixel_cross_entropy(torch.zeros(1, 2, 1, 1, 1), torch.zeros(1, 1, 1, 1, dtype=torch.long), "max")


@pytest.mark.parametrize("op", sorted(dispatch.OPS))
def test_torch_backend_dispatches_to_the_fast_module(op):
    import importlib

    module = importlib.import_module(f"fastpixel.fast.{op}")
    assert dispatch.implementation(op, "torch") is getattr(module, dispatch.OPS[op])


def test_torch_backend_registers_its_fused_layer_and_the_others_compose():
    assert dispatch.fused("diagonal_bilstm_layer", "torch") is diagonal_bilstm_layer.conv_diagonal_bilstm
    assert dispatch.fused("diagonal_bilstm_layer", "reference") is None
    assert dispatch.fused("diagonal_bilstm_layer", "triton") is None


def test_public_ops_run_the_fast_path_and_match():
    torch.manual_seed(0)
    gates = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    weight = torch.randn(8, 2, 2, 1, dtype=torch.float64) * 0.5
    fast = ops.diagonal_bilstm_scan(gates, weight, gates.flip(3), weight, backend="torch")
    ref = ops.diagonal_bilstm_scan(gates, weight, gates.flip(3), weight, backend="reference")
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    with fastpixel.use_backend("torch"):
        assert torch.equal(ops.diagonal_bilstm_scan(gates, weight, gates.flip(3), weight), fast)


def test_scan_under_no_grad_and_repeated_calls_reuse_buffers_safely():
    """The workspace pool must never hand a buffer still saved for backward to a second call."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 8, 4, 5, generator=g, requires_grad=True)
    w = (torch.randn(8, 2, 2, 1, generator=g) * 0.5).requires_grad_()
    first = diagonal_bilstm.diagonal_bilstm_scan(a, w, a, w)
    second = diagonal_bilstm.diagonal_bilstm_scan(a * 2, w, a, w)  # same shapes, while first's graph lives
    grad_first = torch.autograd.grad(first.sum(), [a, w])
    expected = torch.autograd.grad(reference.diagonal_bilstm_scan(a, w, a, w).sum(), [a, w])
    for got, want in zip(grad_first, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, reference.diagonal_bilstm_scan(a * 2, w, a, w), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(diagonal_bilstm.diagonal_bilstm_scan(a, w, a, w), first.detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel,mask_type,colors", [(1, "B", 3), ((1, 3), "B", 1), (3, "B", 1), (3, "A", 3), (5, None, 1)])
def test_large_conv_uses_the_live_tap_gemm_path_and_matches(monkeypatch, dtype, bias, kernel, mask_type, colors):
    monkeypatch.setattr(masked_conv, "GEMM_MIN_OUTPUT", 1)  # the per-image GEMM path at a small shape
    monkeypatch.setattr(masked_conv, "GEMM_MIN_INNER", 1)
    monkeypatch.setattr(masked_conv, "gemm_wins", lambda spec, live: True)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    spec = MaskSpec((kh, kw), mask_type, color_groups(6, colors), color_groups(9, colors))
    x, w, b = leaves(5, dtype, ((3, 6, 4, 5), 1.0), ((9, 6, kh, kw), 0.3), ((9,), 0.3))
    assert "LiveTapGemmConv" in type(masked_conv.masked_conv2d(x, w, b, spec).grad_fn).__name__
    inputs = [x, w, b] if bias else [x, w]
    fast = (lambda *a: masked_conv.masked_conv2d(*a, spec)) if bias else (lambda x, w: masked_conv.masked_conv2d(x, w, None, spec))
    ref = (lambda *a: reference.masked_conv2d(*a, spec)) if bias else (lambda x, w: reference.masked_conv2d(x, w, None, spec))
    compare(fast, ref, inputs, dtype)
    grad_w = torch.autograd.grad(masked_conv.masked_conv2d(x, w, b, spec).sum(), w)[0]
    assert torch.equal(grad_w * (1 - spec.mask(dtype)), torch.zeros_like(grad_w))  # masked taps get no gradient


def test_live_taps_skip_the_closed_taps():
    assert masked_conv.live_taps(MaskSpec((1, 3), "B", (0,), (0,)).mask()) == ((0, 0), (0, 1))
    assert len(masked_conv.live_taps(MaskSpec((3, 3), "B", (0,), (0,)).mask())) == 5
    assert len(masked_conv.live_taps(MaskSpec((7, 7), "A", (0,), (0,)).mask())) == 24
    assert len(masked_conv.live_taps(MaskSpec((3, 3), "A", (0, 1, 2), (0, 1, 2)).mask())) == 5  # centre partly open


def test_batched_gradients_get_a_clear_error():
    gates = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 1, 2, 1, dtype=torch.float64)

    def f(g):
        return diagonal_bilstm.diagonal_bilstm_scan(g, weight, g, weight).sum(dim=(0, 1))

    with pytest.raises(RuntimeError, match="does not support vmap"):
        torch.autograd.functional.jacobian(f, gates, vectorize=True)
    jac = torch.autograd.functional.jacobian(f, gates, vectorize=False)  # the way out
    torch.testing.assert_close(jac, torch.autograd.functional.jacobian(
        lambda g: reference.diagonal_bilstm_scan(g, weight, g, weight).sum(dim=(0, 1)), gates))


@pytest.mark.parametrize("kernel,cin,cout,expected", [
    ((1, 3), 128, 256, False),  # the Row LSTM's input-to-state conv: oneDNN is quicker
    (1, 128, 512, True),        # the Diagonal BiLSTM's input-to-state conv
    (1, 64, 128, False),        # a residual block's expansion
    (1, 128, 64, False),        # the PixelCNN block's reduction: fewer outputs than inputs
    (3, 64, 64, False),         # the PixelCNN block's 3x3: 5 live taps, cout < T*cin
])
def test_gemm_path_rule_at_the_block_shapes(kernel, cin, cout, expected):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    spec = MaskSpec((kh, kw), "B", (0,) * cin, (0,) * cout)
    x = torch.empty(1).expand(16, cin, 32, 32)  # only the shape matters
    assert masked_conv.uses_gemm_path(x, spec, masked_conv.live_taps(spec.mask())) is expected
