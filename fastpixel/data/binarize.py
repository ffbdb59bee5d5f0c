"""Binarizing 8-bit grey images: each pixel is 1 with probability value / 255.

fixed:   sampled once from a seed (the same 0/1 images every run; what the paper's binarized MNIST
         is, with the authors' own draw);
dynamic: sampled afresh for every training batch (a different, easier-to-fit protocol whose
         numbers are not comparable with the fixed one).
"""

from __future__ import annotations

import numpy as np
import torch

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def binarize_fixed(images: np.ndarray, *, seed: int, split: str) -> np.ndarray:
    """uint8 images in [0, 255] -> uint8 0/1, drawn from ``default_rng([seed, split code])``."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split]])
    return (rng.random(images.shape) * 255.0 < images).astype(np.uint8)


def binarize_dynamic(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 images (B, C, H, W) in [0, 255] -> a fresh 0/1 draw (uint8) from ``generator``."""
    u = torch.rand(images.shape, generator=generator, device=images.device)
    return (u * 255.0 < images.float()).to(torch.uint8)
