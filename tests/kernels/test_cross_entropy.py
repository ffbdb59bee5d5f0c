"""Fused softmax cross-entropy kernel vs the reference: loss and gradient, every reduction.

Runs through Triton's CPU interpreter without CUDA (float32 / float64, tiny shapes); the ``gpu``
tier checks bfloat16 / float16 against a float32 reference, no host sync, and CUDA-graph capture.
Every torch.empty is NaN-poisoned (tests/kernels/conftest.py), so an unwritten output fails.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpixel
from fastpixel.ops import pixel_cross_entropy as op
from fastpixel.reference.cross_entropy import pixel_cross_entropy as reference

kernels_ce = pytest.importorskip("fastpixel.kernels.cross_entropy")
kernel = kernels_ce.pixel_cross_entropy

REDUCTIONS = ("none", "sum", "mean")
# float64: ~1e-10 relative; float32: 1e-5 relative, atol 1e-6 times the values' scale
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6)}


def make_logits(b, levels, c, h, w, *, dtype, device, layout="model", scale=3.0):
    """Logits (B, L, C, H, W) in a given memory layout; values ~N(0, scale^2)."""
    g = torch.Generator().manual_seed(1234 + levels * 7 + h)

    def randn(*shape):  # scaled and moved before the view, so the view's strides survive
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).to(device)

    if layout == "model":  # the models' view of the last 1x1 conv's L*C maps: (B, L*C, H, W)
        return randn(b, levels * c, h, w).view(b, levels, c, h, w)
    if layout == "transposed":  # H and W swapped in memory: (C, H, W) do not merge
        return randn(b, levels, c, w, h).transpose(3, 4)
    if layout == "levels_last":  # the L logits of a row adjacent in memory
        return randn(b, c, h, w, levels).permute(0, 4, 1, 2, 3)
    if layout == "sliced":  # every other column of a wider tensor: not dense
        return randn(b, levels, c, h, 2 * w)[..., ::2]
    raise ValueError(layout)


def make_targets(b, levels, c, h, w, *, device, dtype=torch.int64):
    g = torch.Generator().manual_seed(99 + levels + w)
    t = torch.randint(0, levels, (b, c, h, w), generator=g)
    ends = torch.tensor([0, levels - 1])[: t.numel()]  # both ends of the range
    t.view(-1)[: len(ends)] = ends
    return t.to(dtype).to(device)


def run(fn, logits, targets, reduction, cotangent_seed=7, **kwargs):
    """Loss and d(loss . cotangent)/d(logits) for a fixed random cotangent, on a leaf copy of
    ``logits`` with the same strides (even when they are not dense, as for a slice)."""
    x = torch.empty_strided(logits.shape, logits.stride(), dtype=logits.dtype, device=logits.device)
    x = x.copy_(logits).requires_grad_(True)
    assert x.stride() == logits.stride()
    loss = fn(x, targets, reduction, **kwargs)
    g = torch.Generator().manual_seed(cotangent_seed)
    cot = torch.randn(loss.shape, generator=g).to(loss.device, loss.dtype)  # same values for any dtype
    loss.backward(cot)
    return loss.detach(), x.grad, x


def assert_close(actual, expected, dtype):
    tol = TOL[dtype]
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("levels", [2, 3, 4, 255, 256])
def test_parity_rgb(levels, reduction, dtype, device):
    shape = (2, levels, 3, 5, 7)
    logits = make_logits(*shape, dtype=dtype, device=device)
    targets = make_targets(2, levels, 3, 5, 7, device=device)
    loss, grad, _ = run(kernel, logits, targets, reduction)
    ref_loss, ref_grad, _ = run(reference, logits, targets, reduction)
    assert loss.dtype == ref_loss.dtype and loss.shape == ref_loss.shape
    assert grad.dtype == dtype and grad.shape == logits.shape
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("levels", [2, 256])
def test_parity_grey_odd_sizes(levels, reduction, dtype, device):
    b, c, h, w = 3, 1, 13, 5
    logits = make_logits(b, levels, c, h, w, dtype=dtype, device=device)
    targets = make_targets(b, levels, c, h, w, device=device)
    loss, grad, _ = run(kernel, logits, targets, reduction)
    ref_loss, ref_grad, _ = run(reference, logits, targets, reduction)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["transposed", "levels_last", "sliced"])
@pytest.mark.parametrize("levels", [4, 256])
def test_strided_logits_are_read_in_place(levels, layout, dtype, device):
    logits = make_logits(2, levels, 3, 5, 7, dtype=dtype, device=device, layout=layout)
    assert not logits.is_contiguous()
    targets = make_targets(2, levels, 3, 5, 7, device=device)
    loss, grad, _ = run(kernel, logits, targets, "none")
    ref_loss, ref_grad, _ = run(reference, logits, targets, "none")
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


def test_no_copy_of_strided_logits(device, monkeypatch):
    """The launcher hands the kernel the logits' own storage: no .contiguous()/permute copy."""
    logits = make_logits(2, 4, 3, 5, 7, dtype=torch.float32, device=device, layout="transposed")
    seen = []
    real = kernels_ce._ce_fwd_kernel

    class Spy:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                seen.append(args[0])
                return real[grid](*args, **kwargs)

            return launch

    monkeypatch.setattr(kernels_ce, "_ce_fwd_kernel", Spy())
    kernel(logits, make_targets(2, 4, 3, 5, 7, device=device), "sum")
    assert len(seen) == 1 and seen[0] is logits


