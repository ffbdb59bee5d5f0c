"""The kernels as registered PyTorch ops (``fastpixel::*``): schema, fake implementations, autograd.

* ``torch.library.opcheck`` on every op (schema, autograd registration, fake tensor vs real
  outputs, AOT dispatch with dynamic shapes), tiny shapes through Triton's interpreter on CPU;
* each fake implementation gives exactly the real outputs' shapes, strides and dtypes, for
  float32/float64 and strided inputs (checked on FakeTensors and on meta tensors);
* ``torch.compile(fullgraph=True)`` of a function calling all four kernel ops (conv, both scans,
  the loss) gives eager's loss and gradients, with no graph break, on CPU (model-level compile
  tests with the triton backend: tests/kernels/test_custom_ops_compile.py).
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from fastpixel.masks import MaskSpec, color_groups, gate_groups

mc = pytest.importorskip("fastpixel.kernels.masked_conv")
ce = pytest.importorskip("fastpixel.kernels.cross_entropy")
rl = pytest.importorskip("fastpixel.kernels.row_lstm")
dl = pytest.importorskip("fastpixel.kernels.diagonal_bilstm")
dm = pytest.importorskip("fastpixel.kernels.dmol")

SPEC = MaskSpec((3, 3), "B", color_groups(5, 3), gate_groups(2, 3))  # 5 -> 8 channels, colour groups
MASK_ARGS = (list(SPEC.center_limit()), list(SPEC.center), SPEC.open_taps())


def _randn(*shape, dtype=torch.float64, grad=False, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_(grad)


def _cases(dtype=torch.float64, grad=True):
    """(op, args) for every registered op, tiny shapes; backward ops get the forward's real outputs."""
    x, w, b = _randn(1, 5, 3, 4, dtype=dtype, grad=grad), _randn(8, 5, 3, 3, dtype=dtype, grad=grad), _randn(8, dtype=dtype, grad=grad)
    dy = _randn(1, 8, 3, 4, dtype=dtype, seed=1)
    logits = _randn(2, 4, 3, 2, 3, dtype=dtype, grad=grad)
    targets = torch.randint(0, 4, (2, 3, 2, 3), generator=torch.Generator().manual_seed(2))
    g_row, w_row = _randn(1, 8, 3, 4, dtype=dtype, grad=grad, seed=3), _randn(8, 2, 1, 3, dtype=dtype, grad=grad, seed=4)
    with torch.no_grad():
        h, c = rl.row_lstm_scan_forward(g_row, w_row)
    gates = [_randn(1, 8, 3, 2, dtype=dtype, grad=grad, seed=5 + i) for i in range(2)]
    w_diag = [_randn(8, 2, 2, 1, dtype=dtype, grad=grad, seed=7 + i) for i in range(2)]
    with torch.no_grad():
        out, pre, cd, hd = dl.diagonal_bilstm_scan_forward(gates[0], w_diag[0], gates[1], w_diag[1])
    with torch.no_grad():
        _, grad_ce, _ = ce.pixel_cross_entropy_forward(logits, targets, "mean", True)
    dmol_params = _randn(2, 20, 2, 3, dtype=dtype, grad=grad, seed=9)  # RGB, K = 2
    dmol_x = torch.randint(0, 5, (2, 3, 2, 3), generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        _, grad_dmol = dm.dmol_nll_forward(dmol_params, dmol_x, 5, 2, "none", True)
    d = lambda t: t.detach()  # noqa: E731  (backward ops are not differentiable)
    return {
        "masked_conv2d": (mc.masked_conv2d_op, (x, w, b, *MASK_ARGS)),
        "masked_conv2d_no_bias": (mc.masked_conv2d_op, (x, w, None, *MASK_ARGS)),
        "masked_conv2d_input_grad": (mc.masked_conv2d_input_grad, (dy, d(w), *MASK_ARGS)),
        "masked_conv2d_weight_grad": (mc.masked_conv2d_weight_grad, (d(x), dy, d(w), *MASK_ARGS)),
        "masked_conv2d_bias_grad": (mc.masked_conv2d_bias_grad, (dy, d(b))),
        "pixel_cross_entropy_forward": (ce.pixel_cross_entropy_forward, (logits, targets, "mean", True)),
        "pixel_cross_entropy_forward_none": (ce.pixel_cross_entropy_forward, (d(logits), targets, "none", False)),
        "pixel_cross_entropy_backward": (ce.pixel_cross_entropy_backward, (grad_ce, _randn(2, 3, 2, 3, dtype=dtype))),
        "pixel_cross_entropy_forward_inplace_": (
            ce.pixel_cross_entropy_forward_inplace_, (d(logits).clone(), targets, "sum")),
        "pixel_cross_entropy_backward_inplace_": (
            ce.pixel_cross_entropy_backward_inplace_, (grad_ce.clone(), torch.tensor(0.5, dtype=dtype))),
        "row_lstm_scan_forward": (rl.row_lstm_scan_forward, (g_row, w_row)),
        "row_lstm_scan_backward": (
            rl.row_lstm_scan_backward, (d(g_row), d(w_row), h, c, _randn(1, 2, 3, 4, dtype=dtype), True)),
        "row_lstm_scan_backward_no_dw": (
            rl.row_lstm_scan_backward, (d(g_row), d(w_row), h, c, _randn(1, 2, 3, 4, dtype=dtype), False)),
        "diagonal_bilstm_scan_forward": (dl.diagonal_bilstm_scan_forward, (gates[0], w_diag[0], gates[1], w_diag[1])),
        "diagonal_bilstm_scan_backward": (
            dl.diagonal_bilstm_scan_backward, (_randn(1, 2, 3, 2, dtype=dtype), pre, cd, hd, d(w_diag[0]), d(w_diag[1]))),
        "dmol_nll_forward": (dm.dmol_nll_forward, (dmol_params, dmol_x, 5, 2, "mean", True)),
        "dmol_nll_forward_none": (dm.dmol_nll_forward, (d(dmol_params), dmol_x, 5, 2, "none", False)),
        "dmol_nll_backward": (dm.dmol_nll_backward, (grad_dmol, _randn(2, 2, 3, dtype=dtype, seed=11))),
    }  # fmt: skip


CASE_NAMES = sorted([
    "masked_conv2d", "masked_conv2d_no_bias", "masked_conv2d_input_grad", "masked_conv2d_weight_grad",
    "masked_conv2d_bias_grad", "pixel_cross_entropy_forward", "pixel_cross_entropy_forward_none",
    "pixel_cross_entropy_backward", "pixel_cross_entropy_forward_inplace_", "pixel_cross_entropy_backward_inplace_",
    "row_lstm_scan_forward", "row_lstm_scan_backward", "row_lstm_scan_backward_no_dw",
    "diagonal_bilstm_scan_forward", "diagonal_bilstm_scan_backward",
    "dmol_nll_forward", "dmol_nll_forward_none", "dmol_nll_backward",
])  # fmt: skip


def test_case_list_covers_every_op():
    assert sorted(_cases()) == CASE_NAMES
    registered = set(torch.ops.fastpixel)
    covered = {fn._name.split("::")[-1] for fn, _ in _cases().values()}
    assert registered <= covered, f"ops without an opcheck case: {registered - covered}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_opcheck(name):
    op, args = _cases()[name]
    torch.library.opcheck(op, args)


def _meta(t):
    return t.to("meta") if isinstance(t, torch.Tensor) else t


def _layout(t):
    return (tuple(t.shape), tuple(t.stride()), t.dtype) if isinstance(t, torch.Tensor) else t


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", [n for n in CASE_NAMES if not n.endswith("_")])
def test_fake_gives_real_shapes_strides_dtypes(name, dtype):
    """The same op on FakeTensors and on meta tensors: every output's (shape, stride, dtype) as real."""
    op, args = _cases(dtype, grad=False)[name]
    real = [_layout(t) for t in _outputs(op(*args))]
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake_args = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in args]
        fake = [_layout(t) for t in _outputs(op(*fake_args))]
    assert fake == real
    meta = [_layout(t) for t in _outputs(op(*[_meta(t) for t in args]))]
    assert [m[:3] for m in meta] == [r[:3] for r in real]


