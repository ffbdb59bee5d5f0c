"""Reusable scratch buffers for the fast scans.

On a CPU a freshly allocated large tensor is paid for page by page on first touch: measured on
this project's machine, ~1 ms per MB (a 66 MB ``torch.zeros`` took 60-66 ms, the same fill of
memory already mapped 0.5 ms per 17 MB). glibc hands blocks above its mmap threshold straight
back to the kernel when they are freed, so every call of a scan would pay again for its buffers
(tens of MB at the paper's sizes): more than the scan's arithmetic. This pool keeps them.

:func:`scratch` returns an uninitialised tensor of the requested shape, reusing a pooled one
that nobody else references any more (neither the tensor nor any view of its storage: checked
with the reference counts), else allocating a new one and pooling it. Buffers saved for a
backward pass stay referenced by autograd until the backward has run or the graph is freed, so
they are never handed out twice; and an op may return a scratch tensor to its caller for the
same reason (it is reused only once the caller, and everything else, has let go of it), which is
how the fast ops' outputs and gradients avoid the page faults too: a caching allocator for them.

The pool holds at most :data:`MAX_POOLED_BYTES`; beyond that, buffers are allocated as usual.
CUDA tensors are never pooled (PyTorch's caching allocator already does this).
"""

from __future__ import annotations

import threading

import torch

#: Upper bound on the bytes kept in the pool (the rest are ordinary allocations).
MAX_POOLED_BYTES = 2 << 30

_lock = threading.Lock()
_pool: dict[tuple, list[torch.Tensor]] = {}
_pooled_bytes = 0


def _is_free(t: torch.Tensor) -> bool:
    # The pool never hands out its own tensor, only a view of it: every user holds a TensorImpl
    # of its own on the storage. Free = the storage is referenced by the pooled tensor and the
    # temporary storage object below, nothing else.
    return t._use_count() == 1 and torch._C._storage_Use_Count(t.untyped_storage()._cdata) == 2


def scratch(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised contiguous tensor, reused from the pool when one is free."""
    global _pooled_bytes
    device = torch.device(device)
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    key = (tuple(shape), dtype)
    with _lock:
        for t in _pool.get(key, ()):
            if _is_free(t):
                return t.view(t.shape)
        t = torch.empty(shape, dtype=dtype, device=device)
        size = t.numel() * t.element_size()
        if _pooled_bytes + size <= MAX_POOLED_BYTES:
            _pool.setdefault(key, []).append(t)
            _pooled_bytes += size
        return t.view(t.shape)


def clear() -> None:
    """Drop every pooled buffer (those still in use are freed once their users let go)."""
    global _pooled_bytes
    with _lock:
        _pool.clear()
        _pooled_bytes = 0
