"""Which engine computes a model's logits during generation: ``make_engine(method, model, images, ...)``.

* ``"naive"``: :class:`~fastpixel.sampling.naive.NaiveEngine`, a full forward pass per sub-pixel (the reference);
* ``"cached"``: PixelCNN++'s own :class:`~fastpixel.sampling.cached_pixelcnn_pp.PixelCNNPPEngine` (its
  U-Net's streams cached per row and pixel), else :class:`~fastpixel.sampling.cached.CachedEngine`
  (a model of blocks with an incremental step).

Every engine has the protocol the drivers use (start_row, write, logits, settle, end_row).
"""

from __future__ import annotations

import torch

from fastpixel.models.pixelcnn_pp import PixelCNNPlusPlus
from fastpixel.sampling.cached import CachedEngine
from fastpixel.sampling.cached_pixelcnn_pp import PixelCNNPPEngine
from fastpixel.sampling.naive import NaiveEngine

METHODS = ("cached", "naive")


def make_engine(
    method: str, model: torch.nn.Module, images: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
    cond_biases: list[torch.Tensor] | None = None,
):
    """The ``method`` engine of ``model`` generating ``images`` (B, C, H, W) in place."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "naive":
        return NaiveEngine(model, images, gate_biases, cond_biases)
    if isinstance(model, PixelCNNPlusPlus):
        return PixelCNNPPEngine(model, images, gate_biases, cond_biases)
    return CachedEngine(model, images, gate_biases, cond_biases)
