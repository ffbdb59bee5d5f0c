"""Devices a user names (``--device``, ``device=``) and generators they pass, checked where they enter.

``torch.device("cuda")`` on a machine without one fails late, as an AssertionError deep in torch;
:func:`resolve_device` says at once, in one line, why the device cannot be used and what to use.
"""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device that does not exist here, or a generator on another device than the work."""


def resolve_device(name: str | torch.device | None, *, label: str = "--device") -> torch.device:
    """``name`` -> a device this process can use (None: CUDA when available, else the CPU)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, bool) or not isinstance(name, (str, torch.device)):
        raise DeviceError(f"{label}: expected cpu, cuda or cuda:N, got {name!r}")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{label}: expected cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"{label}: expected cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        why = (f"this torch ({torch.__version__}) is a CPU-only build" if torch.version.cuda is None
               else f"this torch (CUDA {torch.version.cuda}) sees no GPU: check the driver and CUDA_VISIBLE_DEVICES")
        raise DeviceError(f"{label} {name}: no CUDA device available ({why}); use {label} cpu "
                          f"(or leave it out: CUDA when available, else the CPU)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"{label} {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """DeviceError unless ``generator`` (when given) is a torch.Generator on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise DeviceError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != torch.device(device).type:
        raise DeviceError(f"generator is on {generator.device}, the model on {device}: make it with "
                          f"torch.Generator(device={str(device)!r})")
