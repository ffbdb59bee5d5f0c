"""Triton Row LSTM scan vs the reference: forward and both gradients, odd shapes, NaN-poisoned outputs.

Runs under TRITON_INTERPRET=1 on CPU (tiny shapes, float32/float64); the GPU tier (bf16/fp16 and
float32, up to the paper's h=128) is marked ``gpu``. The same random cotangent is back-propagated
through both backends.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel import reference
from fastpixel.ops import row_lstm_scan

# (batch, h, H, W): n = H = W in {1, 2, 5, 7} and non-square; h = 1 or not a power of two; batch 1 and 3
SHAPES = [
    (1, 3, 1, 1),
    (3, 5, 1, 1),
    (1, 5, 2, 2),
    (3, 3, 2, 2),
    (3, 3, 5, 5),
    (1, 5, 5, 5),
    (3, 5, 7, 7),
    (1, 3, 7, 7),
    (3, 3, 2, 5),
    (1, 5, 7, 2),
    (1, 3, 1, 7),
    (3, 1, 3, 4),
]
DTYPES = [torch.float32, torch.float64]


def _tols(dtype: torch.dtype) -> dict:
    return {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}[dtype]


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    tol = _tols(dtype)
    scale = max(1.0, expected.abs().max().item())  # atol scaled to the magnitudes (sums over pixels)
    torch.testing.assert_close(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def _inputs(batch, hid, height, width, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4 * hid, height, width, generator=g, dtype=torch.float64)
    w = torch.randn(4 * hid, hid, 1, 3, generator=g, dtype=torch.float64) / (3 * hid) ** 0.5 * 2
    dy = torch.randn(batch, hid, height, width, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype) for t in (x, w, dy)]


def _run(fn, x, w, dy):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    h = fn(x, w)
    h.backward(dy)
    return h.detach(), x.grad, w.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}h{}_{}x{}".format(*s))
def test_parity_forward_and_gradients(shape, dtype, device):
    x, w, dy = _inputs(*shape, dtype, device)
    h_k, dx_k, dw_k = _run(lambda a, b: row_lstm_scan(a, b, backend="triton"), x, w, dy)
    h_r, dx_r, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    assert h_k.dtype == dtype and dx_k.dtype == dtype and dw_k.dtype == dtype
    _assert_close(h_k, h_r, dtype)
    _assert_close(dx_k, dx_r, dtype)
    _assert_close(dw_k, dw_r, dtype)


def test_triton_backend_runs_the_kernel(device):
    """backend="triton" must not route to the reference: the graph node is the kernel's Function."""
    x, w, _ = _inputs(1, 3, 2, 3, torch.float32, device)
    h = row_lstm_scan(x.requires_grad_(), w, backend="triton")
    assert "fastpixel_row_lstm_scan_forward" in h.grad_fn.name()