@pytest.mark.parametrize("layout", ["model", "transposed"])
def test_strided_cotangent(layout, device):
    """grad_output of reduction="none" may itself be strided (e.g. a permuted or expanded view)."""
    b, levels, c, h, w = 2, 5, 3, 7, 5
    logits = make_logits(b, levels, c, h, w, dtype=torch.float64, device=device, layout=layout)
    targets = make_targets(b, levels, c, h, w, device=device)
    cot = torch.randn(b, w, h, c, dtype=torch.float64).permute(0, 3, 2, 1).to(device)
    grads = []
    for fn in (kernel, reference):
        x = logits.detach().clone().requires_grad_(True)
        fn(x, targets, "none").backward(cot)
        grads.append(x.grad)
    assert_close(grads[0], grads[1], torch.float64)


@pytest.mark.parametrize("target_dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_target_dtypes(target_dtype, device):
    levels = 256 if target_dtype != torch.int16 else 200
    logits = make_logits(2, levels, 3, 5, 7, dtype=torch.float64, device=device)
    targets = make_targets(2, levels, 3, 5, 7, device=device, dtype=target_dtype)
    if target_dtype == torch.uint8:
        assert int(targets.max()) >= 128  # values that a sign-extending cast would break
    loss, grad, _ = run(kernel, logits, targets, "none")
    ref_loss, ref_grad, _ = run(reference, logits, targets.long(), "none")
    assert_close(loss, ref_loss, torch.float64)
    assert_close(grad, ref_grad, torch.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("levels", [2, 256])
def test_inplace_backward(levels, reduction, device):
    dtype = torch.float32
    logits = make_logits(2, levels, 3, 5, 7, dtype=dtype, device=device)
    targets = make_targets(2, levels, 3, 5, 7, device=device)
    ref_loss, ref_grad, _ = run(reference, logits, targets, reduction)
    loss, grad, x = run(kernel, logits, targets, reduction, inplace_backward=True)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
    # the gradient lives in the logits' own storage: no L*N buffer was allocated for it
    assert grad.data_ptr() == x.data_ptr()
    assert torch.equal(x.detach(), grad)


def test_inplace_backward_twice_raises(device):
    logits = make_logits(2, 4, 1, 5, 7, dtype=torch.float32, device=device).requires_grad_(True)
    targets = make_targets(2, 4, 1, 5, 7, device=device)
    loss = kernel(logits, targets, "sum", inplace_backward=True)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="cannot be back-propagated twice"):
        loss.backward()


def test_backward_twice_without_inplace(device):
    """The saved gradient is not consumed: retain_graph works and gradients accumulate."""
    logits = make_logits(2, 4, 1, 5, 7, dtype=torch.float64, device=device)
    targets = make_targets(2, 4, 1, 5, 7, device=device)
    _, ref_grad, _ = run(reference, logits, targets, "mean", cotangent_seed=3)
    x = logits.clone().requires_grad_(True)
    loss = kernel(x, targets, "mean")
    cot = torch.randn((), generator=torch.Generator().manual_seed(3)).to(device, torch.float64)  # as run()
    loss.backward(cot, retain_graph=True)
    loss.backward(cot)
    assert_close(x.grad, 2 * ref_grad, torch.float64)


def test_inplace_rejects_overlapping_logits(device):
    base = make_logits(2, 4, 3, 5, 1, dtype=torch.float32, device=device)
    logits = base.expand(2, 4, 3, 5, 7).detach().requires_grad_(True)  # stride 0 along W
    with pytest.raises(ValueError, match="do not overlap"):
        kernel(logits, make_targets(2, 4, 3, 5, 7, device=device), "sum", inplace_backward=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forward_without_grad(reduction, device):
    """No gradient wanted: the kernel writes only the loss (and leaves the logits untouched)."""
    logits = make_logits(2, 256, 3, 5, 7, dtype=torch.float64, device=device)
    before = logits.clone()
    targets = make_targets(2, 256, 3, 5, 7, device=device)
    with torch.no_grad():
        loss = kernel(logits, targets, reduction, inplace_backward=True)
    assert_close(loss, reference(logits, targets, reduction), torch.float64)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch(reduction, device):
    logits = torch.zeros(0, 4, 3, 5, 7, device=device, requires_grad=True)
    targets = torch.zeros(0, 3, 5, 7, dtype=torch.int64, device=device)
    loss = kernel(logits, targets, reduction)
    ref = reference(logits, targets, reduction)
    assert loss.shape == ref.shape
    torch.testing.assert_close(loss, ref, equal_nan=True)


@pytest.mark.parametrize("bad", [-1, 4, 127])
def test_bad_targets_raise_when_validating(bad, device):
    logits = make_logits(1, 4, 3, 5, 7, dtype=torch.float32, device=device)
    targets = make_targets(1, 4, 3, 5, 7, device=device)
    targets[0, 2, 3, 1] = bad
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        kernel(logits, targets, "sum", validate=True)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        op(logits, targets, "sum", validate=True, backend="triton")


def test_bad_targets_give_nan_without_validation(device):
    levels = 4
    logits = make_logits(1, levels, 3, 5, 7, dtype=torch.float32, device=device).requires_grad_(True)
    targets = make_targets(1, levels, 3, 5, 7, device=device)
    targets[0, 2, 3, 1] = levels
    loss = kernel(logits, targets, "none", validate=False)
    loss.sum().backward()
    assert torch.isnan(loss[0, 2, 3, 1])
    assert torch.isnan(logits.grad[0, :, 2, 3, 1]).all()
    good = torch.ones_like(targets, dtype=torch.bool)
    good[0, 2, 3, 1] = False
    assert torch.isfinite(loss[good]).all()
    assert torch.isfinite(logits.grad.permute(0, 2, 3, 4, 1)[good]).all()
    assert torch.isnan(kernel(logits.detach(), targets, "sum", validate=False))


def test_no_host_sync_without_validation(device, monkeypatch):
    """validate=False reads nothing back from the device (forward and backward)."""
    logits = make_logits(2, 256, 3, 5, 7, dtype=torch.float32, device=device).requires_grad_(True)
    targets = make_targets(2, 256, 3, 5, 7, device=device)

    def no_sync(*args, **kwargs):
        raise AssertionError("host sync in the validate=False path")

    for name in ("item", "tolist", "__int__", "__bool__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, no_sync)
    loss = op(logits, targets, "mean", validate=False, backend="triton")
    loss.backward()
    monkeypatch.undo()
    assert torch.isfinite(logits.grad).all()
    # and the sync-checker itself bites: validate=True reads the bad-target count back
    for name in ("item", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, no_sync)
    with pytest.raises(AssertionError, match="host sync"):
        op(logits.detach(), targets, "mean", validate=True, backend="triton")


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_op_validates_on_both_backends(backend, device):
    logits = make_logits(1, 4, 1, 5, 7, dtype=torch.float32, device=device)
    targets = make_targets(1, 4, 1, 5, 7, device=device)
    targets[0, 0, 0, 0] = -3
    with pytest.raises(ValueError, match=r"got values in \[-3, 3\]"):
        op(logits, targets, "mean", validate=True, backend=backend)


def test_op_dispatches_to_the_kernel(device):
    """backend="triton" runs the kernel (the in-place option is visible in the logits)."""
    logits = make_logits(2, 4, 3, 5, 7, dtype=torch.float32, device=device).requires_grad_(True)
    before = logits.detach().clone()
    targets = make_targets(2, 4, 3, 5, 7, device=device)
    loss = op(logits, targets, "sum", backend="triton", inplace_backward=True)
    assert_close(loss.detach(), reference(before, targets, "sum"), torch.float32)
    assert not torch.equal(logits.detach(), before)
    y = before.clone().requires_grad_(True)  # the reference ignores the option
    with fastpixel.use_backend("reference"):
        op(y, targets, "sum", inplace_backward=True).backward()
    assert torch.equal(y.detach(), before)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm"])
def test_model_loss_and_parameter_gradients(name, device):
    """A model's logits (its own view) through the triton loss: same NLL and parameter grads."""
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=3, levels=256, hidden=4, layers=1, backend="reference").to(device).double()
    x = torch.randint(0, 256, (2, 3, 5, 7), device=device)
    results = []
    for backend in ("reference", "triton"):
        model.zero_grad()
        logits = model(x)
        loss = op(logits, x, "mean", backend=backend)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert_close(results[1][0], results[0][0], torch.float64)
    for g_triton, g_ref in zip(results[1][1], results[0][1]):
        assert_close(g_triton, g_ref, torch.float64)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    b=st.integers(1, 3),
    c=st.sampled_from([1, 3]),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    levels=st.integers(2, 256),
    reduction=st.sampled_from(REDUCTIONS),
    layout=st.sampled_from(["model", "transposed", "levels_last", "sliced"]),
)
def test_property_random_shapes(b, c, h, w, levels, reduction, layout):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    logits = make_logits(b, levels, c, h, w, dtype=torch.float64, device=device, layout=layout)
    targets = make_targets(b, levels, c, h, w, device=device)
    loss, grad, _ = run(kernel, logits, targets, reduction)
    ref_loss, ref_grad, _ = run(reference, logits, targets, reduction)
    assert_close(loss, ref_loss, torch.float64)
    assert_close(grad, ref_grad, torch.float64)


# -- low precision (bf16 on GPU only) and the GPU tier ----------------------------------------

LOW = {torch.bfloat16: 1e-3, torch.float16: 1e-4}  # small atol, times the reference's magnitude


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.bfloat16, marks=pytest.mark.gpu), torch.float16], ids=["bf16", "f16"]
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("levels", [2, 256])
def test_low_precision_parity(levels, reduction, dtype, device):
    """Kernel error vs a float32 reference <= 2x PyTorch's own error in that dtype + small atol.

    bfloat16 on GPU only (the interpreter has no bf16); float16 also under the interpreter, with
    PyTorch's CPU float16 as the yardstick there."""
    b, c, h, w = (4, 3, 32, 32) if device == "cuda" else (2, 3, 5, 7)
    logits = make_logits(b, levels, c, h, w, dtype=torch.float32, device=device).to(dtype)
    targets = make_targets(b, levels, c, h, w, device=device)

    def torch_in_dtype(x, t, red):  # what PyTorch computes when it stays in ``dtype``
        loss = -torch.log_softmax(x, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
        return loss if red == "none" else loss.sum() if red == "sum" else loss.mean()

    ref_loss, ref_grad, _ = run(reference, logits.float(), targets, reduction)
    pt_loss, pt_grad, _ = run(torch_in_dtype, logits, targets, reduction)
    k_loss, k_grad, _ = run(kernel, logits, targets, reduction)
    assert k_loss.dtype == torch.float32 and k_grad.dtype == dtype
    for got, pt, ref in ((k_loss, pt_loss, ref_loss), (k_grad, pt_grad, ref_grad)):
        err_k = (got.float() - ref).abs().max().item()
        err_pt = (pt.float() - ref).abs().max().item()
        assert err_k <= 2 * err_pt + LOW[dtype] * ref.abs().max().item(), (err_k, err_pt)


@pytest.mark.gpu
def test_gpu_no_sync_without_validation():
    logits = make_logits(4, 256, 3, 16, 16, dtype=torch.bfloat16, device="cuda").requires_grad_(True)
    targets = make_targets(4, 256, 3, 16, 16, device="cuda", dtype=torch.uint8)
    kernel(logits, targets, "mean", validate=False).backward()  # compile outside the check
    logits.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        kernel(logits, targets, "mean", validate=False).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.gpu
def test_gpu_cuda_graph_capture():
    """Forward (loss + saved gradient) and backward scale replay from a captured CUDA graph."""
    logits = make_logits(2, 256, 3, 8, 8, dtype=torch.float32, device="cuda")
    targets = make_targets(2, 256, 3, 8, 8, device="cuda")
    go = torch.full((), 0.5, device="cuda")

    def step():
        loss, g, _ = kernels_ce.cross_entropy_fwd(logits, targets, "mean", compute_grad=True, inplace=False)
        return loss, kernels_ce.cross_entropy_bwd(g, go, inplace=False)

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss, dx = step()
    logits.copy_(logits * 0.5)
    graph.replay()
    torch.cuda.synchronize()
    x = logits.detach().clone().requires_grad_(True)
    ref = reference(x, targets, "mean")
    ref.backward(go)
    assert_close(loss, ref.detach(), torch.float32)
    assert_close(dx, x.grad, torch.float32)
