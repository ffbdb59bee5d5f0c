"""Autocast: every op gets its inputs in the autocast dtype and returns what the reference returns.

The rule (kernels/_common.register_autocast_rule, one per op), taken from what the reference does
under the same autocast:

* masked conv: x, weight, bias cast to the autocast dtype; y in it (as ``F.conv2d``);
* Row LSTM / Diagonal BiLSTM scans: gates and state weights cast; h in promote(gates dtype,
  autocast dtype) (the reference's conv1d/einsum runs in the autocast dtype and its sum with the
  gates promotes), so bf16 gates give bf16 h; the saved c stays float32;
* cross-entropy: nothing cast (the kernel reads the logits in their dtype), the loss float32
  (the reference promotes to float32, ``log_softmax`` autocasts to float32).

CPU: the reference's dtype routing under bf16 autocast, and the kernels under float16 autocast
through Triton's interpreter (it has no bf16): same dtypes as the reference, the kernel saw float16,
and its error against a float64 reference is at most 2x PyTorch's own float16 error + a small atol.
GPU tier: the same under bf16 autocast on CUDA, at larger shapes.
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel import reference
from fastpixel.masks import MaskSpec, color_groups, gate_groups

mc = pytest.importorskip("fastpixel.kernels.masked_conv")
ce = pytest.importorskip("fastpixel.kernels.cross_entropy")
rl = pytest.importorskip("fastpixel.kernels.row_lstm")
dl = pytest.importorskip("fastpixel.kernels.diagonal_bilstm")

ATOL = {torch.float16: 1e-3, torch.bfloat16: 1e-2}  # times the exact result's magnitude


def _randn(*shape, device, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).float().to(device)


def _op_cases(device, size, hid=4):
    """name -> (kernel fn, reference fn, float32 inputs, extra non-differentiable args) at (B, H, W) = size."""
    b, h, w = size
    spec = MaskSpec((3, 3), "B", color_groups(6, 3), gate_groups(hid, 3))
    targets = torch.randint(0, 5, (b, 3, h, w), generator=torch.Generator().manual_seed(9)).to(device)
    return {
        "masked_conv": (
            lambda x, wt, bias: mc.masked_conv2d(x, wt, bias, spec),
            lambda x, wt, bias: reference.masked_conv2d(x, wt, bias, spec),
            [_randn(b, 6, h, w, device=device), _randn(4 * hid, 6, 3, 3, device=device, scale=0.3, seed=1),
             _randn(4 * hid, device=device, scale=0.1, seed=2)],
        ),
        "row_lstm": (
            rl.row_lstm_scan, reference.row_lstm_scan,
            [_randn(b, 4 * hid, h, w, device=device, seed=3), _randn(4 * hid, hid, 1, 3, device=device, scale=0.4, seed=4)],
        ),
        "diagonal_bilstm": (
            lambda g_lr, w_lr, g_rl, w_rl: dl.diagonal_bilstm_scan(g_lr, w_lr, g_rl.to(g_lr.dtype), w_rl),
            lambda g_lr, w_lr, g_rl, w_rl: reference.diagonal_bilstm_scan(g_lr, w_lr, g_rl.to(g_lr.dtype), w_rl),
            [_randn(b, 4 * hid, h, w, device=device, seed=5), _randn(4 * hid, hid, 2, 1, device=device, scale=0.4, seed=6),
             _randn(b, 4 * hid, h, w, device=device, seed=7), _randn(4 * hid, hid, 2, 1, device=device, scale=0.4, seed=8)],
        ),
        "cross_entropy": (
            lambda logits: ce.pixel_cross_entropy(logits, targets, "mean", validate=False),
            lambda logits: reference.pixel_cross_entropy(logits, targets, "mean"),
            [_randn(b, 5, 3, h, w, device=device, scale=3.0, seed=10)],
        ),
    }  # fmt: skip


def _run(fn, inputs, *, autocast_dtype=None, gates_in_low=False, cotangent_seed=11):
    """Output and input gradients of fn; under autocast when autocast_dtype is given.

    gates_in_low: the first input (the scans' gates, the loss' logits) arrives already in the autocast
    dtype, as it does in a model (the conv before it returns the autocast dtype). (The Diagonal
    BiLSTM cases give the right-to-left gates the left-to-right gates' dtype: one conv makes both.)"""
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    args = list(leaves)
    if gates_in_low:
        args[0] = args[0].to(autocast_dtype)
    if autocast_dtype is None:
        out = fn(*args)
    else:
        with torch.autocast(args[0].device.type, dtype=autocast_dtype):
            out = fn(*args)
    g = torch.Generator().manual_seed(cotangent_seed)
    cot = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype)
    grads = torch.autograd.grad(out, leaves, cot)
    return out, grads