@pytest.mark.parametrize("variant", ["resident", "registers", "tiled"])
def test_every_kernel_variant_matches(variant, device):
    """Each kernel variant (weights loaded once / re-read every row / state tiled through L2)
    is exact against the reference; the launcher picks one by size, here each is forced."""
    from fastpixel.kernels.row_lstm import row_lstm_backward, row_lstm_forward

    dtype = torch.float64
    x, w, dy = _inputs(3, 5, 5, 6, dtype, device, seed=1)
    h, c = row_lstm_forward(x, w, variant=variant)
    dx, dw = row_lstm_backward(x, w, h, c, dy, variant=variant)
    h_r, dx_r, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    _assert_close(h, h_r, dtype)
    _assert_close(dx, dx_r, dtype)
    _assert_close(dw, dw_r, dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tiles below 16 need the interpreter")
def test_tiled_variant_with_many_tiles(monkeypatch, device):
    """The tiled variant with several column, unit and reduction tiles per row (tiles of 2 columns,
    4 units, 2 reduction units on h=5, W=5): halos across column tiles, partial last tiles, the
    carried dc across rows."""
    from fastpixel.kernels import row_lstm as kernels

    dtype = torch.float64
    monkeypatch.setitem(kernels.TILED_MAX_TILES, dtype.itemsize, (2, 4, 2))
    x, w, dy = _inputs(1, 5, 3, 5, dtype, device, seed=7)
    h, c = kernels.row_lstm_forward(x, w, variant="tiled")
    dx, dw = kernels.row_lstm_backward(x, w, h, c, dy, variant="tiled")
    h_r, dx_r, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    _assert_close(h, h_r, dtype)
    _assert_close(dx, dx_r, dtype)
    _assert_close(dw, dw_r, dtype)


def test_variant_choice_by_size():
    """Small h and W keep the state and weights in registers; the paper's h=128 (or wide rows) go tiled."""
    from fastpixel.kernels.row_lstm import _variant

    assert _variant(32, 16, torch.bfloat16, None) == "resident"
    assert _variant(28, 32, torch.bfloat16, None) == "resident"
    assert _variant(32, 16, torch.float32, None) == "resident"
    assert _variant(32, 32, torch.float32, None) == "tiled"
    assert _variant(32, 64, torch.bfloat16, None) == "tiled"
    assert _variant(32, 128, torch.bfloat16, None) == "tiled"
    assert _variant(33, 8, torch.bfloat16, None) == "tiled"
    assert _variant(4, 4, torch.float32, "registers") == "registers"
    with pytest.raises(ValueError, match="variant must be one of"):
        _variant(4, 4, torch.float32, "fast")


@pytest.mark.parametrize("split", [1, 2, 5])
def test_weight_grad_split_k(split, device):
    """The split-K weight-gradient GEMM gives the same sum however the pixels are chunked
    (the GPU launcher splits; the interpreter default does not)."""
    from fastpixel.kernels.row_lstm import _state_weight_grad, row_lstm_backward, row_lstm_forward

    dtype = torch.float64
    x, w, dy = _inputs(3, 3, 5, 7, dtype, device, seed=2)
    h, c = row_lstm_forward(x, w)
    dx, _ = row_lstm_backward(x, w, h, c, dy, need_weight_grad=False)
    _, _, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    _assert_close(_state_weight_grad(dx, h, w, split=split), dw_r, dtype)


def test_strided_inputs_and_cotangent(device):
    """Non-contiguous input_gates, state_weight and grad (the kernels take every stride)."""
    dtype = torch.float64
    x, w, dy = _inputs(3, 3, 4, 5, dtype, device, seed=3)
    x_nc = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels-last
    w_nc = w.permute(3, 2, 1, 0).contiguous().permute(3, 2, 1, 0)
    dy_nc = dy.transpose(2, 3).contiguous().transpose(2, 3)
    assert not (x_nc.is_contiguous() or w_nc.is_contiguous() or dy_nc.is_contiguous())
    h_k, dx_k, dw_k = _run(lambda a, b: row_lstm_scan(a, b, backend="triton"), x_nc, w_nc, dy_nc)
    h_r, dx_r, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    _assert_close(h_k, h_r, dtype)
    _assert_close(dx_k, dx_r, dtype)
    _assert_close(dw_k, dw_r, dtype)


def test_gradient_of_input_gates_only(device):
    """A frozen state_weight: only d input_gates is formed, and it is still exact."""
    dtype = torch.float64
    x, w, dy = _inputs(1, 5, 3, 4, dtype, device, seed=4)
    xk = x.clone().requires_grad_()
    row_lstm_scan(xk, w, backend="triton").backward(dy)
    _, dx_r, _ = _run(reference.row_lstm_scan, x, w, dy)
    assert w.grad is None
    _assert_close(xk.grad, dx_r, dtype)


# --------------------------------------------------------------------------------------------- GPU


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# (batch, h, H, W) picking each kernel variant on the GPU: resident (h=13; h=20 in 16-bit), tiled
# (h=20 in float32, h=37; the paper's CIFAR-10 layer, h=128)
GPU_SHAPES = [(2, 13, 9, 30), (3, 20, 9, 30), (3, 37, 13, 11), (16, 128, 32, 32)]
GPU_IDS = ["h13", "h20", "h37", "cifar_layer"]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=GPU_IDS)
def test_gpu_low_precision_within_twice_pytorch_error(shape, dtype):
    """bf16/fp16 kernel error vs a float32 reference <= 2x PyTorch's own error in that dtype + atol,
    for the output and both gradients."""
    x, w, dy = _inputs(*shape, torch.float32, "cuda", seed=5)
    exact = _run(reference.row_lstm_scan, x, w, dy)
    torch_low = _run(reference.row_lstm_scan, x.to(dtype), w.to(dtype), dy.to(dtype))
    kernel_low = _run(lambda a, b: row_lstm_scan(a, b, backend="triton"), x.to(dtype), w.to(dtype), dy.to(dtype))
    atol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    for name, ref, pt, ker in zip(("h", "d_input_gates", "d_state_weight"), exact, torch_low, kernel_low):
        scale = max(1.0, ref.abs().max().item())
        assert _max_err(ker, ref) <= 2 * _max_err(pt, ref) + atol * scale, name


@pytest.mark.gpu
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=GPU_IDS)
def test_gpu_float32_parity(shape):
    """float32 on the GPU (IEEE dots, no TF32) against a float64 reference."""
    x, w, dy = _inputs(*shape, torch.float64, "cuda", seed=6)
    exact = _run(reference.row_lstm_scan, x, w, dy)
    kernel = _run(lambda a, b: row_lstm_scan(a, b, backend="triton"), x.float(), w.float(), dy.float())
    for ref, ker in zip(exact, kernel):
        scale = max(1.0, ref.abs().max().item())
        torch.testing.assert_close(ker.double(), ref, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["resident", "registers", "tiled"])
