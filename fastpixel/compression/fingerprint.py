"""What a compressed stream records to refuse the wrong model and the wrong arithmetic.

* :func:`model_fingerprint`: SHA-256 of the model's config (canonical JSON) and of every tensor of its
  state dict (name, dtype, shape, raw bytes, in sorted name order). One changed weight, a different
  architecture or another dtype changes it.
* :func:`machine_facts`: the facts that can change the float results of the same network on the same
  input: torch version, CPU instruction set torch dispatches to (``get_cpu_capability``), CPU
  architecture, and on a GPU its name and the CUDA version. Encoder and decoder must compute
  bit-identical logits; these facts equal is what makes that expected (the per-chunk pixel checksum
  is what proves it).
* :func:`soft_facts`: recorded for diagnosis, never refused on (thread count, numpy, Python).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys

import numpy as np
import torch


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hex SHA-256 of ``model.config`` and its state dict (every parameter and buffer)."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def model_dtype(model: torch.nn.Module) -> str:
    """The floating dtype of the model's parameters, e.g. "float32" (the dtype its logits are computed in)."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()})
    return dtypes[0] if len(dtypes) == 1 else "+".join(dtypes)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters are."""
    return next(model.parameters()).device


def machine_facts(device: torch.device) -> dict[str, str | None]:
    """The facts that can change float results: must be equal for a stream to decode (unless overridden)."""
    facts: dict[str, str | None] = {
        "torch": torch.__version__,
        "device": device.type,
        "cpu_arch": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpu": None,
        "cuda": None,
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
        facts["cuda"] = torch.version.cuda
    return facts


def soft_facts() -> dict[str, str | int]:
    """Recorded for diagnosis only (a checksum failure names them): they are not refused on."""
    return {"threads": torch.get_num_threads(), "numpy": np.__version__, "python": platform.python_version(),
            "platform": sys.platform}
