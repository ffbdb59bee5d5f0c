"""Training checkpoints: written atomically, holding only tensors and plain Python types.

A checkpoint is a dict (``FORMAT``): step, model_config (``create_model(**model_config)``),
train_config, model / optimizer / ema state dicts, the RNG states (torch CPU, every CUDA device,
numpy's and Python's global generators) and the running training-loss sums, so a resumed run
continues exactly where the checkpoint was taken. It loads with ``torch.load(weights_only=True)``.

    state = read_checkpoint("runs/t/checkpoint.pt")         # the dict, e.g. state["step"]
    model = fastpixel.from_pretrained("runs/t/checkpoint.pt", weights="ema")   # its model
"""

from __future__ import annotations

import io
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastpixel.atomic import write_bytes_atomically

FORMAT = "fastpixel-checkpoint-1"
FILENAME = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read, or is not a fastpixel checkpoint (the message names it)."""


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain types."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (:func:`~fastpixel.atomic.write_atomically`; a full disk:
    :class:`~fastpixel.atomic.DiskFullError`, the previous checkpoint kept)."""

    buffer = io.BytesIO()  # serialised first: a full disk is then an OSError, not torch's zip-writer failure
    torch.save(state, buffer)
    return write_bytes_atomically(path, buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A training checkpoint as the dict it holds, read with ``weights_only=True`` (no code runs).

    FileNotFoundError / CheckpointError name the file. For the model it holds, use
    ``fastpixel.from_pretrained(path, weights="model" | "ema")``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there (train writes <run-dir>/{FILENAME})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, i.e. running the file's code: never relay it
        raise CheckpointError(
            f"{path}: cannot read the checkpoint: refused, it holds Python objects other than tensors and "
            f"plain types, and loading those would run code from the file. A checkpoint fastpixel writes "
            f"never does; treat this file as untrusted"
        ) from None
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint: the file is truncated or corrupt "
                              f"({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastpixel checkpoint (expected format {FORMAT!r})")
    return state


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Deprecated name of :func:`read_checkpoint` (the dict); kept for one release."""
    warnings.warn("fastpixel.checkpoint.load_checkpoint is deprecated: use fastpixel.read_checkpoint (the "
                  "checkpoint's dict) or fastpixel.from_pretrained(path) (its model)", DeprecationWarning, stacklevel=2)
    return read_checkpoint(path, map_location)
