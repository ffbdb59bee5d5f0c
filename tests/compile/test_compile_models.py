"""torch.compile(model, fullgraph=True) traces every model into one graph and matches eager.

The reference backend on CPU (Inductor generates C++): logits and every parameter gradient of the
compiled model equal the eager model's, and torch._dynamo.explain counts 0 graph breaks for the
forward and for log_prob. Shapes are tiny (the scans unroll one step per row / column).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel.models.multiscale import MultiScalePixelRNN

pytestmark = pytest.mark.slow


def build(name: str) -> torch.nn.Module:
    """A model on the reference backend."""
    torch.manual_seed(0)
    if name == "multiscale":
        return MultiScalePixelRNN(kind="row_lstm", channels=3, levels=4, hidden=3, layers=1, factor=2,
                                  backend="reference").double()
    return fastpixel.create_model(name, channels=3, levels=4, hidden=3, layers=1, backend="reference").double()


MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn", "multiscale")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", MODELS)
def test_explain_finds_no_graph_break(name):
    model = build(name)
    x = torch.randint(0, 4, (2, 3, 4, 5))
    forward = torch._dynamo.explain(model)(x)
    torch._dynamo.reset()
    likelihood = torch._dynamo.explain(lambda x: model.log_prob(x))(x)
    assert forward.graph_break_count == 0, [str(b.reason) for b in forward.break_reasons]
    assert likelihood.graph_break_count == 0, [str(b.reason) for b in likelihood.break_reasons]
    assert forward.graph_count == likelihood.graph_count == 1


# Inductor (C++ codegen) is what users get but compiles for tens of seconds per model on this CPU;
# "aot_eager" runs the same dynamo + AOTAutograd trace (functionalised forward and backward graphs)
# without code generation (the scans unroll into long graphs: a 1-layer Diagonal BiLSTM took
# 190 s to build with Inductor here). Every model under aot_eager, PixelCNN under Inductor too.
COMPILERS = [(name, "aot_eager") for name in MODELS] + [("pixelcnn", "inductor")]


@pytest.mark.parametrize("name, compiler", COMPILERS)
def test_fullgraph_compile_matches_eager_with_every_gradient(name, compiler):
    model = build(name)
    x = torch.randint(0, 4, (2, 3, 3, 4))
    compiled = torch.compile(model, fullgraph=True, backend=compiler)

    def loss_and_grads(fn):
        model.zero_grad(set_to_none=True)
        logits = fn(x)
        loss = (logits * torch.linspace(-1, 1, logits.numel(), dtype=logits.dtype).view_as(logits)).sum()
        loss.backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    want_logits, want_grads = loss_and_grads(model)
    got_logits, got_grads = loss_and_grads(compiled)
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-10, atol=1e-10)
    assert want_grads.keys() == got_grads.keys()
    for n in want_grads:
        torch.testing.assert_close(got_grads[n], want_grads[n], rtol=1e-10, atol=1e-10, msg=n)


def test_compiled_log_prob_still_counts_nats():
    model = build("row_lstm")
    x = torch.randint(0, 4, (2, 3, 3, 3))
    want = model.log_prob(x)
    got = torch.compile(lambda x: model.log_prob(x), fullgraph=True)(x)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_a_torch_backend_model_compiles_by_tracing_the_reference(monkeypatch):
    """A CPU user's model (auto -> the eager-only "torch" backend) compiles into one graph: traced,
    its ops run as the reference's (same numbers); switching the model's backend retraces."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # a CPU user: triton cannot run
    torch.manual_seed(0)
    model = fastpixel.create_model("diagonal_bilstm", channels=3, levels=4, hidden=3, layers=1, backend="auto").double()
    assert model.backend == "torch"
    x = torch.randint(0, 4, (2, 3, 3, 4))
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(model, fullgraph=True, backend=counting)
    want = model(x)  # eager: the torch backend
    torch.testing.assert_close(compiled(x), want, rtol=1e-10, atol=1e-10)
    compiled(x)
    assert len(graphs) == 1  # same backend: the cached graph runs again
    model.to_backend("reference")
    torch.testing.assert_close(compiled(x), want, rtol=1e-10, atol=1e-10)
    assert len(graphs) == 2  # the model's backend changed: traced anew, not a stale graph


@pytest.mark.parametrize("name", ["gated_pixelcnn", "row_lstm"])
def test_conditional_model_compiles_in_one_graph_and_matches_eager(name):
    """Labels and a vector enter the graph as inputs: no break, the same logits and gradients."""
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=3, levels=4, hidden=3, layers=1, num_classes=5, cond_features=2,
                                   backend="reference").double()
    x = torch.randint(0, 4, (2, 3, 3, 4))
    labels, cond = torch.tensor([4, 1]), torch.randn(2, 2, dtype=torch.float64)
    explained = torch._dynamo.explain(lambda x, y, c: model.log_prob(x, labels=y, cond=c))(x, labels, cond)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y, c: model.log_prob(x, labels=y, cond=c), fullgraph=True, backend="aot_eager")
    want = model.log_prob(x, labels=labels, cond=cond)
    want_grads = torch.autograd.grad(want.sum(), list(model.parameters()))
    got = compiled(x, labels, cond)
    got_grads = torch.autograd.grad(got.sum(), list(model.parameters()))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
