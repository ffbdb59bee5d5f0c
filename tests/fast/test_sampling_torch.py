"""Sampling with the fast ("torch") backend: naive sampling runs the fast ops, and the cached
sampler (its own per-pixel code) still returns exactly the same images.

As in tests/test_sampling.py, the models are float64, so both samplers' logits agree to ~1e-15 and
the same uniforms give the same values bit for bit; float32 is covered on the logits.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel.sampling import cached_logits, complete, sample
from tests.test_sampling import KINDS, MODELS, gen, make_model


def torch_model(name, channels, levels, skip=False, dtype=torch.float64, **kw):
    model = make_model(name, channels, levels, skip, dtype=dtype, **kw)
    return model.to_backend("torch")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels,levels,skip", KINDS)
def test_naive_and_cached_samples_identical_on_torch_backend(name, channels, levels, skip):
    model = torch_model(name, channels, levels, skip)
    naive = sample(model, 3, height=4, width=5, generator=gen(7), method="naive", backend="torch")
    cached = sample(model, 3, height=4, width=5, generator=gen(7), method="cached")
    assert torch.equal(naive, cached)
    assert naive.unique().numel() > 1  # not a degenerate all-equal image


@pytest.mark.parametrize("name", MODELS)
def test_completion_matches_naive_on_torch_backend(name):
    model = torch_model(name, 3, 4)
    images = torch.randint(0, 4, (2, 3, 5, 4), generator=gen(3))
    known = torch.zeros(1, 1, 5, 4, dtype=torch.bool)
    known[..., :2, :] = True
    cached = complete(model, images, known, generator=gen(9), method="cached")
    assert torch.equal(cached, complete(model, images, known, generator=gen(9), method="naive", backend="torch"))


@pytest.mark.parametrize("name", MODELS)
def test_cached_logits_equal_fast_forward(name):
    model = torch_model(name, 1, 256, hidden=5, layers=3)
    x = torch.randint(0, 256, (2, 1, 6, 5), generator=gen(1))
    torch.testing.assert_close(cached_logits(model, x), model(x, backend="torch"), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_cached_logits_equal_fast_forward_float32(name):
    model = torch_model(name, 3, 16, skip=True, dtype=torch.float32, layers=3)
    x = torch.randint(0, 16, (3, 3, 6, 4), generator=gen(2))
    expected = model(x, backend="torch")
    scale = expected.abs().max().item()
    torch.testing.assert_close(cached_logits(model, x), expected, rtol=1e-5, atol=1e-6 * max(scale, 1.0))
