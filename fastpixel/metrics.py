"""Likelihood units: nats per image and bits per dimension (sub-pixel)."""

from __future__ import annotations

import math

import torch


def bits_per_dim(nats_per_image: torch.Tensor | float, dims_per_image: int) -> torch.Tensor | float:
    """NLL in nats per image -> bits per sub-pixel: nats / (dims * ln 2).

    ``dims_per_image`` is C * H * W (784 for MNIST, 3072 for CIFAR-10).
    """
    if dims_per_image < 1:
        raise ValueError(f"dims_per_image must be >= 1, got {dims_per_image}")
    return nats_per_image / (dims_per_image * math.log(2.0))


def nats_per_image(bits_per_dim_value: torch.Tensor | float, dims_per_image: int) -> torch.Tensor | float:
    """Bits per sub-pixel -> NLL in nats per image (the inverse of :func:`bits_per_dim`)."""
    return bits_per_dim_value * dims_per_image * math.log(2.0)
