"""Saving and loading models: ``save_pretrained``, ``from_pretrained``, ``load_checkpoint``.

A saved model is a directory of two files, and nothing in it is a pickle:

    config.json        {"format": "fastpixel-pretrained", "format_version": 1,
                        "fastpixel_version": "...", "model": model.config, "info": {...}}
    model.safetensors  the state dict (raw tensor bytes, so a round trip is bitwise exact)

``model`` rebuilds the network with ``create_model(**config["model"])``; ``info`` holds optional
facts about the data the model was trained on (``dataset``, ``height``, ``width``, test NLL, ...)
so that commands can default, e.g., the size of the images they sample.

    model.save_pretrained("my_model")            # or fastpixel.save_pretrained(model, "my_model")
    model = fastpixel.from_pretrained("my_model")
    model = fastpixel.from_pretrained("digits")  # a model shipped inside the package
    model = fastpixel.load_checkpoint("runs/cpu_tiny/checkpoint.pt", weights="ema")

Hugging Face Hub (``pip install 'fastpixel[hub]'``): ``from_pretrained("hf://owner/repo")``
(optionally ``hf://owner/repo@revision``) downloads the two files with
``huggingface_hub.snapshot_download``; ``push_to_hub(model, "owner/repo")`` uploads them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from fastpixel.checkpoint import write_atomically

FORMAT = "fastpixel-pretrained"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HUB_PREFIX = "hf://"
#: Models shipped inside the package: fastpixel/pretrained/<name>/{config.json, model.safetensors}.
PRETRAINED_DIR = Path(__file__).with_name("pretrained")
HUB_INSTALL = "pip install 'fastpixel[hub]' (or pip install huggingface_hub)"


class PretrainedFormatError(ValueError):
    """A saved model directory whose files are missing, torn or do not describe a fastpixel model."""


# -- saving ------------------------------------------------------------------------------------------
def save_pretrained(model: torch.nn.Module, path: str | os.PathLike, *, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to the directory ``path`` (created if needed): config.json + model.safetensors.

    model: any fastpixel model (``create_model(...)``, ``MultiScalePixelRNN``); its weights are
      copied to the CPU as they are (dtype kept). Non-finite weights are refused (ValueError).
    info: JSON-serialisable facts about the training data (e.g. {"dataset": "builtin_mnist",
      "height": 28, "width": 28}); default: the model's ``pretrained_info`` if it was loaded
      with :func:`from_pretrained`, else none.
    Each file is written to a temporary name in ``path`` and renamed, so a crash never leaves a
    torn file under the final name. Returns ``path`` as a Path.
    """
    from safetensors.torch import save_file

    import fastpixel

    config = _model_config(model)
    if info is None:
        info = getattr(model, "pretrained_info", None) or {}
    if not isinstance(info, dict):
        raise TypeError(f"info must be a dict of JSON values, got {type(info).__name__}")
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu").contiguous().clone()  # clone: safetensors refuses shared storage
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"save_pretrained: weight {key!r} holds NaN or inf; refusing to save a broken model")
        tensors[key] = value
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastpixel_version": fastpixel.__version__,
                "model": config, "info": info}
    try:
        text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_pretrained: info must hold only JSON values (no NaN): {err}") from None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: exists and is not a directory (save_pretrained writes a directory)")
    path.mkdir(parents=True, exist_ok=True)
    write_atomically(path / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    write_atomically(path / CONFIG_NAME, lambda tmp: tmp.write_text(text))
    return path


def _model_config(model: torch.nn.Module) -> dict[str, Any]:
    from fastpixel.models import MODELS

    config = getattr(model, "config", None)
    if not isinstance(config, dict) or config.get("name") not in MODELS:
        raise TypeError(f"save_pretrained: expected a fastpixel model (create_model(...)) whose .config names one "
                        f"of {sorted(MODELS)}, got {type(model).__name__}")
    return dict(config)


# -- loading -----------------------------------------------------------------------------------------
def pretrained_names() -> list[str]:
    """Names of the models shipped inside the package (``from_pretrained(name)``), sorted."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def resolve_pretrained(path_or_name: str | os.PathLike) -> Path:
    """The local directory behind ``path_or_name``: a shipped name, an ``hf://`` repo (downloaded
    into the Hugging Face cache), or a directory path. Raises with the known names if none fits."""
    text = os.fspath(path_or_name)
    if isinstance(text, str) and text.startswith(HUB_PREFIX):
        return _download_from_hub(text[len(HUB_PREFIX):])
    names = pretrained_names()
    if isinstance(text, str) and text in names:  # a bare shipped name; "./digits" means a local directory
        return PRETRAINED_DIR / text
    path = Path(text)
    if path.is_dir():
        return path
    if path.exists():
        hint = "; a training checkpoint loads with fastpixel.load_checkpoint" if path.suffix == ".pt" else ""
        raise NotADirectoryError(f"{path}: not a directory; a saved model is a directory holding {CONFIG_NAME} "
                                 f"and {WEIGHTS_NAME} (written by save_pretrained){hint}")
    if isinstance(text, str) and os.sep not in text and "/" not in text and not text.startswith("."):
        raise ValueError(f"unknown pretrained model {text!r}: no such directory, and the models shipped with "
                         f"fastpixel are {names}; Hugging Face Hub repositories are written 'hf://owner/repo'")
    raise FileNotFoundError(f"{path}: no such directory (expected one written by save_pretrained, holding "
                            f"{CONFIG_NAME} and {WEIGHTS_NAME}); shipped models: {names}")


def read_pretrained_config(path_or_name: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of a saved model: {"format", "format_version", "model", "info", ...}."""
    return _read_config(resolve_pretrained(path_or_name))


