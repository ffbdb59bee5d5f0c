"""CUDA graphs (GPU tier): a training step and sampling steps with the triton ops capture and replay.

What makes them capturable (see docs/kernels.md, "CUDA graphs"): no launcher reads a device value
back (``validate=False`` for the loss: its bad-target count stays on the device), every buffer is
allocated on the device through the caching allocator, the masked conv's centre limits are uploaded
once per (limits, device) on the first (warm-up) call, and autotuning happens on that warm-up call
too (its results are cached per shape key). The recipe is PyTorch's whole-network capture: warm
up on a side stream, capture, replay.

Each test compares the replay with the same step run eagerly on an identical copy.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fastpixel
from fastpixel.sampling.cached import CachedEngine

pytestmark = pytest.mark.gpu

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def _model(name: str, levels: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return fastpixel.create_model(name, channels=3, levels=levels, hidden=16, layers=2).cuda()


def _step(model, optimizer, x, autocast_dtype):
    """One training step with every op on the triton backend and no host sync."""
    with torch.autocast("cuda", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        loss = -model.log_prob(x, backend="triton", validate=False).mean()
    loss.backward()
    optimizer.step()
    return loss


def _warm_up(fn, iters: int = 3) -> None:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(iters):
            fn()
    torch.cuda.current_stream().wait_stream(stream)


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16], ids=["float32", "bf16_autocast"])
@pytest.mark.parametrize("name", MODELS)
def test_training_step_captured_and_replayed(name, autocast_dtype):
    model = _model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    x = torch.randint(0, 16, (4, 3, 8, 8), device="cuda")

    def train():
        optimizer.zero_grad(set_to_none=True)
        return _step(model, optimizer, x, autocast_dtype)

    _warm_up(train)  # compiles and autotunes every kernel, uploads the conv limits
    twin = copy.deepcopy(model)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, capturable=True)
    twin_optimizer.load_state_dict(optimizer.state_dict())

    # no host sync in a warmed-up step
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        twin_optimizer.zero_grad(set_to_none=True)
        eager_loss = _step(twin, twin_optimizer, x, autocast_dtype)
    finally:
        torch.cuda.set_sync_debug_mode("default")

    optimizer.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = _step(model, optimizer, x, autocast_dtype)
    graph.replay()
    torch.cuda.synchronize()

    torch.testing.assert_close(static_loss, eager_loss, rtol=1e-6, atol=1e-6)
    for (pname, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=lambda m, n=pname: f"{n}: {m}")
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=lambda m, n=pname: f"grad {n}: {m}")

    # a second replay is a second step, as eager's
    graph.replay()
    twin_optimizer.zero_grad(set_to_none=True)
    _step(twin, twin_optimizer, x, autocast_dtype)
    torch.cuda.synchronize()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", MODELS)
def test_naive_sampling_step_captured_and_replayed(name):
    """The naive sampler's step: the whole network on the triton backend for the image so far,
    logits of one pixel. Replayed after the image buffer is rewritten in place (a new sub-pixel)."""
    model = _model(name).eval()
    images = torch.randint(0, 16, (4, 3, 8, 8), device="cuda")

    def logits_at(r, j):
        with torch.no_grad():
            return model(images, backend="triton", validate=False)[:, :, :, r, j]

    _warm_up(lambda: logits_at(3, 5))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = logits_at(3, 5)
    images[:, 1, 3, 5] = torch.arange(4, device="cuda")  # as the sampler writes a drawn value
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static_logits, logits_at(3, 5), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_cached_sampling_step_captured_and_replayed(name):
    """The cached sampler's per-pixel step (every layer's state update and the logits of pixel (r, j)),
    captured after a warm-up and replayed after new sub-pixels are written into the engine's buffers
    in place; an eager twin given the same sub-pixels gives the same logits. (Within a row the
    engine's buffers are fixed; ``start_row``/``end_row`` rebind some of them, so a graph is valid
    for the steps of the row it was captured in.)"""
    model = _model(name).eval()
    images = torch.zeros(4, 3, 8, 8, dtype=torch.long, device="cuda")
    first = [torch.randint(0, 16, (4,), device="cuda") for _ in range(2)]
    second = [torch.randint(0, 16, (4,), device="cuda") for _ in range(2)]

    def start(engine, values):
        engine.start_row(0)
        write(engine, values)

    def write(engine, values):
        for c, v in enumerate(values):
            engine.write(0, 0, c, v)

    with torch.no_grad():
        engine, twin = CachedEngine(model, images), CachedEngine(model, images)
        start(engine, first)
        _warm_up(lambda: engine.logits(0, 0, 0))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = engine.logits(0, 0, 0)
        write(engine, second)  # in place, into the buffers the graph reads
        graph.replay()
        start(twin, second)
        eager_logits = twin.logits(0, 0, 0)
    torch.cuda.synchronize()
    torch.testing.assert_close(static_logits, eager_logits, rtol=1e-6, atol=1e-6)
