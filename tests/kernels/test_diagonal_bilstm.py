"""Triton Diagonal BiLSTM scan vs the reference: forward, and the gradients of both gates and both
state weights, under TRITON_INTERPRET=1 on CPU (float32 / float64, tiny shapes) and on a GPU (bf16).

Outputs are NaN-poisoned (tests/kernels/conftest.py), so an element the kernels forget to write fails.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpixel
from fastpixel import reference

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def _inputs(batch, height, width, hidden, dtype, device, *, strided=False, seed=0):
    """Gates (B, 4h, H, W) per direction and state weights (4h, h, 2, 1), all requiring grad.

    strided: the two gate maps are the halves of one (B, 8h, H, W) map, as the layer makes them.
    """
    gen = torch.Generator().manual_seed(seed)
    four_h = 4 * hidden
    if strided:
        both = torch.randn(batch, 2 * four_h, height, width, generator=gen, dtype=torch.float64)
        gates = [g.to(device=device, dtype=dtype) for g in both.chunk(2, dim=1)]
    else:
        gates = [
            torch.randn(batch, four_h, height, width, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
            for _ in range(2)
        ]
    weights = [
        (torch.rand(four_h, hidden, 2, 1, generator=gen, dtype=torch.float64) * 2 - 1).to(device=device, dtype=dtype)
        for _ in range(2)
    ]
    gates_lr, gates_rl = (g.detach().requires_grad_() for g in gates)
    w_lr, w_rl = (w.requires_grad_() for w in weights)
    return gates_lr, w_lr, gates_rl, w_rl


def _forward_backward(inputs, backend, cotangent):
    out = fastpixel.ops.diagonal_bilstm_scan(*inputs, backend=backend)
    grads = torch.autograd.grad(out, inputs, cotangent)
    return out, grads


# (batch, height, width, hidden, dtype, strided gates): every n in {1, 2, 5, 7}, non-square both
# ways, h = 3, 5 and 20 (not powers of two), batch 1 and 3, float32 and float64.
CASES = [
    (1, 1, 1, 3, torch.float64, False),
    (3, 2, 2, 5, torch.float32, False),
    (1, 5, 5, 3, torch.float64, True),
    (1, 7, 7, 5, torch.float32, False),
    (3, 3, 5, 3, torch.float64, False),
    (1, 5, 2, 5, torch.float32, True),
    (3, 5, 2, 3, torch.float64, False),
    (1, 2, 7, 5, torch.float64, False),
    (1, 3, 4, 20, torch.float64, False),  # h = 20: two chunks of 16 hidden units, the second partial
]


@pytest.mark.parametrize("batch,height,width,hidden,dtype,strided", CASES)
def test_parity_with_reference(device, batch, height, width, hidden, dtype, strided):
    inputs = _inputs(batch, height, width, hidden, dtype, device, strided=strided)
    gen = torch.Generator().manual_seed(1)
    cotangent = torch.randn(batch, hidden, height, width, generator=gen, dtype=torch.float64).to(device, dtype)
    out_ref, grads_ref = _forward_backward(inputs, "reference", cotangent)
    out, grads = _forward_backward(inputs, "triton", cotangent)
    assert out.grad_fn is not None and "fastpixel_diagonal_bilstm_scan_forward" in out.grad_fn.name()
    assert out.shape == (batch, hidden, height, width) and out.dtype == dtype
    torch.testing.assert_close(out, out_ref, **TOL[dtype])
    for name, g, g_ref in zip(("gates_lr", "w_lr", "gates_rl", "w_rl"), grads, grads_ref):
        assert g.shape == g_ref.shape, name
        torch.testing.assert_close(g, g_ref, **TOL[dtype], msg=lambda m, name=name: f"d{name}: {m}")


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.integers(1, 2), height=st.integers(1, 4), width=st.integers(1, 4), hidden=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_forward_matches_reference_on_random_shapes(device, batch, height, width, hidden, seed):
    inputs = [t.detach() for t in _inputs(batch, height, width, hidden, torch.float64, device, seed=seed)]
    out = fastpixel.ops.diagonal_bilstm_scan(*inputs, backend="triton")
    torch.testing.assert_close(out, reference.diagonal_bilstm_scan(*inputs), **TOL[torch.float64])


def test_directions_are_not_interchangeable(device):
    """Swapping the two directions' inputs changes the output (the kernel mirrors and shifts rl only)."""
    gates_lr, w_lr, gates_rl, w_rl = (t.detach() for t in _inputs(1, 3, 4, 3, torch.float64, device, seed=3))
    out = fastpixel.ops.diagonal_bilstm_scan(gates_lr, w_lr, gates_rl, w_rl, backend="triton")
    swapped = fastpixel.ops.diagonal_bilstm_scan(gates_rl, w_rl, gates_lr, w_lr, backend="triton")
    ref_swapped = reference.diagonal_bilstm_scan(gates_rl, w_rl, gates_lr, w_lr)
    torch.testing.assert_close(swapped, ref_swapped, **TOL[torch.float64])
    assert (out - swapped).abs().max() > 1e-3


