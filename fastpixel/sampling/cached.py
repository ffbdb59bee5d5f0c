"""The cached sampler's engine: the whole network evaluated one pixel at a time.

Each block keeps what later pixels will read, in the cache its ``allocate_inference_cache`` returns
(the protocol: :mod:`fastpixel.layers.step`);
generating pixel (r, j) costs one step of every layer, so an image costs O(H W) layer steps instead
of the naive sampler's O((H W)^2 C). Protocol, driven by :func:`fastpixel.sampling.generate`:

    for r: start_row(r); for j: { logits(r, j) / write(r, j, c, value) per sub-pixel; settle(r, j)
    unless the last logits() call already saw channels 0..C-2 }; end_row(r)

``logits(r, j)`` runs the pixel through every layer with the image's sub-pixels written so far and
stores each layer's state at (r, j); a later call for the same pixel overwrites it. The masks make
every state at (r, j) independent of sub-pixel C-1 of (r, j) itself, so the states computed once
channels 0..C-2 are written are final.
"""

from __future__ import annotations

import torch

from fastpixel.layers.conv_step import PointwiseConv, RowConvCache


def _allocate(block: torch.nn.Module, batch: int, width: int, gate_bias: torch.Tensor | None):
    allocate = getattr(block, "allocate_inference_cache", None)
    if allocate is None or not callable(getattr(block, "step", None)):
        raise TypeError(
            f"block {type(block).__name__} has no incremental step (allocate_inference_cache and step, see "
            "fastpixel.layers.step): sample this model with method='naive'"
        )
    return allocate(batch, width) if gate_bias is None else allocate(batch, width, gate_bias=gate_bias)


class CachedEngine:
    """Incremental evaluation of a PixelModel on a (batch, C, H, W) image being generated.

    The input conv and the output layers are the model's own (fixed kinds); every block between
    them is driven through its ``allocate_inference_cache`` / ``step`` (fastpixel.layers.step).
    """

    def __init__(
        self, model: torch.nn.Module, images: torch.Tensor, gate_biases: list[torch.Tensor] | None = None
    ) -> None:
        """gate_biases: optional per-block conditioning, as in ``PixelModel.forward_float``."""
        batch, channels, _, width = images.shape
        self.levels, self.channels, self.skip = model.levels, channels, model.skip
        self.input = RowConvCache(model.input_conv, batch, width)  # 4 rows of the embedded image
        biases = gate_biases if gate_biases is not None else [None] * len(model.blocks)
        self.blocks = list(model.blocks)
        self.caches = [_allocate(block, batch, width, bias) for block, bias in zip(self.blocks, biases)]
        self.steps = [(block.step, cache) for block, cache in zip(self.blocks, self.caches)]
        self.cache_kinds: dict[type, list] = {}  # caches of one type end a row together
        for cache in self.caches:
            self.cache_kinds.setdefault(type(cache), []).append(cache)
        self.skips = [PointwiseConv(conv) for conv in model.skip_convs]
        self.output1 = PointwiseConv(model.output_conv1)
        self.output2 = PointwiseConv(model.output_conv2)
        self.scale = 2.0 / (model.levels - 1)  # PixelModel.embed: x * 2/(L-1) - 1
        self.dtype = model.input_conv.weight.dtype

    def start_row(self, r: int) -> None:
        self.input.start_row()
        for cache in self.caches:
            cache.start_row(r)

    def write(self, r: int, j: int, c: int, values: torch.Tensor) -> None:
        """values: (B,) integers, sub-pixel c of pixel (r, j)."""
        self.input.write_channel(j, c, values.to(self.dtype) * self.scale - 1.0)

    def _step(self, j: int, head: bool) -> torch.Tensor | None:
        stream = self.input.at(j)  # [B, 2h]
        skips = [self.skips[0](stream)] if self.skip else []
        for i, (step, cache) in enumerate(self.steps):
            stream = step(cache, j, stream)
            if self.skip:
                skips.append(self.skips[i + 1](stream))
        if not head:
            return None
        features = torch.stack(skips).sum(0) if self.skip else stream
        out = self.output2(torch.relu(self.output1(torch.relu(features))))  # [B, L*C]
        return out.view(-1, self.levels, self.channels)

    def logits(self, r: int, j: int) -> torch.Tensor:
        """Logits (B, L, C) of pixel (r, j); channel c is valid once channels < c are written."""
        return self._step(j, head=True)

    def settle(self, r: int, j: int) -> None:
        """Compute the final states of (r, j) (channels 0..C-2 written), without the output layers."""
        self._step(j, head=False)

    def end_row(self, r: int) -> None:
        for kind, caches in self.cache_kinds.items():
            end_rows = getattr(kind, "end_rows", None)
            if end_rows is not None:
                end_rows(caches, r)
            else:
                for cache in caches:
                    cache.end_row(r)