def _check_against_exact(name, kernel, torch_low, exact, dtype):
    for what, k, t, e in zip(["output"] + [f"grad {i}" for i in range(len(exact) - 1)], kernel, torch_low, exact):
        err_k = (k.double() - e).abs().max().item()
        err_t = (t.double() - e).abs().max().item()
        scale = max(1.0, e.abs().max().item())
        assert err_k <= 2 * err_t + ATOL[dtype] * scale, f"{name} {what}: kernel {err_k:.3g} vs torch {err_t:.3g}"


def _exact(ref_fn, inputs):
    out, grads = _run(ref_fn, [t.double() for t in inputs])
    return [out, *grads]


# -- CPU: the reference's dtype routing --------------------------------------------------------
def test_reference_dtype_routing_under_cpu_autocast():
    """What the kernels must reproduce: the reference's output dtypes under bf16 autocast on CPU."""
    cases = _op_cases("cpu", (2, 4, 5))
    dtype = torch.bfloat16
    expected = {  # (first input in float32, first input already bf16)
        "masked_conv": (dtype, dtype),
        "row_lstm": (torch.float32, dtype),
        "diagonal_bilstm": (torch.float32, dtype),
        "cross_entropy": (torch.float32, torch.float32),
    }
    for name, (_, ref_fn, inputs) in cases.items():
        for low, want in zip((False, True), expected[name]):
            out, grads = _run(ref_fn, inputs, autocast_dtype=dtype, gates_in_low=low)
            assert out.dtype == want, (name, low, out.dtype)
            assert all(g.dtype == torch.float32 for g in grads), name  # leaves are float32