def test_gate_maps_with_different_strides(device):
    """One gate map channels-last, the other a transposed view: still the reference's result."""
    gates_lr, w_lr, gates_rl, w_rl = (t.detach() for t in _inputs(2, 3, 2, 3, torch.float64, device, seed=7))
    gates_lr = gates_lr.contiguous(memory_format=torch.channels_last)
    gates_rl = gates_rl.transpose(2, 3).contiguous().transpose(2, 3)
    assert gates_lr.stride() != gates_rl.stride()
    out = fastpixel.ops.diagonal_bilstm_scan(gates_lr, w_lr, gates_rl, w_rl, backend="triton")
    expected = reference.diagonal_bilstm_scan(gates_lr, w_lr, gates_rl, w_rl)
    torch.testing.assert_close(out, expected, **TOL[torch.float64])


def test_backward_is_deterministic(device):
    """No atomics: two backward passes give bitwise-equal gradients."""
    inputs = _inputs(3, 3, 4, 3, torch.float32, device, seed=4)
    cotangent = torch.randn(3, 3, 3, 4, dtype=torch.float32, device=device)
    _, first = _forward_backward(inputs, "triton", cotangent)
    _, second = _forward_backward(inputs, "triton", cotangent)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("batch,height,width,hidden", [(4, 16, 16, 32), (2, 32, 32, 128), (3, 7, 13, 5)])
def test_bf16_error_within_twice_pytorch(batch, height, width, hidden):
    """bf16: the kernel's error vs a float64 reference is at most 2x PyTorch's own bf16 error + atol,
    for the output and every gradient."""
    inputs64 = _inputs(batch, height, width, hidden, torch.float64, "cuda", seed=5)
    inputs16 = [t.detach().to(torch.bfloat16).requires_grad_() for t in inputs64]
    inputs64 = [t.detach().to(torch.bfloat16).double().requires_grad_() for t in inputs16]  # same values
    cot = torch.randn(batch, hidden, height, width, device="cuda", dtype=torch.float64).to(torch.bfloat16)
    exact = _forward_backward(inputs64, "reference", cot.double())
    torch_bf16 = _forward_backward(inputs16, "reference", cot)
    kernel_bf16 = _forward_backward(inputs16, "triton", cot)
    names = ("out", "d_gates_lr", "d_w_lr", "d_gates_rl", "d_w_rl")
    for name, e, t, k in zip(names, *([r[0], *r[1]] for r in (exact, torch_bf16, kernel_bf16))):
        torch_err = (t.double() - e).abs().max().item()
        kernel_err = (k.double() - e).abs().max().item()
        atol = 1e-3 * max(1.0, e.abs().max().item())
        assert kernel_err <= 2 * torch_err + atol, f"{name}: kernel {kernel_err:.3g} vs torch {torch_err:.3g}"


@pytest.mark.gpu
def test_float32_on_gpu_matches_reference():
    inputs = _inputs(2, 9, 6, 24, torch.float32, "cuda", seed=6)
    cot = torch.randn(2, 24, 9, 6, device="cuda")
    out_ref, grads_ref = _forward_backward(inputs, "reference", cot)
    out, grads = _forward_backward(inputs, "triton", cot)
    for got, want in zip((out, *grads), (out_ref, *grads_ref)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * max(1.0, want.abs().max().item()))


def test_packed_weights_follow_in_place_updates(device):
    """The packed weight layout is cached on the weight's version: reused while the weight is
    unchanged, repacked after an in-place (optimizer-style) update."""
    from fastpixel.kernels import diagonal_bilstm as kernels

    gates_lr, w_lr, gates_rl, w_rl = (t.detach() for t in _inputs(1, 3, 4, 3, torch.float64, device, seed=8))
    kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)
    first = kernels._PACKED[w_lr]["fwd"][1]
    kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)
    assert kernels._PACKED[w_lr]["fwd"][1] is first  # no repack while the weights are unchanged
    with torch.no_grad():
        w_rl.mul_(-0.5)  # an optimizer step on the other direction's weight
    out = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)[0]
    assert kernels._PACKED[w_lr]["fwd"][1] is not first
    torch.testing.assert_close(out, reference.diagonal_bilstm_scan(gates_lr, w_lr, gates_rl, w_rl),
                               **TOL[torch.float64])


