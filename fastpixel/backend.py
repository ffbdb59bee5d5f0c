"""Backend selection, resolved in one place.

Every op in :mod:`fastpixel.ops` takes ``backend=``; when it is ``None`` the choice falls back,
in order, to the innermost :func:`use_backend` context, then to the ``FASTPIXEL_BACKEND``
environment variable, then to ``"auto"``.

Names:
  * ``"reference"`` -- the pure-PyTorch path in :mod:`fastpixel.reference` (the ground truth);
  * ``"triton"``    -- the Triton kernels in :mod:`fastpixel.kernels`; needs triton and either a
    CUDA tensor or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by CI);
  * ``"auto"``      -- triton when it can run on the given tensors, the reference otherwise.

Nothing here touches the GPU or imports triton at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
from typing import Iterator

import torch

BACKENDS = ("reference", "triton", "auto")
ENV_VAR = "FASTPIXEL_BACKEND"

_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastpixel_backend", default=None
)


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
    """
    token = _context_backend.set(_check_name(name, "use_backend"))
    try:
        yield
    finally:
        _context_backend.reset(token)


def requested_backend(backend: str | None = None) -> str:
    """The backend name in force: the argument, else the context, else the environment, else auto."""
    if backend is not None:
        return _check_name(backend, "backend argument")
    ctx = _context_backend.get()
    if ctx is not None:
        return ctx
    env = os.environ.get(ENV_VAR)
    if env:
        return _check_name(env.strip().lower(), f"environment variable {ENV_VAR}")
    return "auto"


def triton_interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on CPU tensors (slowly)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0", "false", "False")


def triton_installed() -> bool:
    """Whether triton can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


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
    """True when ``fastpixel.kernels.<op>`` exists (the same stem names an op in every folder)."""
    try:
        return importlib.util.find_spec(f"fastpixel.kernels.{op}") is not None
    except ModuleNotFoundError:
        return False


def resolve_backend(backend: str | None, *tensors: torch.Tensor, op: str) -> str:
    """Return ``"reference"`` or ``"triton"`` for the op ``op`` about to run on ``tensors``.

    ``op`` is the op's stem (``"masked_conv"``, ``"row_lstm"``, ...). Raises
    :class:`BackendUnavailableError` when ``"triton"`` was asked for explicitly but cannot
    run, saying why; ``"auto"`` quietly falls back to the reference.
    """
    name = requested_backend(backend)
    if name == "reference":
        return "reference"
    reason = triton_unavailable_reason(*tensors)
    if reason is None and not kernel_available(op):
        reason = f"fastpixel has no Triton kernel for '{op}' yet (use backend='reference')"
    if name == "triton":
        if reason is not None:
            raise BackendUnavailableError(f"{op}: backend 'triton' cannot run: {reason}")
        return "triton"
    return "reference" if reason is not None else "triton"