def test_fake_follows_strided_inputs():
    """Strided inputs (channels-last gates, transposed logits): fakes still equal the real outputs."""
    gates = [_randn(1, 3, 2, 8).permute(0, 3, 1, 2), _randn(1, 8, 2, 3, seed=1).transpose(2, 3)]
    w = [_randn(8, 2, 2, 1, seed=2), _randn(8, 2, 2, 1, seed=3)]
    logits = _randn(2, 3, 2, 3, 4, seed=4).permute(0, 4, 1, 2, 3)
    targets = torch.randint(0, 4, (2, 3, 3, 2)).transpose(2, 3)
    cases = [
        (dl.diagonal_bilstm_scan_forward, (gates[0], w[0], gates[1], w[1])),
        (ce.pixel_cross_entropy_forward, (logits, targets, "none", True)),
        (mc.masked_conv2d_op, (_randn(1, 3, 4, 5).transpose(2, 3), _randn(8, 5, 3, 3), None, *MASK_ARGS)),
        (rl.row_lstm_scan_forward, (_randn(1, 3, 4, 8).permute(0, 3, 1, 2), _randn(8, 2, 1, 3).transpose(0, 1).contiguous().transpose(0, 1))),
    ]  # fmt: skip
    for op, args in cases:
        real = [_layout(t) for t in _outputs(op(*args))]
        with FakeTensorMode() as mode:
            fake = [_layout(t) for t in _outputs(op(*[mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in args]))]
        assert fake == real, op