@pytest.mark.parametrize("split", [1, 2, 5])
def test_weight_grad_split_k(split, device):
    """The split-K weight-gradient GEMM gives the reference's gradients however the pixels are
    chunked (the GPU launcher splits to fill the GPU; the interpreter default does not)."""
    from fastpixel.kernels import diagonal_bilstm as kernels

    inputs = _inputs(3, 3, 4, 3, torch.float64, device, seed=9)
    cotangent = torch.randn(3, 3, 3, 4, dtype=torch.float64, device=device)
    _, grads_ref = _forward_backward(inputs, "reference", cotangent)
    gates_lr, w_lr, gates_rl, w_rl = (t.detach() for t in inputs)
    _, pre, c, h = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)
    dgates_lr, _, dgates_rl, _ = kernels.diagonal_bilstm_backward(cotangent, pre, c, h, w_lr, w_rl)
    dg = torch.stack((dgates_lr, dgates_rl)).permute(0, 1, 3, 4, 2)  # (2, B, H, W, 4h)
    dw = kernels._state_weight_grad(dg, h, torch.float64, split=split)
    torch.testing.assert_close(dw[0], grads_ref[1], **TOL[torch.float64])
    torch.testing.assert_close(dw[1], grads_ref[3], **TOL[torch.float64])


@pytest.mark.parametrize("batch,height,width,hidden,ctas,dtype", [
    (1, 3, 4, 20, 2, torch.float64),  # two chunks of 16 units, one per CTA
    (2, 4, 2, 40, 2, torch.float32),  # three chunks over two CTAs: 2 + 1
    (1, 2, 3, 40, 3, torch.float64),  # one chunk per CTA, the last one partial
])
def test_hidden_units_split_over_ctas(batch, height, width, hidden, ctas, dtype, device):
    """Each scan's hidden units split over several CTAs that exchange every step's state (the
    cooperative path on a GPU; under the interpreter one launch per step runs the same step body):
    forward and every gradient still match the reference."""
    from fastpixel.kernels import diagonal_bilstm as kernels

    inputs = _inputs(batch, height, width, hidden, dtype, device, seed=10)
    cotangent = torch.randn(batch, hidden, height, width, dtype=torch.float64).to(device, dtype)
    out_ref, grads_ref = _forward_backward(inputs, "reference", cotangent)
    gates_lr, w_lr, gates_rl, w_rl = (t.detach() for t in inputs)
    out, pre, c, h = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl, ctas_per_scan=ctas)
    grads = kernels.diagonal_bilstm_backward(cotangent, pre, c, h, w_lr, w_rl, ctas_per_scan=ctas)
    torch.testing.assert_close(out, out_ref, **TOL[dtype])
    for name, g, g_ref in zip(("gates_lr", "w_lr", "gates_rl", "w_rl"), grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **TOL[dtype], msg=lambda m, name=name: f"d{name}: {m}")


def _cifar_layer_on_gpu(seed):
    """bf16 inputs of the paper's CIFAR-10 layer (B=16, 32x32, h=128) and a cotangent, on the GPU."""
    gates_lr, w_lr, gates_rl, w_rl = (t.detach().to(torch.bfloat16) for t in _inputs(16, 32, 32, 128, torch.float32,
                                                                                      "cuda", seed=seed))
    cot = torch.randn(16, 128, 32, 32, device="cuda").to(torch.bfloat16)
    return gates_lr, w_lr, gates_rl, w_rl, cot


@pytest.mark.gpu
def test_gpu_split_over_ctas_is_bitwise_one_cta_per_scan():
    """The launcher's default on a large GPU splits each (image, direction) over co-resident CTAs
    synchronised by flags; one persistent CTA per (image, direction) does the same per-chunk
    arithmetic, so every output must be bit-for-bit equal. Repeated, so that a missing
    release/acquire (a stale neighbour state) has several chances to show."""
    from fastpixel.kernels import diagonal_bilstm as kernels
    from fastpixel.kernels._group_sync import group_size

    gates_lr, w_lr, gates_rl, w_rl, cot = _cifar_layer_on_gpu(seed=11)
    if group_size(32, 8, torch.device("cuda")) == 1:
        pytest.skip("this GPU has too few SMs for a split at B=16")
    one = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl, ctas_per_scan=1)
    one_grads = kernels.diagonal_bilstm_backward(cot, *one[1:], w_lr, w_rl, ctas_per_scan=1)
    for _ in range(3):
        split = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)
        split_grads = kernels.diagonal_bilstm_backward(cot, *split[1:], w_lr, w_rl)
        for name, a, b in zip(("out", "pre", "c", "h", "dg_lr", "dw_lr", "dg_rl", "dw_rl"),
                              (*one, *one_grads), (*split, *split_grads)):
            assert torch.equal(a, b), name


@pytest.mark.gpu
def test_gpu_pipelining_depth_is_bitwise_neutral():
    """Software pipelining (triton's default num_stages) must never move a neighbour-state load
    across a step's barrier: the forward with num_stages=1 and with the default agree bit for bit."""
    from fastpixel.kernels import diagonal_bilstm as kernels

    gates_lr, w_lr, gates_rl, w_rl, _ = _cifar_layer_on_gpu(seed=12)
    for ctas in (1, None):
        pinned = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl, ctas_per_scan=ctas, num_stages=1)
        default = kernels.diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl, ctas_per_scan=ctas)
        for a, b in zip(pinned, default):
            assert torch.equal(a, b), ctas
