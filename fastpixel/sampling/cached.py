"""The cached sampler's engine: the whole network evaluated one pixel at a time.

Each block keeps what later pixels will read, in the cache its ``allocate_inference_cache`` returns
(the protocol: :mod:`fastpixel.layers.step`);
generating pixel (r, j) costs one step of every layer, so an image costs O(H W) layer steps instead
of the naive sampler's O((H W)^2 C). Protocol, driven by :func:`fastpixel.sampling.generate`:

    for r: start_row(r); for j: { logits(r, j, c) / write(r, j, c, value) per sub-pixel; settle(r, j)
    unless the last logits() call already saw channels 0..C-2 }; end_row(r)

Conditioning reaches the blocks once, at allocation: ``gate_biases`` (Multi-Scale maps) and
``cond_biases`` (a conditional model's per-image vectors, ``model.condition_biases(labels, cond)``).

``logits(r, j, c)`` runs the pixel through every layer with the image's sub-pixels written so far and
stores each layer's state at (r, j); a later call for the same pixel overwrites it. The masks make
every state at (r, j) independent of sub-pixel C-1 of (r, j) itself, so the states computed once
channels 0..C-2 are written are final.
"""

from __future__ import annotations

import torch

from fastpixel.layers.conv_step import ImageRow, PointwiseConv, RowConvCache


class NoCachedSamplerError(TypeError):
    """A model (or one of its blocks) has no incremental step: it samples with method='naive' only."""


def _allocate(
    block: torch.nn.Module, batch: int, width: int, gate_bias: torch.Tensor | None, cond_bias: torch.Tensor | None
):
    allocate = getattr(block, "allocate_inference_cache", None)
    if allocate is None or not callable(getattr(block, "step", None)):
        raise NoCachedSamplerError(
            f"block {type(block).__name__} has no incremental step (allocate_inference_cache and step, see "
            "fastpixel.layers.step): sample this model with method='naive'"
        )
    given = {k: v for k, v in (("gate_bias", gate_bias), ("cond_bias", cond_bias)) if v is not None}
    return allocate(batch, width, **given)


class CachedEngine:
    """Incremental evaluation of a PixelModel on a (batch, C, H, W) image being generated.

    The input conv and the output layers are the model's own (fixed kinds); every block between
    them is driven through its ``allocate_inference_cache`` / ``step`` (fastpixel.layers.step). A
    model without an input conv feeds the embedded image to its first block (and every sub-pixel to
    the caches that read the image).
    """

    def __init__(
        self, model: torch.nn.Module, images: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> None:
        """gate_biases, cond_biases: optional per-block conditioning, as in ``PixelModel.forward_float``."""
        batch, channels, _, width = images.shape
        if not hasattr(model, "blocks"):
            raise NoCachedSamplerError(f"{type(model).__name__} has no blocks with an incremental step (see "
                                       "fastpixel.layers.step): sample it with method='naive'")
        self.model, self.images = model, images  # the driver writes the sampled values into images
        self.levels, self.channels, self.skip = model.levels, channels, model.skip
        self.dtype = model.output_conv2.weight.dtype
        if model.input_conv is not None:
            self.input = RowConvCache(model.input_conv, batch, width)  # 4 rows of the embedded image
        else:
            self.input = ImageRow(batch, width, channels, self.dtype, model.output_conv2.weight.device)
        self.skip_input = self.skip and model.input_conv is not None  # skip convs: [input conv,] every block
        none = [None] * len(model.blocks)
        self.blocks = list(model.blocks)
        self.caches = [
            _allocate(block, batch, width, gate, cond)
            for block, gate, cond in zip(self.blocks, gate_biases or none, cond_biases or none)
        ]
        self.image_readers = [cache for cache in self.caches if getattr(cache, "reads_image", False)]
        self.steps = [(block.step, cache) for block, cache in zip(self.blocks, self.caches)]
        self.cache_kinds: dict[type, list] = {}  # caches of one type start and end a row together, in block order
        for cache in self.caches:
            self.cache_kinds.setdefault(type(cache), []).append(cache)
        self.skips = [PointwiseConv(conv) for conv in model.skip_convs]
        self.output1 = PointwiseConv(model.output_conv1)
        self.output2 = PointwiseConv(model.output_conv2)
        self.scale = 2.0 / (model.levels - 1)  # PixelModel.embed: x * 2/(L-1) - 1

    def _row_hook(self, hook: str, r: int) -> None:
        """``type(cache).<hook>s(caches, r)`` for the caches of each type, in block order (a cache without
        the batched hook: each cache's ``<hook>(r)``)."""
        for kind, caches in self.cache_kinds.items():
            batched = getattr(kind, hook + "s", None)
            if batched is not None:
                batched(caches, r)
            else:
                for cache in caches:
                    getattr(cache, hook)(r)

    def start_row(self, r: int) -> None:
        self.input.start_row()
        self._row_hook("start_row", r)

    def write(self, r: int, j: int, c: int, values: torch.Tensor) -> None:
        """values: (B,) integers, sub-pixel c of pixel (r, j)."""
        embedded = values.to(self.dtype) * self.scale - 1.0
        self.input.write_channel(j, c, embedded)
        for cache in self.image_readers:
            cache.write_image(j, c, embedded)

    def _step(self, j: int, head: bool) -> torch.Tensor | None:
        stream = self.input.at(j)  # [B, 2h] (the embedded pixel without an input conv)
        skips = [self.skips[0](stream)] if self.skip_input else []
        first_skip = 1 if self.skip_input else 0
        for i, (step, cache) in enumerate(self.steps):
            stream = step(cache, j, stream)
            if self.skip:
                skips.append(self.skips[i + first_skip](stream))
        if not head:
            return None
        features = torch.stack(skips).sum(0) if self.skip else stream
        out = self.output2(torch.relu(self.output1(torch.relu(features))))  # [B, L*C] (DMoL: [B, P])
        if self.model.head_kind == "softmax":
            return out.view(-1, self.levels, self.channels)
        return out

    def logits(self, r: int, j: int, c: int) -> torch.Tensor:
        """Logits (B, L) of sub-pixel c of pixel (r, j), channels < c written (a DMoL head: the
        log-probabilities of ``model.sampling_logits`` given them)."""
        out = self._step(j, head=True)
        if self.model.head_kind == "softmax":
            return out[:, :, c]
        return self.model.sampling_logits(out[:, :, None, None], self.images[:, :, r, j, None, None], c)[..., 0, 0]

    def settle(self, r: int, j: int) -> None:
        """Compute the final states of (r, j) (channels 0..C-2 written), without the output layers."""
        self._step(j, head=False)

    def end_row(self, r: int) -> None:
        self._row_hook("end_row", r)
