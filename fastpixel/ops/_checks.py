"""Argument checks shared by the public ops; each error says what was expected and what came."""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float_tensor(op: str, name: str, t: object, *, ndim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be a floating-point tensor {FLOAT_DTYPES}, got {t.dtype}")
    if t.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {tuple(t.shape)}")


def check_same_device_dtype(op: str, tensors: Sequence[torch.Tensor]) -> None:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {sorted(map(str, devices))}")
    dtypes = {t.dtype for t in tensors}
    # under autocast the op casts (a bf16 activation meets a float32 parameter, as in F.conv2d)
    if len(dtypes) > 1 and not any(torch.is_autocast_enabled(d.type) for d in devices):
        raise TypeError(f"{op}: all tensors must have one dtype, got {sorted(map(str, dtypes))}")
