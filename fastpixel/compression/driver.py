"""The order in which a model codes a chunk of images: one driver for the encoder and the decoder.

    images (B, C, H, W) int64  ->  for r: for j: for c: values = code(logits (B, L), images[:, c, r, j])

The logits come from the cached engine (``fastpixel.sampling.engines.make_engine("cached", ...)``), driven
exactly as :func:`fastpixel.sampling.generate` drives it: rows top to bottom, pixels left to right,
channels R, G, B inside a pixel (the model's factorisation). ``code`` is an encoder (codes the true
value, returns it) or a decoder (ignores the placeholder, returns the decoded value); the driver writes
what it returns into ``images`` and into the engine, so the decoder's engine sees the same inputs as
the encoder's, in the same order, in a batch of the same images: the same ops on the same shapes.

Why the logits are bit-identical on both sides. Float results of the engine depend on the batch
(a matmul over B rows may block differently for another B; measured: 5 images alone and the same 5
inside a batch of 64 differ by ~1e-6), on the machine (instruction set, torch version, GPU) and
possibly on the thread count. So a chunk is always decoded as the batch it was encoded in (the
format records its images together), the machine facts are recorded and compared, and each chunk
carries a checksum of its pixels, which the decoder checks: if the arithmetic ever differs anyway,
the result is a clear error, never a wrong image.

A Multi-Scale PixelRNN codes the small image s = x[:, :, ::f, ::f] with its small network first, then
every other sub-pixel with the large network biased by s (the sub-pixels of s are written, not coded
again): the order of its likelihood.
"""

from __future__ import annotations

from typing import Callable

import torch

from fastpixel.models.base import PixelModel
from fastpixel.models.multiscale import MultiScalePixelRNN
from fastpixel.models.pixelcnn_pp import PixelCNNPlusPlus
from fastpixel.sampling.engines import make_engine

#: code(logits (B, L), values (B,) int64) -> the values (B,) int64 the sub-pixel takes.
Code = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def run_chunk(model: torch.nn.Module, images: torch.Tensor, code: Code,
              on_row: Callable[[], None] | None = None) -> torch.Tensor:
    """Code every sub-pixel of ``images`` (int64 (B, C, H, W) on the model's device, filled in place).

    on_row: called after each row of each network (a progress bar).
    """
    if isinstance(model, MultiScalePixelRNN):
        f = model.factor
        height, width = images.shape[2:]
        small = images[:, :, ::f, ::f].clone()
        run_pixels(model.small, small, code, None, None, on_row)
        images[:, :, ::f, ::f] = small
        biases = model.gate_biases(small, height, width)
        known = model.small_positions(height, width, images.device)
        return run_pixels(model.large, images, code, known, biases, on_row)
    if not isinstance(model, (PixelModel, PixelCNNPlusPlus)):
        raise TypeError(f"model must be a fastpixel model (create_model(...)), got {type(model).__name__}")
    return run_pixels(model, images, code, None, None, on_row)


def rows_per_chunk(model: torch.nn.Module, height: int) -> int:
    """How many times ``run_chunk`` calls on_row for images of ``height`` rows."""
    if isinstance(model, MultiScalePixelRNN):
        return -(-height // model.factor) + height
    return height


def run_pixels(model: PixelModel | PixelCNNPlusPlus, images: torch.Tensor, code: Code, known: torch.Tensor | None,
               gate_biases: list[torch.Tensor] | None, on_row: Callable[[], None] | None) -> torch.Tensor:
    """The raster loop of one network. known: (H, W) bool, pixels written but not coded (or None)."""
    _, channels, height, width = images.shape
    engine = make_engine("cached", model, images, gate_biases)
    skip = known.tolist() if known is not None else [[False] * width] * height
    for r in range(height):
        engine.start_row(r)
        for j in range(width):
            final = False  # whether the engine's states at (r, j) already saw channels 0..C-2
            for c in range(channels):
                if not skip[r][j]:
                    logits = engine.logits(r, j, c)  # [B, L]
                    images[:, c, r, j] = code(logits, images[:, c, r, j])
                    final = c == channels - 1
                engine.write(r, j, c, images[:, c, r, j])
            if not final:
                engine.settle(r, j)
        engine.end_row(r)
        if on_row is not None:
            on_row()
    return images
