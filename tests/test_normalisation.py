"""The model is a normalised distribution: summed over every possible image, p(x) = 1."""

from __future__ import annotations

import itertools

import pytest
import torch

import fastpixel


def all_images(channels: int, height: int, width: int, levels: int) -> torch.Tensor:
    values = itertools.product(range(levels), repeat=channels * height * width)
    return torch.tensor(list(values)).reshape(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize(
    "channels,height,width,levels",
    [(1, 3, 3, 2), (3, 1, 2, 4), (1, 2, 3, 3)],
    ids=["binary-3x3-grey", "4level-1x2-rgb", "3level-2x3-grey"],
)
def test_probabilities_over_every_image_sum_to_one(name, channels, height, width, levels):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=3, layers=2, skip=True).double()
    images = all_images(channels, height, width, levels)
    assert images.shape[0] == levels ** (channels * height * width)
    with torch.no_grad():
        log_p = torch.cat([model.log_prob(chunk) for chunk in images.split(1024)])
    total = torch.logsumexp(log_p, dim=0)
    assert abs(total.item()) < 1e-10
    assert log_p.max() < 0
