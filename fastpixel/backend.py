"""Backend selection: each model and layer runs one backend, chosen when it is built or moved.

Names:
  * ``"reference"`` -- the pure-PyTorch path in :mod:`fastpixel.reference` (the readable ground
    truth; chosen only when asked for);
  * ``"torch"``     -- hand-written pure-PyTorch ops in :mod:`fastpixel.fast` (same numbers as the
    reference, much faster on CPUs; eager only: traced by ``torch.compile``, its ops run as the
    reference's, which Inductor fuses);
  * ``"triton"``    -- the Triton kernels in :mod:`fastpixel.kernels`; needs triton and either a
    CUDA tensor or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by CI);
  * ``"auto"``      -- triton where it can run, else ``"torch"``.

A module that runs ops (a layer, a model) inherits :class:`BackendChoice`: it resolves the name it
was given -- else the innermost :func:`use_backend` block *of the thread that builds it*, else the
``FASTPIXEL_BACKEND`` environment variable, else ``"auto"`` -- to a concrete backend once, when it is
built, and again when it is moved (``.to(device)``, when it was built with ``"auto"``) or switched
(``model.to_backend(name)``). ``module.backend`` says which one runs; ``forward`` reads that
attribute and nothing else, so two models on two backends can run in two threads at once.

The functional ops (:mod:`fastpixel.ops`) take ``backend=`` per call, with the same fallbacks when
it is None. Nothing here touches the GPU or imports triton at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from typing import Iterator

import torch

from fastpixel.kernels._interpreter import triton_interpreter_enabled  # triton-free

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "BackendUnavailableError",
    "check_backend_for_device",
    "choose_backend",
    "requested_backend",
    "resolve_backend",
    "triton_installed",
    "triton_interpreter_enabled",
    "triton_unavailable_reason",
    "use_backend",
]

BACKENDS = ("reference", "torch", "triton", "auto")
ENV_VAR = "FASTPIXEL_BACKEND"


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run on this machine or these tensors."""


class _ThreadDefaults(threading.local):
    """The default set by :func:`use_backend`, one per thread (None: not set)."""

    backend: str | None = None


_defaults = _ThreadDefaults()


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{where}: backend must be one of {BACKENDS}, got {name!r}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Make ``name`` the default backend of the models and layers *built* in the enclosed block
    (and of functional ops called there without ``backend=``).

    >>> with fastpixel.use_backend("reference"):
    ...     model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=8, layers=2)
    >>> model(x)          # runs the reference, inside or outside the block

    A model built earlier keeps its backend (switch it with ``model.to_backend(name)``). The
    default belongs to the calling thread and nests: leaving the block restores the previous one.
    """
    chosen = _check_name(name, "use_backend")
    previous = _defaults.backend
    _defaults.backend = chosen
    try:
        yield
    finally:
        _defaults.backend = previous


def requested_backend(backend: str | None = None) -> str:
    """The name asked for: the argument, else this thread's use_backend block, else the environment, else auto."""
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


def _device_reason(device_types: set[str]) -> str | None:
    if not triton_installed():
        return "the triton package is not installed (pip install triton)"
    if device_types == {"cuda"}:
        return None
    if device_types == {"cpu"} and triton_interpreter_enabled():
        return None
    if device_types == {"cpu", "cuda"}:
        return "tensors are on both CPU and CUDA"
    return (
        f"tensors are on {sorted(device_types) or ['no device']}; Triton kernels need CUDA tensors, "
        "or TRITON_INTERPRET=1 to run them on CPU through Triton's interpreter"
    )


def triton_unavailable_reason(*tensors: torch.Tensor) -> str | None:
    """Why the triton backend cannot run on ``tensors`` (None when it can)."""
    return _device_reason({t.device.type for t in tensors if isinstance(t, torch.Tensor)})


def check_backend_for_device(backend: str | None, device: torch.device | str, *, label: str = "backend") -> str:
    """The backend a model on ``device`` would run, checked now: BackendUnavailableError when
    "triton" was asked for (by name) and cannot run on ``device`` (no triton package, or a CPU
    without ``TRITON_INTERPRET=1``), so a command refuses before it works instead of failing at the
    first forward pass (or, worse, running something else)."""
    name = requested_backend(backend)
    if name == "triton":
        reason = _device_reason({torch.device(device).type})
        if reason is not None:
            raise BackendUnavailableError(f"{label} triton cannot run on {torch.device(device)}: {reason}; use "
                                          f"{label} torch (or auto)")
    return choose_backend(name, device)


