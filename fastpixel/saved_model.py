"""The saved-model format: a directory of two files, nothing in it a pickle. Imports no model.

    config.json        {"format": "fastpixel-pretrained", "format_version": 1,
                        "fastpixel_version": "...", "model": model.config, "info": {...}}
    model.safetensors  the state dict (raw tensor bytes, so a round trip is bitwise exact)

``model`` rebuilds the network (``fastpixel.models.build.model_from_config``); ``info`` holds optional
facts about the data the model was trained on (``dataset``, ``height``, ``width``, test NLL, ...).
This module writes and reads the two files (atomically, with checks and errors naming the file)
and finds the folders of the models shipped inside the package; building models from them is
:mod:`fastpixel.models.build`'s job, the Hugging Face Hub :mod:`fastpixel.hub`'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from fastpixel._version import __version__
from fastpixel.atomic import write_bytes_atomically
from fastpixel.directory_kind import FOREIGN, SAVED_MODEL, refuse_other_kind
from fastpixel.finite import check_finite_weights
from fastpixel.output_paths import OutputExistsError, check_output_dir

FORMAT = "fastpixel-pretrained"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Models shipped inside the package: fastpixel/pretrained/<name>/{config.json, model.safetensors}.
PRETRAINED_DIR = Path(__file__).with_name("pretrained")


class PretrainedFormatError(ValueError):
    """A saved model directory whose files are missing, torn or do not describe a fastpixel model."""


# -- writing -----------------------------------------------------------------------------------------
def model_config(model: torch.nn.Module, where: str = "save_pretrained") -> dict[str, Any]:
    """A copy of ``model.config`` (the dict that rebuilds it); TypeError when there is none."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise TypeError(f"{where}: expected a fastpixel model (create_model(...)) with a .config naming its "
                        f"model, got {type(model).__name__}")
    return dict(config)


def write_saved_model(model: torch.nn.Module, path: str | os.PathLike, *, info: dict[str, Any] | None = None,
                      overwrite: bool = False) -> Path:
    """Write ``model`` to the directory ``path`` (created if needed): config.json + model.safetensors.

    model: a module with a ``config`` dict and a state dict; its weights are copied to the CPU as
      they are (dtype kept). Non-finite weights are refused (NonFiniteWeightsError, a ValueError).
    info: JSON values about the training data; default: the model's ``pretrained_info``, else none.
    overwrite: replace a saved model (or a config.json fastpixel did not write) already in ``path``;
      without it they are refused (OutputExistsError). A training run's directory is refused always
      (DirectoryKindError): a run and a saved model both keep a config.json.
    Each file is written to a temporary name in ``path`` and renamed, so a crash never leaves a
    torn file under the final name. Returns ``path`` as a Path.
    """
    from safetensors.torch import save

    config = model_config(model)
    if info is None:
        info = getattr(model, "pretrained_info", None) or {}
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict of JSON values, got {type(info).__name__}")
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be a bool (True or False), got {overwrite!r}")
    check_finite_weights(model, "save a model (save_pretrained)")
    # clone: safetensors refuses shared storage
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastpixel_version": __version__,
                "model": config, "info": info}
    try:
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_pretrained: info must hold only JSON values (no NaN): {err}") from None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a directory (save_pretrained writes a directory)")
    contents = refuse_other_kind(path, SAVED_MODEL, label="save_pretrained")
    if contents.kind in (SAVED_MODEL, FOREIGN) and not overwrite:
        raise OutputExistsError(f"save_pretrained: {path} already holds {contents.describe()}; pass "
                                f"overwrite=True to replace it, or choose another directory")
    check_output_dir(path, "save_pretrained")
    path.mkdir(parents=True, exist_ok=True)
    # serialised in memory first: a full disk is then one DiskFullError, and the old files stay
    write_bytes_atomically(path / WEIGHTS_NAME, save(tensors, metadata={"format": "pt"}))
    write_bytes_atomically(path / CONFIG_NAME, text.encode())
    return path


# -- reading -----------------------------------------------------------------------------------------
def pretrained_names() -> list[str]:
    """Names of the models shipped inside the package (``from_pretrained(name)``), sorted."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of the saved model in ``folder``: {"format", "format_version", "model", "info", ...}.

    Checks the format and its version and that "model" is an object naming a model; whether this
    fastpixel knows that model is for the builder to say.
    """
    file = Path(folder) / CONFIG_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a saved model directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                                "(written by save_pretrained)")
    try:
        document = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedFormatError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PretrainedFormatError(f"{file}: not a fastpixel model config (expected \"format\": {FORMAT!r})")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise PretrainedFormatError(f"{file}: format_version {version!r}; this fastpixel reads versions 1.."
                                    f"{FORMAT_VERSION} (a newer fastpixel wrote it? upgrade fastpixel)")
    model = document.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise PretrainedFormatError(f"{file}: \"model\" must be an object naming a model, got {model!r}")
    info = document.get("info", {})
    if not isinstance(info, dict):
        raise PretrainedFormatError(f"{file}: \"info\" must be an object, got {type(info).__name__}")
    return document


def read_weights(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in ``folder``'s model.safetensors, on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = Path(folder) / WEIGHTS_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a saved model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise PretrainedFormatError(f"{file}: cannot read the weights, the file is torn or not safetensors "
                                    f"({type(err).__name__}: {err})") from None
