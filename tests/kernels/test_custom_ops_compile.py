"""torch.compile(model, fullgraph=True) with the triton backend: the graph calls the fastpixel:: ops.

On CPU through Triton's interpreter: the custom ops are opaque graph nodes (their fakes give shapes),
so dynamo and AOTAutograd trace a whole model, forward and backward, into one graph each, and the
compiled model's logits and every parameter gradient equal eager's (the same kernels run). Inductor
compiles the code around the ops (C++ here, Triton on a GPU) and calls the ops as extern kernels.
"""

from __future__ import annotations

import pytest
import torch

import fastpixel

pytestmark = pytest.mark.slow

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")
EXPECTED_OPS = {
    "pixelcnn": {"masked_conv2d"},
    "row_lstm": {"masked_conv2d", "row_lstm_scan_forward"},
    "diagonal_bilstm": {"masked_conv2d", "diagonal_bilstm_scan_forward"},
    "gated_pixelcnn": {"masked_conv2d"},
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _build(name, device):
    """A model on the triton backend (the kernels, through the interpreter on a CPU)."""
    torch.manual_seed(0)
    return fastpixel.create_model(name, channels=3, levels=4, hidden=3, layers=1, backend="triton").to(device)


def _fastpixel_ops(graph_module: torch.fx.GraphModule) -> set[str]:
    return {
        str(node.target).split(".")[1]
        for node in graph_module.graph.nodes
        if node.op == "call_function" and str(node.target).startswith("fastpixel.")
    }


@pytest.mark.parametrize("name", MODELS)
def test_one_graph_of_fastpixel_ops(name, device):
    """explain: no graph break; the traced graph holds the kernels' ops (forward and the loss)."""
    model = _build(name, device)
    x = torch.randint(0, 4, (2, 3, 4, 5), device=device)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    with fastpixel.use_backend("triton"):
        explanation = torch._dynamo.explain(lambda x: model.log_prob(x, validate=False))(x)
        assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]
        torch._dynamo.reset()
        torch.compile(lambda x: model.log_prob(x, validate=False), fullgraph=True, backend=record)(x)
    assert len(graphs) == 1
    assert EXPECTED_OPS[name] | {"pixel_cross_entropy_forward"} <= _fastpixel_ops(graphs[0])


# Inductor on CPU generates C++ for the code around the ops (tens of seconds per model here);
# aot_eager runs the same dynamo + AOTAutograd trace without code generation.
COMPILERS = [(name, "aot_eager") for name in MODELS] + [("row_lstm", "inductor")]


@pytest.mark.parametrize("name, compiler", COMPILERS)
def test_compiled_model_matches_eager_with_every_gradient(name, compiler, device):
    model = _build(name, device)
    x = torch.randint(0, 4, (2, 3, 3, 4), device=device)
    compiled = torch.compile(model, fullgraph=True, backend=compiler)
    results = []
    with fastpixel.use_backend("triton"):
        for fn in (model, compiled):
            model.zero_grad(set_to_none=True)
            logits = fn(x)
            logits.backward(torch.linspace(-1, 1, logits.numel(), device=device).view_as(logits))
            results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got_grads.keys() == want_grads.keys()
    for key, grad in want_grads.items():
        torch.testing.assert_close(got_grads[key], grad, rtol=1e-5, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_compiled_under_autocast_matches_eager(name, device):
    """Autocast inside the compiled region (float16 on CPU through the interpreter, bf16 on a GPU):
    the ops' autocast rules are traced (casts in the graph), same loss, dtypes and gradients as eager."""
    dtype = torch.float16 if device == "cpu" else torch.bfloat16
    model = _build(name, device)
    x = torch.randint(0, 4, (2, 3, 3, 4), device=device)

    def loss_fn(x):
        with torch.autocast(device, dtype=dtype):
            logits = model(x, validate=False)
            return fastpixel.ops.pixel_cross_entropy(logits, x, "mean", validate=False), logits

    with fastpixel.use_backend("triton"):
        assert torch._dynamo.explain(loss_fn)(x).graph_break_count == 0
        torch._dynamo.reset()
        results = []
        for fn in (loss_fn, torch.compile(loss_fn, fullgraph=True, backend="aot_eager")):
            loss, logits = fn(x)
            results.append((loss.detach(), logits.dtype, torch.autograd.grad(loss, list(model.parameters()))))
    (want, want_dtype, want_grads), (got, got_dtype, got_grads) = results
    assert got_dtype == want_dtype == dtype and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("name", MODELS)
def test_gpu_inductor_bf16_autocast_training_step(name):
    """On a GPU: the Inductor-compiled model under bf16 autocast with the triton ops in its graph.
    Its loss and gradients are as close to a float64 eager model as the eager bf16 model's
    (error <= 2x eager's + a small atol): Inductor rounds its fused code differently, not worse."""
    model = _build(name, "cuda")
    x = torch.randint(0, 4, (4, 3, 16, 16), device="cuda")

    def loss_and_grads(fn, autocast):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = fastpixel.ops.pixel_cross_entropy(fn(x), x, "mean", validate=False)
        loss.backward()
        return [loss.detach().double()] + [p.grad.double() for p in model.parameters()]

    exact = loss_and_grads(model.double().to_backend("reference"), autocast=False)
    model.float().to_backend("triton")
    compiled = torch.compile(model, fullgraph=True)
    with fastpixel.use_backend("triton"):
        eager = loss_and_grads(model, autocast=True)
        inductor = loss_and_grads(compiled, autocast=True)
    for e, k, ref in zip(eager, inductor, exact):
        err_e, err_k = (e - ref).abs().max().item(), (k - ref).abs().max().item()
        assert err_k <= 2 * err_e + 1e-2 * max(1.0, ref.abs().max().item()), (err_k, err_e)