def choose_backend(backend: str | None, device: torch.device | str) -> str:
    """The concrete backend ("reference", "torch" or "triton") a module on ``device`` runs.

    ``backend`` None falls back as :func:`requested_backend` says; "auto" takes triton when it can
    run on ``device``, else "torch". An explicit "triton" needs the triton package (the device is
    checked when an op runs, so that ``create_model(..., backend="triton").cuda()`` works).
    """
    name = requested_backend(backend)
    if name == "auto":
        return "triton" if _device_reason({torch.device(device).type}) is None else "torch"
    if name == "triton" and not triton_installed():
        raise BackendUnavailableError("backend 'triton' cannot run: the triton package is not installed (pip install triton)")
    return name


def resolve_backend(backend: str | None, *tensors: torch.Tensor, op: str) -> str:
    """The backend op ``op`` runs on ``tensors``: "reference", "torch" or "triton".

    ``backend``: a concrete name (what a layer passes: a check, nothing more), "auto", or None
    (the fallbacks of :func:`requested_backend`). Raises :class:`BackendUnavailableError` when
    "triton" was asked for but cannot run here, saying why. Traced by ``torch.compile``, "torch"
    runs as "reference": the torch backend's ops are eager autograd.Functions over reused buffers,
    opaque to dynamo, and the reference computes the same numbers in ops Inductor fuses.
    """
    name = requested_backend(backend)
    if name == "torch" or name == "auto":
        if name == "auto" and triton_unavailable_reason(*tensors) is None:
            return "triton"
        return "reference" if torch.compiler.is_compiling() else "torch"
    if name == "triton":
        reason = triton_unavailable_reason(*tensors)
        if reason is not None:
            raise BackendUnavailableError(f"{op}: backend 'triton' cannot run: {reason}")
    return name


def _module_device(module: torch.nn.Module) -> torch.device:
    for t in module.parameters(recurse=False):
        return t.device
    for t in module.buffers(recurse=False):
        return t.device
    for t in module.parameters():
        return t.device
    return torch.empty(0).device  # the default device (torch.set_default_device / a device context)


class BackendChoice:
    """Mixin for an ``nn.Module`` that runs fastpixel ops: the backend it runs, chosen once.

    ``self.backend``: the concrete backend its ops run ("reference", "torch", "triton");
    ``self.requested_backend``: what was asked for ("auto" is resolved again when the module moves).
    """

    backend: str
    requested_backend: str

    def _init_backend(self, backend: str | None) -> None:
        """Call at the end of ``__init__`` (the parameters exist, so the device is known)."""
        self.requested_backend = requested_backend(backend)
        self.backend = choose_backend(self.requested_backend, _module_device(self))

    def to_backend(self, backend: str):
        """Run every op of this module and of every submodule on ``backend``; returns ``self``."""
        _check_name(backend, "to_backend")
        for module in self.modules():
            if isinstance(module, BackendChoice):
                module.requested_backend = backend
                module.backend = choose_backend(backend, _module_device(module))
        return self

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .cpu(), .double(), ... all land here
        out = super()._apply(fn, *args, **kwargs)
        if getattr(self, "requested_backend", None) == "auto":
            self.backend = choose_backend("auto", _module_device(self))
        return out

    @contextlib.contextmanager
    def _deprecated_call_backend(self, backend: str | None, where: str) -> Iterator[None]:
        """A per-call ``backend=`` (deprecated): switch this module for the call, then switch back.

        Mutates the module for the call's duration (not thread-safe: build the model with
        ``backend=`` or call ``to_backend``); None: nothing changes.
        """
        if backend is None:
            yield
            return
        import warnings

        warnings.warn(
            f"{where}(..., backend=...) is deprecated and will be removed: a model runs the backend it was built "
            "with; use create_model(..., backend=...) or model.to_backend(name)",
            DeprecationWarning, stacklevel=4,
        )
        saved = [(m, m.requested_backend, m.backend) for m in self.modules() if isinstance(m, BackendChoice)]
        self.to_backend(backend)
        try:
            yield
        finally:
            for module, requested, concrete in saved:
                module.requested_backend, module.backend = requested, concrete