def test_kernel_functions_run_the_registered_ops():
    """The public kernel functions build graphs of fastpixel:: nodes (no autograd.Function left)."""
    x, w = _randn(1, 5, 3, 4, grad=True), _randn(8, 5, 3, 3, grad=True)
    assert "fastpixel_masked_conv2d" in mc.masked_conv2d(x, w, None, SPEC).grad_fn.name()
    logits = _randn(1, 4, 1, 2, 3, grad=True)
    loss = ce.pixel_cross_entropy(logits, torch.zeros(1, 1, 2, 3, dtype=torch.long), "sum")
    assert "fastpixel_pixel_cross_entropy_forward" in loss.grad_fn.name()
    for module in (mc, ce, rl, dl):
        assert not [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, torch.autograd.Function)
                    and v.__name__ != "_InplaceCrossEntropy"], module.__name__  # fmt: skip


def _composite(spec, targets):
    """A function with every kernel op: masked conv -> both scans -> the loss."""

    def fn(x, w, b, w_row, w_diag):
        gates = mc.masked_conv2d(torch.relu(x), w, b, spec)
        h = rl.row_lstm_scan(gates, w_row) + dl.diagonal_bilstm_scan(gates, w_diag, gates * 0.5, w_diag)
        logits = h.view(h.shape[0], 2, 1, *h.shape[2:])  # (B, L = 2, C = 1, H, W)
        return ce.pixel_cross_entropy(logits, targets, "mean", validate=True)

    return fn


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_through_every_op(backend):
    """torch.compile(fullgraph=True) traces the four kernel ops (opaque nodes, fakes for shapes) and
    gives eager's loss and every gradient. ``inductor`` also generates CPU code around the ops."""
    spec = MaskSpec((3, 3), "B", color_groups(3, 1), gate_groups(2, 1))
    args = [_randn(2, 3, 4, 5, dtype=torch.float32, grad=True, seed=s) for s in (0,)]
    args += [_randn(*shape, dtype=torch.float32, grad=True, seed=i + 1)
             for i, shape in enumerate([(8, 3, 3, 3), (8,), (8, 2, 1, 3), (8, 2, 2, 1)])]  # fmt: skip
    targets = torch.randint(0, 2, (2, 1, 4, 5), generator=torch.Generator().manual_seed(9))
    fn = _composite(spec, targets)
    want = fn(*args)
    want_grads = torch.autograd.grad(want, args)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    got = compiled(*args)
    got_grads = torch.autograd.grad(got, args)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_training_step_reads_nothing_back_from_the_device(name, device, monkeypatch):
    """CUDA-graph precondition, checked on any device: after a warm-up, a training step with every op
    on triton (forward, loss with validate=False, backward, optimizer step) converts no tensor to a
    Python value (no .item(), int(), bool(), float(), .tolist(), .cpu())."""
    import fastpixel

    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=3, levels=4, hidden=3, layers=1).to(device)
    # Adam reads its step count back unless capturable, which needs CUDA; SGD reads nothing
    if device == "cuda":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randint(0, 4, (2, 3, 3, 4), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = -model.log_prob(x, backend="triton", validate=False).mean()
        loss.backward()
        optimizer.step()
        return loss

    step()  # warm-up: autotuning, the conv limits' upload

    def host_read(*args, **kwargs):
        raise AssertionError("a tensor value was read back to the host")

    for method in ("item", "tolist", "__int__", "__bool__", "__float__", "__index__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, method, host_read)
    loss = step()
    monkeypatch.undo()
    assert torch.isfinite(loss)