def _read_config(folder: Path) -> dict[str, Any]:
    from fastpixel.models import MODELS

    file = folder / CONFIG_NAME
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
    if not isinstance(model, dict) or model.get("name") not in MODELS:
        name = model.get("name") if isinstance(model, dict) else None
        raise PretrainedFormatError(f"{file}: unknown model {name!r}; this fastpixel knows {sorted(MODELS)}")
    info = document.get("info", {})
    if not isinstance(info, dict):
        raise PretrainedFormatError(f"{file}: \"info\" must be an object, got {type(info).__name__}")
    return document


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = folder / WEIGHTS_NAME
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a saved model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise PretrainedFormatError(f"{file}: cannot read the weights, the file is torn or not safetensors "
                                    f"({type(err).__name__}: {err})") from None


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


def from_pretrained(
    path_or_name: str | os.PathLike, *, device: str | torch.device | None = None, backend: str | None = None
) -> torch.nn.Module:
    """Load a model written by :func:`save_pretrained`, in eval mode.

    path_or_name: the name of a model shipped with fastpixel (``pretrained_names()``, e.g. "digits";
      a bare shipped name always means that model: write "./digits" for a local directory of that
      name); a directory; or "hf://owner/repo[@revision]" on the Hugging Face Hub (``hub`` extra).
    device: where to put the model (default: the CPU). backend: the model's ops backend (None: the
      global choice, see fastpixel.backend).
    The returned model's ``pretrained_info`` is config.json's ``info`` (data set, image size, ...).
    """
    from fastpixel.models import create_model

    folder = resolve_pretrained(path_or_name)
    document = _read_config(folder)
    state = _read_weights(folder)
    try:
        model = create_model(**document["model"], backend=backend)
    except (TypeError, ValueError) as err:
        raise PretrainedFormatError(f"{folder / CONFIG_NAME}: its model config does not build a model ({err})") from None
    load_weights(model, state, folder / WEIGHTS_NAME)
    model.pretrained_info = dict(document.get("info", {}))
    if device is not None:
        model.to(device)
    return model.eval()


