"""Checks on user-facing inputs: integer images (B, C, H, W) with values in [0, levels)."""

from __future__ import annotations

import torch

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
MIN_LEVELS, MAX_LEVELS = 2, 256


def check_levels(levels: object) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise TypeError(f"levels must be an int in [{MIN_LEVELS}, {MAX_LEVELS}], got {levels!r}")
    if not MIN_LEVELS <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be in [{MIN_LEVELS}, {MAX_LEVELS}] (2 = binary, 256 = 8-bit), got {levels}")
    return levels


def check_channels(channels: object) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey or binary) or 3 (RGB), got {channels!r}")
    return channels


def check_images(x: object, *, channels: int, levels: int, check_values: bool = True) -> torch.Tensor:
    """Raise TypeError/ValueError unless ``x`` is an integer (B, channels, H, W) tensor in [0, levels)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of integers (B, C, H, W), got {type(x).__name__}")
    if x.dtype not in INTEGER_DTYPES:
        hint = " (quantise float pixels first, e.g. (x * (levels - 1)).round().long())" if x.is_floating_point() else ""
        raise TypeError(f"images must have an integer dtype {INTEGER_DTYPES}, got {x.dtype}{hint}")
    if x.ndim != 4:
        raise ValueError(f"images must have 4 dimensions (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"images must have {channels} channel(s) (dim 1) for this model, got shape {tuple(x.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"images must have H, W >= 1, got shape {tuple(x.shape)}")
    # The value range needs a device sync (.min()/.max() to the host): eager mode only. Inside
    # torch.compile it is skipped, so a compiled model traces into one graph.
    if check_values and x.numel() and not torch.compiler.is_compiling():
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= levels:
            raise ValueError(f"image values must lie in [0, {levels}) for levels={levels}, got values in [{lo}, {hi}]")
    return x
