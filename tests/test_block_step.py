"""The incremental-step protocol (fastpixel.layers.step): a block kind defined here, outside the
package, gets cached sampling equal to naive sampling with no change to fastpixel/sampling/; a
block without a step is refused with a message naming method="naive"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fastpixel
from fastpixel.layers.conv_step import RowConvCache
from fastpixel.layers.step import InferenceCache
from fastpixel.sampling import cached_logits


class GatedRowBlock(nn.Module):
    """x + tanh(a) * sigmoid(b), [a | b] = a 1x3 mask-B conv along the row (reads (r, j-1) and (r, j))."""

    def __init__(self, channels: int, colors: int) -> None:
        super().__init__()
        self.conv = fastpixel.MaskedConv2d(channels, 2 * channels, (1, 3), "B", num_colors=colors,
                                           out_groups=tuple(2 * fastpixel.color_groups(channels, colors)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)
        return x + torch.tanh(a) * torch.sigmoid(b)

    def allocate_inference_cache(self, batch: int, width: int, gate_bias=None) -> RowCache:
        return RowCache(RowConvCache(self.conv, batch, width))

    def step(self, cache: RowCache, j: int, x: torch.Tensor) -> torch.Tensor:
        cache.conv.write(j, x)
        a, b = cache.conv.at(j).chunk(2, dim=1)
        return x + torch.tanh(a) * torch.sigmoid(b)


class RowCache(InferenceCache):
    def __init__(self, conv: RowConvCache) -> None:
        self.conv = conv

    def start_row(self, r: int) -> None:
        self.conv.start_row()


class NoStepBlock(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _model(channels: int, levels: int, blocks: int = 2) -> fastpixel.models.PixelModel:
    torch.manual_seed(0)
    model = fastpixel.create_model("pixelcnn", channels=channels, levels=levels, hidden=3, layers=0, skip=True,
                                   backend="reference")
    for _ in range(blocks):
        model.blocks.append(GatedRowBlock(6, channels))
        model.skip_convs.append(fastpixel.MaskedConv2d(6, 6, 1, "B", num_colors=channels))
    return model.double()


@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 4)])
def test_a_block_defined_outside_the_package_samples_cached_equal_to_naive(channels, levels):
    model = _model(channels, levels)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    naive = fastpixel.sample(model, 3, height=4, width=5, generator=gen(), method="naive")
    cached = fastpixel.sample(model, 3, height=4, width=5, generator=gen(), method="cached")
    assert torch.equal(naive, cached)
    assert naive.unique().numel() > 1
    x = torch.randint(0, levels, (2, channels, 4, 3))
    torch.testing.assert_close(cached_logits(model, x), model(x), rtol=1e-10, atol=1e-12)


def test_a_block_without_a_step_names_the_naive_sampler():
    model = _model(1, 2, blocks=0)
    model.blocks.append(NoStepBlock())
    model.skip_convs.append(fastpixel.MaskedConv2d(6, 6, 1, "B"))
    with pytest.raises(TypeError, match=r"NoStepBlock has no incremental step .*method='naive'"):
        fastpixel.sample(model, 1, height=2, width=2)
    assert fastpixel.sample(model.double(), 1, height=2, width=2, method="naive").shape == (1, 1, 2, 2)