def load_checkpoint(
    path: str | os.PathLike, *, weights: str = "model", device: str | torch.device | None = None,
    backend: str | None = None,
) -> torch.nn.Module:
    """The model of a training checkpoint (``fastpixel.train``'s ``checkpoint.pt``), in eval mode.

    weights: "model" (the trained weights) or "ema" (the exponential moving average kept with
      ``--ema``; the checkpoint holds torch's AveragedModel state, ``module.``-prefixed).
    The checkpoint is read with ``torch.load(weights_only=True)``: no code from the file runs.
    The returned model's ``pretrained_info`` holds the training data facts the checkpoint records
    (dataset, binarize, binarize_seed, data_dir, height and width when known, step, weights).
    """
    from fastpixel.checkpoint import load_checkpoint as read_checkpoint
    from fastpixel.data.datasets import IMAGE_SIZES
    from fastpixel.models import create_model

    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
    ckpt = read_checkpoint(path)
    if weights == "ema":
        if ckpt.get("ema") is None:
            raise ValueError(f"{path}: no EMA weights (the run was trained without --ema); use weights='model'")
        state = {k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    else:
        state = ckpt.get("model")
        if not isinstance(state, dict):
            raise PretrainedFormatError(f"{path}: the checkpoint holds no model weights")
    try:
        model = create_model(**ckpt["model_config"], backend=backend)
    except (KeyError, TypeError, ValueError) as err:
        raise PretrainedFormatError(f"{path}: its model_config does not build a model ({err})") from None
    load_weights(model, state, path)
    train_config = ckpt.get("train_config") or {}
    info = {k: train_config[k] for k in ("dataset", "binarize", "binarize_seed", "data_dir") if k in train_config}
    data = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    info.update({k: data[k] for k in ("height", "width") if k in data})
    if "height" not in info and info.get("dataset") in IMAGE_SIZES:
        info["height"] = info["width"] = IMAGE_SIZES[info["dataset"]]
    info.update(step=ckpt.get("step"), weights=weights)
    model.pretrained_info = info
    if device is not None:
        model.to(device)
    return model.eval()


# -- Hugging Face Hub ----------------------------------------------------------------------------------
def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(f"the Hugging Face Hub needs the huggingface_hub package: {HUB_INSTALL}") from None
    return huggingface_hub


def _download_from_hub(spec: str) -> Path:
    """'owner/repo[@revision]' -> the local snapshot folder holding config.json and model.safetensors."""
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{HUB_PREFIX}{spec}: expected {HUB_PREFIX}owner/repo or {HUB_PREFIX}owner/repo@revision")
    hub = _hub()
    folder = hub.snapshot_download(repo_id=repo_id, revision=revision or None,
                                   allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
    return Path(folder)


def push_to_hub(
    model: torch.nn.Module, repo_id: str, *, info: dict[str, Any] | None = None, private: bool = False,
    token: str | None = None, commit_message: str = "Upload fastpixel model",
) -> str:
    """Upload ``model`` (the files of :func:`save_pretrained`) to the Hub repository ``repo_id``
    ("owner/repo", created if missing). Returns the commit URL. Load it back with
    ``from_pretrained("hf://owner/repo")``."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must be 'owner/repo', got {repo_id!r}")
    hub = _hub()
    api = hub.HfApi(token=token)
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(model, folder, info=info)
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))


class SavePretrainedMixin:
    """``model.save_pretrained(path)`` and ``model.push_to_hub(repo_id)`` on every fastpixel model."""

    def save_pretrained(self, path: str | os.PathLike, *, info: dict[str, Any] | None = None) -> Path:
        """Write this model to the directory ``path``; see :func:`fastpixel.save_pretrained`."""
        return save_pretrained(self, path, info=info)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload this model to the Hugging Face Hub; see :func:`fastpixel.persistence.push_to_hub`."""
        return push_to_hub(self, repo_id, **kwargs)
