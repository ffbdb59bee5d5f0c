"""temperature=0: greedy decoding (argmax of every sub-pixel's logits), the same for both methods."""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel.sampling import complete, sample
from fastpixel.sampling.categorical import inverse_cdf


def make(name, channels=1, levels=4, **kwargs):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=3, layers=1, backend="reference",
                                   **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.double()


def test_inverse_cdf_at_zero_is_argmax_whatever_the_uniform():
    logits = torch.tensor([[0.0, 2.0, 1.0], [5.0, -1.0, 5.0], [-3.0, -2.0, -1.0]], dtype=torch.float64)
    for u in (0.0, 0.3, 0.999):
        assert inverse_cdf(logits, torch.full((3,), u, dtype=torch.float64), 0.0).tolist() == [1, 0, 2]


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_greedy_sample_is_the_argmax_of_its_own_logits_and_deterministic(name):
    model = make(name, channels=3)
    a = sample(model, 2, height=4, width=3, temperature=0, generator=torch.Generator().manual_seed(1))
    b = sample(model, 2, height=4, width=3, temperature=0, generator=torch.Generator().manual_seed(2))
    naive = sample(model, 2, height=4, width=3, temperature=0, method="naive")
    assert torch.equal(a, b) and torch.equal(a, naive)  # no randomness; naive == cached
    assert torch.equal(model(a).argmax(dim=1), a)  # every sub-pixel is the most likely given its past
    assert torch.equal(a[0], a[1])


def test_greedy_multiscale_naive_equals_cached():
    model = make("multiscale", channels=1, levels=3, kind="row_lstm")
    cached = sample(model, 2, height=4, width=4, temperature=0)
    naive = sample(model, 2, height=4, width=4, temperature=0, method="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(model(cached).argmax(dim=1), cached)  # each sub-pixel the mode of its distribution


def test_greedy_completion_keeps_the_known_part():
    model = make("pixelcnn", channels=1, levels=4)
    images = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    known = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    known[..., :2, :] = True
    out = complete(model, images, known, temperature=0)
    assert torch.equal(out[..., :2, :], images[..., :2, :])
    assert torch.equal(model(out).argmax(dim=1)[..., 2:, :], out[..., 2:, :])
