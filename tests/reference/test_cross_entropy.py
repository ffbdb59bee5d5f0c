"""Reference per-sub-pixel cross-entropy: exact NLL in nats, every reduction, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastpixel import reference


@pytest.mark.parametrize("levels", [2, 3, 256])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_matches_torch_cross_entropy(levels, reduction):
    torch.manual_seed(0)
    logits = torch.randn(2, levels, 3, 4, 5, dtype=torch.float64)
    targets = torch.randint(0, levels, (2, 3, 4, 5))
    expected = F.cross_entropy(logits, targets, reduction=reduction)
    torch.testing.assert_close(reference.pixel_cross_entropy(logits, targets, reduction), expected)


def test_uniform_logits_cost_log_levels_per_subpixel():
    logits = torch.zeros(1, 256, 3, 2, 2)
    targets = torch.randint(0, 256, (1, 3, 2, 2))
    assert reference.pixel_cross_entropy(logits, targets, "mean").item() == pytest.approx(math.log(256))


def test_two_level_softmax_equals_the_papers_sigmoid():
    a, b = torch.randn(2, 1, 1, 1, 3, 3, dtype=torch.float64)
    logits = torch.cat([a, b], dim=1)
    x = torch.randint(0, 2, (1, 1, 3, 3))
    p_one = torch.sigmoid(b - a)[:, 0]
    bce = F.binary_cross_entropy(p_one, x.double(), reduction="none")
    torch.testing.assert_close(reference.pixel_cross_entropy(logits, x, "none"), bce)


def test_half_precision_logits_are_computed_in_float32():
    logits = torch.randn(1, 4, 1, 2, 2).to(torch.bfloat16)
    out = reference.pixel_cross_entropy(logits, torch.zeros(1, 1, 2, 2, dtype=torch.long), "none")
    assert out.dtype == torch.float32


def test_gradcheck():
    logits = torch.randn(2, 5, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (2, 3, 2, 3))
    for reduction in ("none", "sum", "mean"):
        assert torch.autograd.gradcheck(lambda z: reference.pixel_cross_entropy(z, targets, reduction), (logits,))