def test_model_under_cpu_autocast_reference():
    """A model on the reference path under bf16 autocast: bf16 logits, float32 log-likelihood,
    float32 parameter gradients."""
    model = fastpixel.create_model("row_lstm", channels=3, levels=4, hidden=4, layers=1, backend="reference")
    x = torch.randint(0, 4, (2, 3, 4, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        log_p = model.log_prob(x)
    assert logits.dtype == torch.bfloat16 and log_p.dtype == torch.float32
    (-log_p.sum()).backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters())


# -- CPU: the kernels under float16 autocast (interpreter) -------------------------------------
@pytest.mark.parametrize("gates_in_low", [False, True], ids=["f32_inputs", "f16_first_input"])
@pytest.mark.parametrize("name", ["masked_conv", "row_lstm", "diagonal_bilstm", "cross_entropy"])
def test_kernels_under_autocast_match_reference(name, gates_in_low, device):
    dtype = torch.float16 if device == "cpu" else torch.bfloat16
    size = (2, 4, 5) if device == "cpu" else (8, 32, 32)
    kernel_fn, ref_fn, inputs = _op_cases(device, size)[name]
    k_out, k_grads = _run(kernel_fn, inputs, autocast_dtype=dtype, gates_in_low=gates_in_low)
    t_out, t_grads = _run(ref_fn, inputs, autocast_dtype=dtype, gates_in_low=gates_in_low)
    assert k_out.dtype == t_out.dtype and k_out.shape == t_out.shape
    assert [g.dtype for g in k_grads] == [g.dtype for g in t_grads]
    if gates_in_low:  # compare with the exact result of the same (rounded) first input
        inputs = [inputs[0].to(dtype).float(), *inputs[1:]]
    _check_against_exact(name, [k_out, *k_grads], [t_out, *t_grads], _exact(ref_fn, inputs), dtype)


def test_kernels_receive_the_autocast_dtype(device, monkeypatch):
    """Under autocast the launchers get float32 inputs already cast (the tensor-core path on a GPU)."""
    dtype = torch.float16 if device == "cpu" else torch.bfloat16
    seen = {}

    def spy(module, name, key, pick):
        real = getattr(module, name)

        def launcher(*args, **kwargs):
            seen[key] = pick(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, launcher)

    spy(mc, "_gemm", "masked_conv", lambda a: (a[0].dtype, a[1].dtype))
    spy(rl, "row_lstm_forward", "row_lstm", lambda a: (a[0].dtype, a[1].dtype))
    spy(dl, "diagonal_bilstm_forward", "diagonal_bilstm", lambda a: tuple(t.dtype for t in a))
    for name, (kernel_fn, _, inputs) in _op_cases(device, (1, 3, 4)).items():
        if name != "cross_entropy":
            _run(kernel_fn, inputs, autocast_dtype=dtype)
    assert seen == {
        "masked_conv": (dtype, dtype),
        "row_lstm": (dtype, dtype),
        "diagonal_bilstm": (dtype,) * 4,
    }


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_model_under_autocast_triton_matches_reference(name, device):
    """Every op on triton under autocast: the reference's dtypes, logits and log-likelihood within
    2x PyTorch's own low-precision error of a float64 model, float32 parameter gradients."""
    dtype = torch.float16 if device == "cpu" else torch.bfloat16
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=3, levels=4, hidden=4, layers=1).to(device)
    x = torch.randint(0, 4, (2, 3, 4, 5), device=device)
    exact = model.double().to_backend("reference").log_prob(x).detach()
    model.float()
    results = {}
    for backend in ("reference", "triton"):
        model.to_backend(backend).zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype):
            logits = model(x)
            log_p = model.log_prob(x)
        (-log_p.sum()).backward()
        results[backend] = (logits.dtype, log_p.detach(), [p.grad for p in model.parameters()])
    assert results["triton"][0] == results["reference"][0] == dtype
    assert results["triton"][1].dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in results["triton"][2])
    err_k = (results["triton"][1].double() - exact).abs().max().item()
    err_t = (results["reference"][1].double() - exact).abs().max().item()
    assert err_k <= 2 * err_t + ATOL[dtype] * max(1.0, exact.abs().max().item()), (err_k, err_t)


# -- GPU tier: bf16 autocast at the paper's hidden size -----------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("hid", [32, 128])
@pytest.mark.parametrize("name", ["masked_conv", "row_lstm", "diagonal_bilstm", "cross_entropy"])
def test_gpu_bf16_autocast_within_twice_pytorch_error(name, hid):
    """CUDA bf16 autocast, B=16 32x32 images, h=32 and the paper's h=128 (the scans' tiled variants):
    kernel error vs a float64 reference <= 2x PyTorch's own bf16-autocast error + atol, outputs and
    every input gradient, with the reference's dtypes."""
    dtype = torch.bfloat16
    kernel_fn, ref_fn, inputs = _op_cases("cuda", (16, 32, 32), hid=hid)[name]
    k_out, k_grads = _run(kernel_fn, inputs, autocast_dtype=dtype, gates_in_low=True)
    t_out, t_grads = _run(ref_fn, inputs, autocast_dtype=dtype, gates_in_low=True)
    assert k_out.dtype == t_out.dtype
    exact = _exact(ref_fn, [inputs[0].to(dtype).float(), *inputs[1:]])
    _check_against_exact(name, [k_out, *k_grads], [t_out, *t_grads], exact, dtype)
