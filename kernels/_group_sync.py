"""CTA groups for the scans: one scan's hidden units split over G co-resident CTAs.

A scan step of one image (Row LSTM) or one image and direction (Diagonal BiLSTM) needs the whole
state of the previous step, but each CTA of the group computes only its share of the hidden units.
So every step ends with a *group barrier*: each CTA's threads finish their stores (CTA barrier),
one thread publishes the CTA's arrival on the group's counter with a GPU-scope release atomic, and
waits with GPU-scope acquire reads until all G CTAs of the group have arrived for this step; the
next step then reads the other CTAs' state from L2 (``.cg`` loads, never a stale L1 line).

Spinning on another CTA is only safe when every CTA of the grid is resident at once, so a grouped
scan is launched cooperatively (``launch_cooperative_grid=True``: the driver refuses a grid that
cannot be co-resident instead of letting it deadlock) and only when n_groups * G <= SM count (one
CTA per SM). Otherwise G = 1: one persistent CTA per scan, a CTA barrier per step, no atomics.

Triton's interpreter runs programs one after another, so a CTA spinning on its group would never
return. Under the interpreter a grouped scan is launched once per step instead (the launch
boundary is the group barrier), with the same kernel and per-step body and ``GRID_SYNC=False``.
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

from fastpixel.kernels._interpreter import triton_interpreter_enabled
from fastpixel.kernels._common import num_sms


@triton.jit
def group_barrier(p_count, target, GRID_SYNC: tl.constexpr):
    """End of a step: all of this CTA's stores are done; with GRID_SYNC also every other CTA's of
    the group. ``p_count``: the group's int32 arrival counter (zeroed before the launch);
    ``target``: G times the number of steps finished, this one included."""
    tl.debug_barrier()
    if GRID_SYNC:
        tl.atomic_add(p_count, 1, sem="release", scope="gpu")
        arrived = tl.atomic_add(p_count, 0, sem="acquire", scope="gpu")
        while arrived < target:
            arrived = tl.atomic_add(p_count, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()


@functools.cache
def cooperative_launch_supported() -> bool:
    """Whether this triton's CUDA backend takes ``launch_cooperative_grid`` (triton >= 3.3)."""
    try:
        from triton.backends.nvidia.compiler import CUDAOptions
    except ImportError:
        return False
    return "launch_cooperative_grid" in getattr(CUDAOptions, "__dataclass_fields__", {})


def group_size(n_groups: int, chunks: int, device: torch.device, requested: int | None = None) -> int:
    """CTAs per scan. ``requested`` (tests) is taken as given, capped at ``chunks`` (the units are
    split by whole chunks); under the interpreter the default is 1; on a GPU, the largest power of
    two <= chunks with n_groups * G <= the SM count (``_common.num_sms``: co-resident at one CTA
    per SM), else 1; also 1 when triton cannot launch cooperatively or ``FASTPIXEL_SCAN_GROUPS=0``
    is set (the persistent one-CTA-per-scan kernels only, e.g. to rule the group barrier out when
    debugging on a GPU)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"CTAs per scan must be >= 1, got {requested}")
        return min(requested, chunks)
    if triton_interpreter_enabled() or device.type != "cuda" or os.environ.get("FASTPIXEL_SCAN_GROUPS") == "0":
        return 1
    if not cooperative_launch_supported():
        return 1
    sms = num_sms(device)
    g = 1
    while 2 * g <= chunks and n_groups * 2 * g <= sms:
        g *= 2
    return g


def launch_scan(kernel, grid: tuple, n_steps: int, args: tuple, meta: dict, group: int) -> None:
    """Launch a scan kernel whose trailing runtime arguments are (T_BEGIN, T_END) and whose
    constexprs include GRID_SYNC and CACHE: persistently (all steps in one launch; cooperatively
    when group > 1), or, under the interpreter with group > 1, once per step."""
    if group > 1 and triton_interpreter_enabled():
        for t in range(n_steps):
            kernel[grid](*args, t, t + 1, GRID_SYNC=False, CACHE="", **meta)
        return
    if group > 1:
        kernel[grid](*args, 0, n_steps, GRID_SYNC=True, CACHE=".cg", launch_cooperative_grid=True, **meta)
    else:
        kernel[grid](*args, 0, n_steps, GRID_SYNC=False, CACHE="", **meta)
