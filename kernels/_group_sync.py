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

The wait is bounded in time, so a scan can never hang the GPU: the polling loop reads the GPU's
``%globaltimer`` and gives up after ``BARRIER_TIMEOUT_NS`` (``FASTPIXEL_SCAN_BARRIER_TIMEOUT_S``,
default 2 s, read when this module is imported; a step takes microseconds), and the CTA then
executes ``trap``: the launch fails with a CUDA error at the next synchronisation (e.g. "unspecified
launch failure"; not yet seen on a GPU) instead of spinning forever. The flag is
the trap itself, not a value the host reads back: the launchers never synchronise (CUDA graphs).
And a cooperative launch that the driver refuses (too many CTAs to be co-resident, MPS, MIG,
another kernel resident: ``CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE`` or ``CUDA_ERROR_NOT_SUPPORTED``)
is caught by :func:`launch_scan` and retried at once with one CTA per scan (G = 1, no atomics), with
a warning; later scans on that device are then planned with G = 1 (:func:`group_size`).

Triton's interpreter runs programs one after another, so a CTA spinning on its group would never
return. Under the interpreter a grouped scan is launched once per step instead (the launch
boundary is the group barrier), with the same kernel and per-step body and ``GRID_SYNC=False``.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from typing import Callable

import torch
import triton
import triton.language as tl

from fastpixel.kernels._interpreter import triton_interpreter_enabled
from fastpixel.kernels._common import fit_shared_memory, num_sms


# Longest wait of one group barrier before the CTA traps (module docstring). A constexpr global:
# it is part of every scan kernel's compile key.
BARRIER_TIMEOUT_NS = tl.constexpr(int(float(os.environ.get("FASTPIXEL_SCAN_BARRIER_TIMEOUT_S", "2")) * 1e9))


@triton.jit
def wait_for_group(p_count, target, TIMEOUT_NS: tl.constexpr):
    """Poll the int32 counter at ``p_count`` with GPU-scope acquire loads until it reaches
    ``target`` or ``TIMEOUT_NS`` nanoseconds (``%globaltimer``) have passed; returns the last value
    read (< target: timed out). Every thread polls for itself (no CTA barrier inside the loop, so
    threads that leave it at different polls cannot deadlock); PTX labels are local to the braces."""
    return tl.inline_asm_elementwise(
        """{
        .reg .pred %p_arrived, %p_wait;
        .reg .b64 %t_start, %t_now;
        mov.u64 %t_start, %globaltimer;
        POLL:
        ld.acquire.gpu.global.b32 $0, [$1];
        setp.ge.s32 %p_arrived, $0, $2;
        @%p_arrived bra DONE;
        mov.u64 %t_now, %globaltimer;
        sub.u64 %t_now, %t_now, %t_start;
        setp.lt.u64 %p_wait, %t_now, $3;
        @%p_wait bra POLL;
        DONE:
        }""",
        "=r,l,r,l", [p_count, target, tl.full([], TIMEOUT_NS, tl.int64)], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def trap():
    """Abort the kernel: the launch fails with a CUDA error (the context is then unusable)."""
    tl.inline_asm_elementwise("trap;", "=r", [], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def bounded_group_barrier(p_count, target, GRID_SYNC: tl.constexpr, TIMEOUT_NS: tl.constexpr):
    """:func:`group_barrier` with an explicit bound on the wait (tests use a short one)."""
    tl.debug_barrier()
    if GRID_SYNC:
        tl.atomic_add(p_count, 1, sem="release", scope="gpu")
        arrived = wait_for_group(p_count, target, TIMEOUT_NS)
        if arrived < target:  # a CTA of the group never arrived: fail the launch instead of hanging
            trap()
        tl.debug_barrier()


@triton.jit
def group_barrier(p_count, target, GRID_SYNC: tl.constexpr):
    """End of a step: all of this CTA's stores are done; with GRID_SYNC also every other CTA's of
    the group. ``p_count``: the group's int32 arrival counter (zeroed before the launch);
    ``target``: G times the number of steps finished, this one included. The wait traps after
    BARRIER_TIMEOUT_NS (module docstring)."""
    bounded_group_barrier(p_count, target, GRID_SYNC, BARRIER_TIMEOUT_NS)


@functools.cache
def cooperative_launch_supported() -> bool:
    """Whether this triton's CUDA backend takes ``launch_cooperative_grid`` (triton >= 3.3)."""
    try:
        from triton.backends.nvidia.compiler import CUDAOptions
    except ImportError:
        return False
    return "launch_cooperative_grid" in getattr(CUDAOptions, "__dataclass_fields__", {})


# devices (str(torch.device)) whose driver refused a cooperative launch in this process
_REFUSED: set[str] = set()

# how the CUDA driver's refusals read in triton's launcher error ("Triton Error [CUDA]: <cuGetErrorString>")
_REFUSAL = re.compile(r"cooperative launch|\[CUDA\]: operation not supported", re.IGNORECASE)


def is_cooperative_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is the driver refusing a cooperative launch (nothing ran; the context is fine)."""
    return isinstance(exc, RuntimeError) and bool(_REFUSAL.search(str(exc)))


def _device_key(device: torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def group_size(n_groups: int, chunks: int, device: torch.device, requested: int | None = None) -> int:
    """CTAs per scan. ``requested`` (tests) is taken as given, capped at ``chunks`` (the units are
    split by whole chunks); under the interpreter the default is 1; on a GPU, the largest power of
    two <= chunks with n_groups * G <= the SM count (``_common.num_sms``: co-resident at one CTA
    per SM), else 1; also 1 when triton cannot launch cooperatively, when the driver refused a
    cooperative launch on this device before, or when ``FASTPIXEL_SCAN_GROUPS=0`` is set (the
    persistent one-CTA-per-scan kernels only, e.g. to rule the group barrier out when debugging on
    a GPU)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"CTAs per scan must be >= 1, got {requested}")
        return min(requested, chunks)
    if triton_interpreter_enabled() or device.type != "cuda" or os.environ.get("FASTPIXEL_SCAN_GROUPS") == "0":
        return 1
    if not cooperative_launch_supported() or _device_key(device) in _REFUSED:
        return 1
    sms = num_sms(device)
    g = 1
    while 2 * g <= chunks and n_groups * 2 * g <= sms:
        g *= 2
    return g


def _cooperative_launch(kernel, grid: tuple, args: tuple, meta: dict) -> None:
    """All steps in one cooperative launch (the driver refuses it rather than run a grid that
    cannot be co-resident); a seam of its own so that tests can simulate the refusal."""
    kernel[grid](*args, GRID_SYNC=True, CACHE=".cg", launch_cooperative_grid=True, **meta)


Build = Callable[[int], tuple[tuple, tuple]]


def launch_scan(kernel, n_steps: int, build: Build, meta: dict, group: int, device: torch.device,
                op: str = "scan") -> int:
    """Launch a scan kernel whose trailing runtime arguments are (T_BEGIN, T_END) and whose
    constexprs include GRID_SYNC and CACHE; ``build(G) -> (grid, args)`` gives the grid and the
    arguments (before T_BEGIN) for G CTAs per scan. Persistently (all steps in one launch;
    cooperatively when group > 1), or, under the interpreter with group > 1, once per step.

    A refused cooperative launch (:func:`is_cooperative_refusal`) is retried with G = 1, with a
    warning, and remembered for ``device``. On a GPU the kernel's shared memory is checked against
    the device's limit before the launch (``_common.fit_shared_memory``: one software-pipelining
    stage when the default does not fit, else a ValueError naming ``op``). Returns the G that ran."""
    def fitted(g: int) -> tuple[tuple, tuple, dict]:
        grid, args = build(g)
        sync = dict(GRID_SYNC=True, CACHE=".cg", launch_cooperative_grid=True) if g > 1 else \
            dict(GRID_SYNC=False, CACHE="")
        kwargs = fit_shared_memory(op, kernel, grid, (*args, 0, n_steps), {**meta, **sync}, device)
        return grid, args, {k: v for k, v in kwargs.items() if k not in sync}

    if group > 1 and triton_interpreter_enabled():
        grid, args = build(group)
        for t in range(n_steps):
            kernel[grid](*args, t, t + 1, GRID_SYNC=False, CACHE="", **meta)
        return group
    if group > 1:
        grid, args, kwargs = fitted(group)
        try:
            _cooperative_launch(kernel, grid, (*args, 0, n_steps), kwargs)
            return group
        except RuntimeError as exc:
            if not is_cooperative_refusal(exc):
                raise
            _REFUSED.add(_device_key(device))
            warnings.warn(
                f"fastpixel: the driver refused a cooperative launch of {getattr(kernel, '__name__', kernel)} "
                f"with {group} CTAs per scan ({exc}); running it with one CTA per scan (G = 1), as every "
                f"later scan on {_device_key(device)}", RuntimeWarning, stacklevel=3)
            group = 1
    grid, args, kwargs = fitted(1)
    kernel[grid](*args, 0, n_steps, GRID_SYNC=False, CACHE="", **kwargs)
    return group
