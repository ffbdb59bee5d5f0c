"""What every kernel module shares: dtypes, the gate nonlinearities, device facts, custom-op plumbing.

One definition each, so the kernel files cannot drift apart:

* :func:`acc_dtype` / :func:`tl_dtype` -- the accumulation dtype of an input dtype (float64 for
  float64, float32 otherwise), as a torch dtype, and any torch dtype as a triton dtype (for a
  ``tl.constexpr`` argument).
* :func:`sigmoid` / :func:`tanh` -- ``@triton.jit`` helpers with one formula each (core
  ``triton.language`` has ``tl.sigmoid`` but no portable ``tanh``; libdevice is per backend and
  absent under the interpreter).
* :func:`num_sms` -- streaming multiprocessors of a CUDA device, queried once per device when
  first needed (never at import; 1 for a CPU or meta tensor, so the interpreter path is
  deterministic). :func:`assume_num_sms` overrides it for every device within a block: how
  ``bench.static`` makes the launchers, run on meta tensors, decide as on a 132-SM GPU.
* :func:`check_int32_span` -- kernels index *within one image* in int32 and add the image's
  offset in int64; this host check (shapes and strides only, no device sync) rejects a tensor
  whose single image spans 2**31 elements or more, or whose pixel count passes int32.
* :func:`register_autocast_rule` -- an autocast kernel for a ``fastpixel::`` custom op that casts
  to whatever dtype the *current* autocast region uses (``torch.library.register_autocast`` fixes
  one dtype at registration; bf16 and fp16 regions both need handling).

Naming inside kernels: ``p_<tensor>`` pointers, ``s_<tensor>_<dim>`` strides, ``i_*`` program ids,
``o_*`` offsets, ``m_*`` masks, ``b_*`` register blocks (see /docs/kernels.md).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable

import torch
import triton
import triton.language as tl

INT32_LIMIT = 2**31

_TL_DTYPES = {
    torch.float64: tl.float64,
    torch.float32: tl.float32,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
}


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype for inputs of ``dtype``: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def tl_dtype(dtype: torch.dtype):
    """The triton dtype of a floating torch dtype (for ``tl.constexpr`` arguments such as ACC)."""
    try:
        return _TL_DTYPES[dtype]
    except KeyError:
        raise TypeError(f"no triton dtype for {dtype}; expected one of {list(_TL_DTYPES)}") from None


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: IEEE for float32/float64 (parity with the reference, no TF32);
    16-bit inputs run on tensor cores whatever is passed."""
    return "ieee" if dtype in (torch.float32, torch.float64) else "tf32"


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    # (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: never overflows; odd by construction
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@functools.lru_cache(maxsize=16)
def _cuda_sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


_assumed_sms: int | None = None


