"""Public masked-convolution op: validates, then runs the chosen backend (see fastpixel.dispatch)."""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import implementation
from fastpixel.masks import MaskSpec
from fastpixel.ops._checks import check_float_tensor, check_same_device_dtype


def masked_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: MaskSpec,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Masked 2-D convolution that keeps H and W (see :mod:`fastpixel.masks` for the mask).

    x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W).
    """
    check_float_tensor("masked_conv2d", "x", x, ndim=4)
    check_float_tensor("masked_conv2d", "weight", weight, ndim=4)
    expected = (spec.out_channels, spec.in_channels, *spec.kernel_size)
    if tuple(weight.shape) != expected:
        raise ValueError(f"masked_conv2d: weight must have shape {expected} for this MaskSpec, got {tuple(weight.shape)}")
    if x.shape[1] != spec.in_channels:
        raise ValueError(f"masked_conv2d: x must have {spec.in_channels} channels (dim 1), got shape {tuple(x.shape)}")
    tensors = [x, weight] + ([bias] if bias is not None else [])
    if bias is not None and tuple(bias.shape) != (spec.out_channels,):
        raise ValueError(f"masked_conv2d: bias must have shape ({spec.out_channels},), got {tuple(bias.shape)}")
    check_same_device_dtype("masked_conv2d", tensors)
    return implementation("masked_conv", resolve_backend(backend, *tensors, op="masked_conv"))(x, weight, bias, spec)
