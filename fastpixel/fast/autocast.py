"""Autocast at the boundary of a fast op: what the reference path does under ``torch.autocast``.

The fast ops are hand-written ``autograd.Function``s whose matmuls take their operands as they come,
so under autocast (activations in bf16/fp16, parameters float32) they would mix dtypes. The
reference's matmuls and convs cast to the autocast dtype one op at a time; a fast op instead casts
its floating inputs once on entry, runs with autocast off (every matmul then in the autocast dtype,
as the reference's), and returns the dtype the reference returns: the autocast dtype for a conv,
``promote(input gates, autocast dtype)`` for a scan (its elementwise cell promotes).
"""

from __future__ import annotations

import functools
from typing import Callable

import torch


def autocast_boundary(result: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorate a fast op. ``result``: "autocast" (returns the autocast dtype) or "promote"
    (returns ``promote_types(first argument's dtype, autocast dtype)``)."""
    if result not in ("autocast", "promote"):
        raise ValueError(f"result must be 'autocast' or 'promote', got {result!r}")

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        @functools.wraps(fn)
        def op(*args):
            device_type = args[0].device.type
            if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
                return fn(*args)
            dtype = torch.get_autocast_dtype(device_type)
            cast = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
            with torch.autocast(device_type, enabled=False):
                out = fn(*cast)
            want = dtype if result == "autocast" else torch.promote_types(args[0].dtype, dtype)
            return out.to(want)

        return op

    return wrap
