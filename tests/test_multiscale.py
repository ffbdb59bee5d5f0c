"""Multi-Scale PixelRNN: an exact, normalised likelihood under its own order, and sampling."""

from __future__ import annotations

import itertools

import pytest
import torch

import fastpixel


def build(kind="diagonal_bilstm", channels=1, levels=2, factor=2, **kw):
    torch.manual_seed(0)
    return fastpixel.MultiScalePixelRNN(
        kind=kind, channels=channels, levels=levels, hidden=3, layers=1, factor=factor, **kw
    ).double()


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("channels,height,width,levels", [(1, 3, 3, 2), (3, 1, 2, 3), (1, 2, 4, 2)])
def test_probabilities_over_every_image_sum_to_one(kind, channels, height, width, levels):
    model = build(kind, channels, levels)
    n = channels * height * width
    images = torch.tensor(list(itertools.product(range(levels), repeat=n)))
    images = images.reshape(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(images), dim=0)
    assert abs(total.item()) < 1e-10


def test_log_prob_is_small_plus_conditional():
    model = build(channels=3, levels=4, factor=3)
    x = torch.randint(0, 4, (2, 3, 5, 7))
    small = x[:, :, ::3, ::3]
    expected = model.small.log_prob(small)
    logits = model.large.forward_float(model.large.embed(x), model.gate_biases(small, 5, 7))
    nll = torch.nn.functional.cross_entropy(logits, x, reduction="none")
    outside = ~model.small_positions(5, 7)
    expected = expected - (nll * outside).sum((1, 2, 3))
    torch.testing.assert_close(model.log_prob(x), expected)


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
def test_no_prediction_depends_on_itself_or_later_subpixels_in_its_order(kind):
    model = build(kind, channels=3, levels=4)
    height, width = 4, 5
    order = model.generation_order(height, width)  # (C, H, W)
    x = torch.randint(0, 4, (1, 3, height, width))
    n = order.numel()
    batch = x.repeat(n, 1, 1, 1)
    positions = [(c, r, j) for c in range(3) for r in range(height) for j in range(width)]
    for k, (c, r, j) in enumerate(positions):
        batch[k, c, r, j] = (batch[k, c, r, j] + 1) % 4
    with torch.no_grad():
        out = model(torch.cat([x, batch]))
    changed = (out[1:] - out[:1]).abs().amax(dim=1) > 1e-9  # (N, C, H, W)
    for k, (c, r, j) in enumerate(positions):
        assert not (changed[k] & (order <= order[c, r, j])).any(), (c, r, j)
    assert changed.sum() > 0.3 * n * (n - 1) / 2  # and the context is used (the Row LSTM sees a triangle)


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
def test_cached_and_naive_sampling_agree_and_keep_the_order(kind):
    model = build(kind, channels=3, levels=5)
    cached = fastpixel.sample(model, 3, height=5, width=4, generator=torch.Generator().manual_seed(1))
    naive = fastpixel.sample(model, 3, height=5, width=4, generator=torch.Generator().manual_seed(1), method="naive")
    assert torch.equal(cached, naive)
    assert cached.shape == (3, 3, 5, 4) and cached.min() >= 0 and cached.max() < 5
    # the small image is the small model's own sample with the same generator
    small = fastpixel.sample(model.small, 3, height=3, width=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cached[:, :, ::2, ::2], small)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        fastpixel.MultiScalePixelRNN(kind="pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    with pytest.raises(ValueError, match="factor must be an int >= 2"):
        fastpixel.MultiScalePixelRNN(channels=1, levels=2, hidden=2, layers=1, factor=1)
    with pytest.raises(ValueError, match="layers must be >= 1"):
        fastpixel.MultiScalePixelRNN(channels=1, levels=2, hidden=2, layers=0)
