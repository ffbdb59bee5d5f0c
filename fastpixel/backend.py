"""Backend selection, resolved in one place.

Every op in :mod:`fastpixel.ops` takes ``backend=``; when it is ``None`` the choice falls back,
in order, to the innermost :func:`use_backend` block, then to the ``FASTPIXEL_BACKEND``
environment variable, then to ``"auto"``.

Names:
  * ``"reference"`` -- the pure-PyTorch path in :mod:`fastpixel.reference` (the readable ground
    truth; chosen only when asked for);
  * ``"torch"``     -- hand-written pure-PyTorch ops in :mod:`fastpixel.fast` (same numbers as the
    reference, much faster on CPUs; runs wherever torch runs);
  * ``"triton"``    -- the Triton kernels in :mod:`fastpixel.kernels`; needs triton and either a
    CUDA tensor or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by CI);
  * ``"auto"``      -- triton when it can run on the given tensors, else ``"torch"`` when the op
    has it (in eager mode; inside ``torch.compile`` the reference, which Inductor traces into one
    graph), else the reference.

Resolution is plain Python on module-level state, so ``torch.compile`` traces it as constants
(guarding on the values it read): no ``ContextVar``, no device sync, nothing that breaks a graph.
:func:`use_backend` therefore sets a process-wide default (not a per-thread one). Which
implementation a (op, backend) pair runs is in :mod:`fastpixel.dispatch`.

Nothing here touches the GPU or imports triton at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Iterator

import torch

from fastpixel import dispatch
from fastpixel.kernels._interpreter import triton_interpreter_enabled  # triton-free

BACKENDS = ("reference", "torch", "triton", "auto")
ENV_VAR = "FASTPIXEL_BACKEND"


class _Defaults:
    """The process-wide backend default set by :func:`use_backend` (None: not set)."""

    backend: str | None = None


_defaults = _Defaults()


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run on this machine or these tensors."""


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {BACKENDS}, got {name!r}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed code with ``name`` as the default backend of every op.

    >>> with fastpixel.use_backend("reference"):
    ...     logits = model(x)

    The default is process-wide (every thread sees it) and nests: leaving the block restores the
    previous one. A compiled model reads it at trace time and recompiles when it changes.
    """
    chosen = _check_name(name, "use_backend")
    previous = _defaults.backend
    _defaults.backend = chosen
    try:
        yield
    finally:
        _defaults.backend = previous


def requested_backend(backend: str | None = None) -> str:
    """The backend name in force: the argument, else the use_backend block, else the environment, else auto."""
    if backend is not None:
        return _check_name(backend, "backend argument")
    if _defaults.backend is not None:
        return _defaults.backend
    env = os.environ.get(ENV_VAR)
    if env:
        return _check_name(env.strip().lower(), f"environment variable {ENV_VAR}")
    return "auto"


def _probe_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


#: Whether triton can be imported, found once at import (without importing it).
_TRITON_INSTALLED = _probe_triton()


def triton_installed() -> bool:
    """Whether triton can be imported (probed once, without importing it)."""
    return _TRITON_INSTALLED


def triton_unavailable_reason(*tensors: torch.Tensor) -> str | None:
    """Why the triton backend cannot run on ``tensors`` (None when it can)."""
    if not triton_installed():
        return "the triton package is not installed (pip install triton)"
    devices = {t.device.type for t in tensors if isinstance(t, torch.Tensor)}
    if devices <= {"cuda"} and devices:
        return None
    if devices <= {"cpu"} and triton_interpreter_enabled():
        return None
    if "cpu" in devices and "cuda" in devices:
        return "tensors are on both CPU and CUDA"
    return (
        f"tensors are on {sorted(devices) or ['no device']}; Triton kernels need CUDA tensors, "
        "or TRITON_INTERPRET=1 to run them on CPU through Triton's interpreter"
    )


def kernel_available(op: str) -> bool:
    """True when the op ``op`` has a Triton kernel (``fastpixel.kernels.<op>``)."""
    return dispatch.has_implementation(op, "triton")


def resolve_backend(backend: str | None, *tensors: torch.Tensor, op: str) -> str:
    """Return ``"reference"``, ``"torch"`` or ``"triton"`` for the op ``op`` about to run on ``tensors``.

    ``op`` is the op's stem (``"masked_conv"``, ``"row_lstm"``, ...). Raises
    :class:`BackendUnavailableError` when a backend was asked for explicitly but cannot run,
    saying why; ``"auto"`` quietly takes the best one that can.
    """
    name = requested_backend(backend)
    if name == "reference":
        return "reference"
    if name == "torch":
        if not dispatch.has_implementation(op, "torch"):
            raise BackendUnavailableError(f"{op}: backend 'torch' has no implementation of '{op}'")
        return "torch"
    reason = triton_unavailable_reason(*tensors)
    if reason is None and not kernel_available(op):
        reason = f"fastpixel has no Triton kernel for '{op}' (use backend='torch' or 'reference')"
    if name == "triton":
        if reason is not None:
            raise BackendUnavailableError(f"{op}: backend 'triton' cannot run: {reason}")
        return "triton"
    if reason is None:
        return "triton"
    if torch.compiler.is_compiling():
        # The "torch" backend is an eager fast path (hand-written autograd.Functions over reused
        # buffers, opaque to dynamo); under torch.compile the readable reference is what Inductor
        # traces and fuses into one graph, so "auto" takes it there.
        return "reference"
    return "torch" if dispatch.has_implementation(op, "torch") else "reference"