def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (cached per device; 1 for CPU and meta tensors),
    or the count set by :func:`assume_num_sms`, whatever the device."""
    if _assumed_sms is not None:
        return _assumed_sms
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    return _cuda_sm_count(device.index if device.index is not None else torch.cuda.current_device())


@contextlib.contextmanager
def assume_num_sms(count: int):
    """Within the block, :func:`num_sms` returns ``count`` for every device (no CUDA query): the
    launchers then choose grids (CTA groups, split-K) as on a GPU with ``count`` SMs. For static
    analysis without a GPU (``bench.static`` uses 132, an H100/H200) and for tests; not thread-safe."""
    global _assumed_sms
    if count < 1:
        raise ValueError(f"an SM count must be >= 1, got {count}")
    previous, _assumed_sms = _assumed_sms, count
    try:
        yield
    finally:
        _assumed_sms = previous


def check_int32_span(op: str, t: torch.Tensor, batch_dims: int = 1) -> None:
    """Raise ValueError when one batch entry of ``t`` spans >= 2**31 elements, or when the number of
    rows/pixels of ``t`` (its elements without dim 1, the channels/levels) does not fit in int32.

    Kernels index within one image in int32 and add the image's offset in int64 (``i_b`` cast to
    int64), so this is the only limit; host arithmetic on shapes and strides, no device sync.
    """
    span = sum((n - 1) * abs(s) for n, s in zip(t.shape[batch_dims:], t.stride()[batch_dims:]) if n > 0)
    if span >= INT32_LIMIT:
        raise ValueError(f"{op} (triton): one image spans {span + 1} >= 2**31 elements (int32 offsets inside an image)")
    rows = t.numel() // max(1, t.shape[1]) if t.ndim > 1 else t.numel()
    if rows >= INT32_LIMIT:
        raise ValueError(f"{op} (triton): {rows} pixels >= 2**31 (int32 pixel index); split the batch")


# -- custom-op plumbing -------------------------------------------------------------------------
LIBRARY_NAMESPACE = "fastpixel"
_library = torch.library.Library(LIBRARY_NAMESPACE, "FRAGMENT")


def register_autocast_rule(
    op, rule: Callable[[torch.dtype, tuple], tuple[tuple, Callable[[object], object]]], device_types=("cuda", "cpu")
) -> None:
    """Register ``rule`` as the autocast kernel of the custom op ``op`` on ``device_types``.

    ``rule(autocast_dtype, args) -> (new_args, finish)``: the arguments to run the op with (casts
    are ordinary differentiable ``Tensor.to`` calls, recorded by autograd and by torch.compile) and a
    function applied to the op's result (e.g. a cast back to the dtype the reference returns).
    The op itself then runs with autocast excluded, so its kernels see exactly ``new_args``.
    """
    name = op._name if hasattr(op, "_name") else str(op).split("::", 1)[1]
    opoverload = op._opoverload if hasattr(op, "_opoverload") else op
    for device_type in device_types:
        key = {"cuda": "AutocastCUDA", "cpu": "AutocastCPU"}[device_type]

        def kernel(_keyset, *args, _device_type=device_type):
            new_args, finish = rule(torch.get_autocast_dtype(_device_type), args)
            with torch.autocast(_device_type, enabled=False):
                return finish(opoverload(*new_args))

        _library.impl(name, kernel, key, with_keyset=True)


def cast_floating(t, dtype: torch.dtype):
    """``t.to(dtype)`` for a floating tensor, anything else unchanged (None, ints, integer tensors)."""
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != dtype:
        return t.to(dtype)
    return t


# -- shared memory, checked before a launch --------------------------------------------------------
# sm_90 (H100/H200): 227 KB of opt-in shared memory per block; the limit of the device at hand is
# read from the driver when there is one (shared_memory_limit), this is for reports without a GPU.
SM90_SHARED_BYTES = 232_448

_fitted: dict[tuple, dict] = {}


@functools.lru_cache(maxsize=16)
def shared_memory_limit(index: int) -> int:
    """Opt-in shared memory per block of CUDA device ``index``, in bytes (the limit a launch meets)."""
    props = torch.cuda.get_device_properties(index)
    return int(getattr(props, "shared_memory_per_block_optin", 0) or props.shared_memory_per_block)


def fit_shared_memory(op: str, kernel, grid: tuple, args: tuple, kwargs: dict, device: torch.device) -> dict:
    """The launch keywords ``kwargs`` of ``kernel``, or a copy with ``num_stages=1`` when the
    compiled kernel would need more shared memory than ``device`` allows per block and one stage
    fits (software pipelining keeps a copy of the dot operands per stage). Raises ValueError, before
    any launch, when even one stage does not fit. The kernel is compiled (``warmup``: cached, so the
    launch that follows compiles nothing) and its ``metadata.shared`` read; decisions are cached per
    (kernel, constexprs, argument dtypes, device). Only on CUDA devices outside the interpreter:
    elsewhere ``kwargs`` is returned as it is."""
    from fastpixel.kernels._interpreter import triton_interpreter_enabled

    device = torch.device(device)
    if device.type != "cuda" or triton_interpreter_enabled():
        return kwargs
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (getattr(kernel, "__name__", repr(kernel)), tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
           tuple(str(a.dtype) if isinstance(a, torch.Tensor) else type(a).__name__ for a in args), index)
    if key in _fitted:
        return _fitted[key]
    limit = shared_memory_limit(index)
    needed = kernel.warmup(*args, grid=grid, **kwargs).metadata.shared
    fitted = kwargs
    if needed > limit:
        one = {**kwargs, "num_stages": 1}
        needed_one = needed if kwargs.get("num_stages") == 1 else kernel.warmup(*args, grid=grid, **one).metadata.shared
        if needed_one > limit:
            raise ValueError(
                f"{op} (triton): {getattr(kernel, '__name__', kernel)} needs {needed_one} bytes of shared memory per "
                f"block even without software pipelining; this GPU allows {limit} (constexprs "
                f"{ {k: v for k, v in kwargs.items() if k.isupper()} }). Use a smaller hidden size or a "
                f"16-bit/float32 dtype, or the reference backend")
        fitted = one
    _fitted[key] = fitted
    return fitted
