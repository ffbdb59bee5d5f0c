"""Models from saved files: ``from_pretrained`` (the one "load a model"), ``save_pretrained``, ``push_to_hub``.

    model = fastpixel.from_pretrained("my_model")                       # a save_pretrained directory
    model = fastpixel.from_pretrained("digits")                         # a model shipped inside fastpixel
    model = fastpixel.from_pretrained("hf://owner/repo")                # the Hugging Face Hub (hub extra)
    model = fastpixel.from_pretrained("runs/t/checkpoint.pt", weights="ema")   # a training checkpoint

The files are read and written by :mod:`fastpixel.saved_model` (format) and
:mod:`fastpixel.checkpoint` (training checkpoints); this module turns a model config into a model
(``create_model(**config)``) and checks that the weights fit it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fastpixel import hub
from fastpixel.checkpoint import read_checkpoint
from fastpixel.data.datasets import IMAGE_SIZES
from fastpixel.devices import resolve_device
from fastpixel.models import MODELS, create_model
from fastpixel.saved_model import (CONFIG_NAME, PRETRAINED_DIR, WEIGHTS_NAME, PretrainedFormatError, model_config,
                                   pretrained_names, read_config, read_weights, write_saved_model)

WEIGHTS = ("model", "ema")
#: What a training checkpoint's model records about its data (``pretrained_info``).
CHECKPOINT_INFO = ("dataset", "binarize", "binarize_seed", "data_dir")


# -- building ----------------------------------------------------------------------------------------
def model_from_config(config: dict[str, Any], *, backend: str | None = None, source: Any = "model config"):
    """``create_model(**config, backend=backend)``; PretrainedFormatError naming ``source`` otherwise."""
    name = config.get("name") if isinstance(config, dict) else None
    if name not in MODELS:
        raise PretrainedFormatError(f"{source}: unknown model {name!r}; this fastpixel knows {sorted(MODELS)}")
    try:
        return create_model(**config, backend=backend)
    except (TypeError, ValueError) as err:
        raise PretrainedFormatError(f"{source}: its model config does not build a model ({err})") from None


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """``model.load_state_dict(state)`` with errors that name ``source`` and every mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PretrainedFormatError(f"{source}: weights do not match the model of its config: missing "
                                    f"{missing[:8]}{' ...' if len(missing) > 8 else ''}, unexpected "
                                    f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    wrong = [f"{k}: saved {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise PretrainedFormatError(f"{source}: weight shapes do not match the model of its config: "
                                    + "; ".join(wrong[:8]) + (" ..." if len(wrong) > 8 else ""))
    dtypes = {state[k].dtype for k in expected if state[k].is_floating_point()}
    if len(dtypes) == 1:  # keep the saved precision (a bfloat16 model loads as bfloat16)
        model.to(dtypes.pop())
    model.load_state_dict(state, strict=True)


# -- saving ------------------------------------------------------------------------------------------
def _check_model(model: torch.nn.Module, where: str) -> None:
    name = getattr(model, "config", {}).get("name") if isinstance(getattr(model, "config", None), dict) else None
    if name not in MODELS:
        raise TypeError(f"{where}: expected a fastpixel model (create_model(...)) whose .config names one of "
                        f"{sorted(MODELS)}, got {type(model).__name__}")


def save_pretrained(model: torch.nn.Module, path: str | os.PathLike, *, info: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``model`` to the directory ``path`` (created if needed): config.json + model.safetensors.

    model: any fastpixel model (``create_model(...)``, ``MultiScalePixelRNN``); weights are kept as
      they are (dtype too); non-finite weights are refused (ValueError).
    info: JSON-serialisable facts about the training data (e.g. {"dataset": "builtin_mnist",
      "height": 28, "width": 28}); default: the model's ``pretrained_info`` if it was loaded, else none.
    overwrite: replace a saved model (or someone else's config.json) already in ``path``; without it
      that is refused. A training run's directory is refused always (it keeps a config.json too).
    Written atomically (:func:`fastpixel.saved_model.write_saved_model`). Returns ``path`` as a Path.
    """
    _check_model(model, "save_pretrained")
    return write_saved_model(model, path, info=info, overwrite=overwrite)


def push_to_hub(model: torch.nn.Module, repo_id: str, **kwargs) -> str:
    """Upload ``model`` to the Hub repository ``repo_id`` ("owner/repo"); see :func:`fastpixel.hub.push_to_hub`."""
    _check_model(model, "push_to_hub")
    return hub.push_to_hub(model, repo_id, **kwargs)


# -- loading -----------------------------------------------------------------------------------------
def resolve_pretrained(path_or_name: str | os.PathLike) -> Path:
    """The local directory behind ``path_or_name``: a shipped name, an ``hf://`` repo (downloaded
    into the Hugging Face cache), or a directory path. Raises with the known names if none fits."""
    text = os.fspath(path_or_name)
    if hub.is_hub_path(text):
        return hub.download(text)
    names = pretrained_names()
    if isinstance(text, str) and text in names:  # a bare shipped name; "./digits" means a local directory
        return PRETRAINED_DIR / text
    path = Path(text)
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path}: not a directory; a saved model is a directory holding {CONFIG_NAME} "
                                 f"and {WEIGHTS_NAME} (written by save_pretrained); a training checkpoint is a "
                                 f".pt file (fastpixel.from_pretrained reads both)")
    if isinstance(text, str) and os.sep not in text and "/" not in text and not text.startswith("."):
        raise ValueError(f"unknown pretrained model {text!r}: no such directory, and the models shipped with "
                         f"fastpixel are {names}; Hugging Face Hub repositories are written 'hf://owner/repo'")
    raise FileNotFoundError(f"{path}: no such directory (expected one written by save_pretrained, holding "
                            f"{CONFIG_NAME} and {WEIGHTS_NAME}); shipped models: {names}")


def read_pretrained_config(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of a saved model: {"format", "format_version", "model", "info", ...}."""
    return _read_known_config(resolve_pretrained(path_or_name))


def _read_known_config(folder: Path) -> dict[str, Any]:
    """config.json of the saved model in ``folder``, naming a model this fastpixel knows."""
    document = read_config(folder)
    name = document["model"]["name"]
    if name not in MODELS:
        raise PretrainedFormatError(f"{folder / CONFIG_NAME}: unknown model {name!r}; this fastpixel knows "
                                    f"{sorted(MODELS)}")
    return document


def is_checkpoint_file(path_or_name: str | os.PathLike) -> bool:
    """Whether ``path_or_name`` names a training checkpoint: a ``*.pt`` path that is not a directory
    (a missing one then fails as a missing checkpoint)."""
    if hub.is_hub_path(path_or_name):
        return False
    path = Path(os.fspath(path_or_name))
    return path.suffix == ".pt" and not path.is_dir()


def from_pretrained(
    path_or_name: str | os.PathLike, *, weights: str = "model", device: str | torch.device | None = None,
    backend: str | None = None,
) -> torch.nn.Module:
    """Load a model, in eval mode: the one way to load one.

    path_or_name: the name of a model shipped with fastpixel (``pretrained_names()``, e.g. "digits";
      a bare shipped name always means that model: write "./digits" for a local directory of that
      name); a directory written by ``save_pretrained``; "hf://owner/repo[@revision]" on the Hugging
      Face Hub (``hub`` extra); or a training checkpoint file (``<run-dir>/checkpoint.pt``).
    weights: "model", or "ema" (a checkpoint of a run trained with ``--ema``: the averaged weights).
    device: where to put the model (default: the CPU); one that does not exist here is refused at
      once (DeviceError, a ValueError). backend: the model's ops backend.
    The returned model's ``pretrained_info`` says what it was trained on (data set, image size; for a
    checkpoint also the step and the weights).
    """
    if is_checkpoint_file(path_or_name):
        return model_from_checkpoint(path_or_name, weights=weights, device=device, backend=backend)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    if weights != "model":
        raise ValueError(f"weights={weights!r} applies to a training checkpoint (.pt) only; a saved model "
                         f"holds one set of weights")
    device = None if device is None else resolve_device(device, label="device")
    model = _from_directory(resolve_pretrained(path_or_name), backend)
    if device is not None:
        model.to(device)
    return model.eval()


def _from_directory(folder: Path, backend: str | None) -> torch.nn.Module:
    document = _read_known_config(folder)
    state = read_weights(folder)
    model = model_from_config(document["model"], backend=backend, source=folder / CONFIG_NAME)
    load_weights(model, state, folder / WEIGHTS_NAME)
    model.pretrained_info = dict(document.get("info", {}))
    return model


def model_from_checkpoint(
    path: str | os.PathLike, *, weights: str = "model", device: str | torch.device | None = None,
    backend: str | None = None,
) -> torch.nn.Module:
    """The model of the training checkpoint at ``path`` (any file name), in eval mode; what
    :func:`from_pretrained` does for a ``.pt`` path (``fastpixel-sample --checkpoint`` uses it directly).

    weights: "model" (the trained weights) or "ema" (the average kept with ``--ema``: torch's
    AveragedModel state, ``module.``-prefixed). Read with ``weights_only=True``: no code from the file runs.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    device = None if device is None else resolve_device(device, label="device")
    ckpt = read_checkpoint(path)
    if weights == "ema":
        if ckpt.get("ema") is None:
            raise ValueError(f"{path}: no EMA weights (the run was trained without --ema); use weights='model'")
        state = {k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    else:
        state = ckpt.get("model")
        if not isinstance(state, dict):
            raise PretrainedFormatError(f"{path}: the checkpoint holds no model weights")
    config = ckpt.get("model_config")
    if not isinstance(config, dict):
        raise PretrainedFormatError(f"{path}: its model_config does not build a model (got {config!r})")
    model = model_from_config(config, backend=backend, source=path)
    load_weights(model, state, path)
    model.pretrained_info = checkpoint_info(ckpt) | {"weights": weights}
    if device is not None:
        model.to(device)
    return model.eval()


def checkpoint_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records about the model's data: dataset, binarize, binarize_seed, data_dir,
    height and width (recorded, or the data set's size), and the step."""
    train_config = ckpt.get("train_config") or {}
    info = {k: train_config[k] for k in CHECKPOINT_INFO if k in train_config}
    data = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    info.update({k: data[k] for k in ("height", "width") if k in data})
    if "height" not in info and info.get("dataset") in IMAGE_SIZES:
        info["height"] = info["width"] = IMAGE_SIZES[info["dataset"]]
    info["step"] = ckpt.get("step")
    return info


__all__ = ["from_pretrained", "load_weights", "model_config", "model_from_checkpoint", "model_from_config", "push_to_hub",
           "read_pretrained_config", "resolve_pretrained", "save_pretrained"]