def test_gpu_every_variant_float32(variant):
    """Each variant forced on the GPU (the launcher never picks 'registers') against float64."""
    from fastpixel.kernels.row_lstm import row_lstm_backward, row_lstm_forward

    x, w, dy = _inputs(2, 13, 9, 30, torch.float64, "cuda", seed=8)
    exact = _run(reference.row_lstm_scan, x, w, dy)
    h, c = row_lstm_forward(x.float(), w.float(), variant=variant)
    dx, dw = row_lstm_backward(x.float(), w.float(), h, c, dy.float(), variant=variant)
    for ref, ker in zip(exact, (h, dx, dw)):
        scale = max(1.0, ref.abs().max().item())
        torch.testing.assert_close(ker.double(), ref, rtol=1e-5, atol=1e-5 * scale)


def test_packed_weights_follow_in_place_updates(device):
    """The tiled variant's packed weights are cached on the weight's version: reused while the
    weight is unchanged, repacked after an in-place (optimizer-style) update."""
    from fastpixel.kernels.row_lstm import _PACKED, row_lstm_forward

    dtype = torch.float64
    x, w, _ = _inputs(1, 3, 2, 3, dtype, device, seed=9)
    row_lstm_forward(x, w, variant="tiled")
    first = _PACKED[w]["fwd"][1]
    row_lstm_forward(x, w, variant="tiled")
    assert _PACKED[w]["fwd"][1] is first  # no repack while the weight is unchanged
    with torch.no_grad():
        w.mul_(-0.5)
    h, _ = row_lstm_forward(x, w, variant="tiled")
    assert _PACKED[w]["fwd"][1] is not first
    _assert_close(h, reference.row_lstm_scan(x, w), dtype)


@pytest.mark.parametrize("batch,hid,height,width,ctas,dtype", [
    (1, 20, 3, 4, 2, torch.float64),  # two chunks of 16 units, one per CTA
    (2, 40, 4, 3, 2, torch.float32),  # three chunks over two CTAs: 2 + 1
    (1, 40, 2, 5, 3, torch.float64),  # one chunk per CTA, the last one partial
])
def test_hidden_units_split_over_ctas(batch, hid, height, width, ctas, dtype, device):
    """The tiled variant with each image's hidden units split over several CTAs that exchange every
    row's state (the cooperative path on a GPU; under the interpreter one launch per row runs the
    same row body): h and both gradients still match the reference."""
    from fastpixel.kernels.row_lstm import row_lstm_backward, row_lstm_forward

    x, w, dy = _inputs(batch, hid, height, width, dtype, device, seed=10)
    h, c = row_lstm_forward(x, w, variant="tiled", ctas_per_scan=ctas)
    dx, dw = row_lstm_backward(x, w, h, c, dy, variant="tiled", ctas_per_scan=ctas)
    h_r, dx_r, dw_r = _run(reference.row_lstm_scan, x, w, dy)
    _assert_close(h, h_r, dtype)
    _assert_close(dx, dx_r, dtype)
    _assert_close(dw, dw_r, dtype)


@pytest.mark.gpu
def test_gpu_split_over_ctas_is_bitwise_one_cta_per_image():
    """The launcher's default on a large GPU splits each image's hidden units over co-resident CTAs
    synchronised by flags; one persistent CTA per image does the same per-chunk arithmetic, so h,
    c and both gradients must be bit-for-bit equal. Repeated, so that a missing release/acquire
    has several chances to show."""
    from fastpixel.kernels._group_sync import group_size
    from fastpixel.kernels.row_lstm import row_lstm_backward, row_lstm_forward

    x, w, dy = (t.to(torch.bfloat16) for t in _inputs(16, 128, 32, 32, torch.float32, "cuda", seed=11))
    if group_size(16, 8, torch.device("cuda")) == 1:
        pytest.skip("this GPU has too few SMs for a split at B=16")
    one = row_lstm_forward(x, w, ctas_per_scan=1)
    one_grads = row_lstm_backward(x, w, *one, dy, ctas_per_scan=1)
    for _ in range(3):
        split = row_lstm_forward(x, w)
        split_grads = row_lstm_backward(x, w, *split, dy)
        for name, a, b in zip(("h", "c", "dx", "dw"), (*one, *one_grads), (*split, *split_grads)):
            assert torch.equal(a, b), name


@pytest.mark.gpu
def test_gpu_pipelining_depth_is_bitwise_neutral():
    """The tiled forward pins num_stages=1 so that no load is hoisted across a row's barrier; with
    triton's default pipelining it must still agree bit for bit (one CTA per image and split)."""
    from fastpixel.kernels.row_lstm import row_lstm_forward

    x, w, _ = (t.to(torch.bfloat16) for t in _inputs(16, 128, 32, 32, torch.float32, "cuda", seed=12))
    for ctas in (1, None):
        pinned = row_lstm_forward(x, w, ctas_per_scan=ctas)
        default = row_lstm_forward(x, w, ctas_per_scan=ctas, num_stages=None)
        for a, b in zip(pinned, default):
            assert torch.equal(a, b), ctas
