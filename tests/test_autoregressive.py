"""The autoregressive property of every model, checked by perturbation over every sub-pixel.

Sub-pixels are ordered raster, then R, G, B inside a pixel. Changing input sub-pixel p must never
change the predicted distribution of any sub-pixel <= p; and within a pixel, G must depend on R, B on
R and G (the colour masks open exactly those paths).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from tests.dependency_calculus import leaky_relus

CASES = [
    (name, channels, levels, skip)
    for name in ("pixelcnn", "row_lstm", "diagonal_bilstm")
    for channels, levels, skip in ((1, 2, False), (3, 4, False), (3, 256, True))
]


def perturbation_changes(model, x: torch.Tensor) -> torch.Tensor:
    """(N, N) bool: changes[p, q] = changing sub-pixel p of x changes the logits of sub-pixel q."""
    _, channels, height, width = x.shape
    n = channels * height * width
    batch = x.repeat(n, 1, 1, 1)
    for p in range(n):
        pixel, c = divmod(p, channels)
        r, j = divmod(pixel, width)
        batch[p, c, r, j] = (batch[p, c, r, j] + 1 + p % (model.levels - 1)) % model.levels
    with torch.no_grad():
        out = model(torch.cat([x, batch]))
    diff = (out[1:] - out[:1]).abs().amax(dim=1)  # (N, C, H, W)
    # float64: a real dependency moves a logit by far more than 1e-9; batched-BLAS rounding by ~1e-16
    return diff.permute(0, 2, 3, 1).reshape(n, n) > 1e-9  # q in generation order


@pytest.mark.parametrize("name,channels,levels,skip", CASES)
def test_no_prediction_depends_on_itself_or_later_subpixels(name, channels, levels, skip):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=4, layers=2, skip=skip).double()
    height, width = 4, 5
    for trial in range(3):
        x = torch.randint(0, levels, (1, channels, height, width))
        changes = perturbation_changes(model, x)
        n = changes.shape[0]
        at_or_before = torch.arange(n)[None, :] <= torch.arange(n)[:, None]  # q <= p
        assert not (changes & at_or_before).any(), f"trial {trial}: a prediction saw its own or a later sub-pixel"
        # and the models do use their context: most later sub-pixels react
        assert changes.float().sum() > 0.5 * (n * (n - 1) / 2)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_colours_inside_a_pixel_depend_in_rgb_order(name):
    torch.manual_seed(1)
    model = fastpixel.create_model(name, channels=3, levels=8, hidden=6, layers=1).double()
    x = torch.randint(0, 8, (1, 3, 3, 4))
    with leaky_relus():  # a ReLU that happens to be off at this input would hide a real connection
        changes = perturbation_changes(model, x)
    for pixel in range(12):
        r_, g_, b_ = 3 * pixel, 3 * pixel + 1, 3 * pixel + 2
        assert changes[r_, g_] and changes[r_, b_] and changes[g_, b_], pixel
        assert not changes[g_, r_] and not changes[b_, r_] and not changes[b_, g_], pixel
