"""The torch backend under CPU autocast: the reference's dtypes, close to its numbers, gradients run.

The fast ops are autograd.Functions whose matmuls would otherwise mix bf16 activations with float32
parameters (a RuntimeError before fastpixel.fast.autocast existed).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("hidden, size", [(4, 5), (32, 12)])  # the second takes the large-1x1-conv GEMM path
def test_torch_backend_under_cpu_bf16_autocast_matches_the_reference(name, hidden, size):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=3, levels=256, hidden=hidden, layers=1)
    x = torch.randint(0, 256, (4, 3, size, size + 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, want_logits = model(x, backend="torch"), model(x, backend="reference")
        got, want = model.log_prob(x, backend="torch"), model.log_prob(x, backend="reference")
    assert logits.dtype == want_logits.dtype == torch.bfloat16
    assert got.dtype == want.dtype == torch.float32  # the loss stays float32
    # both paths round to bf16 at the same op boundaries except inside the scans (float32 state in
    # both); the per-image NLL agrees to bf16's resolution
    torch.testing.assert_close(got, want, rtol=2e-2, atol=0.0)
    got.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
