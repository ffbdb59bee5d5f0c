"""Where sample / evaluate take their model from: ``--checkpoint PATH`` or ``--pretrained NAME``.

Both load through :mod:`fastpixel.models.build` (``from_pretrained``; a checkpoint of any file name with
``model_from_checkpoint(path, weights="model" | "ema")``);
the model's ``pretrained_info`` says what it was trained on (data set, binarization, image size).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastpixel.cli.args import CommandError
from fastpixel.data.datasets import IMAGE_SIZES
from fastpixel.models.build import from_pretrained, model_from_checkpoint

DATA_KEYS = ("dataset", "data_dir", "binarize", "binarize_seed", "allow_pickle")


@dataclass
class LoadedModel:
    """A model ready to use (eval mode), and what its source says about its training data.

    info: the model's ``pretrained_info`` (dataset, binarize, binarize_seed, data_dir, height,
    width, step; those known). label: a line describing the source.
    """

    model: torch.nn.Module
    label: str
    info: dict[str, Any]

    @property
    def step(self) -> int | None:
        return self.info.get("step")

    @property
    def data(self) -> dict[str, Any]:
        return {k: self.info[k] for k in DATA_KEYS if self.info.get(k) is not None}

    def default_size(self) -> tuple[int, int] | None:
        """(H, W) of the training images, or None when the source does not say."""
        if isinstance(self.info.get("height"), int) and isinstance(self.info.get("width"), int):
            return self.info["height"], self.info["width"]
        size = IMAGE_SIZES.get(self.info.get("dataset"))
        return (size, size) if size else None


def add_model_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint.pt written by fastpixel-train")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a saved model: a built-in name such as 'digits', a folder written by save_pretrained, "
                             "or hf://owner/repo")
    parser.add_argument("--weights", choices=("model", "ema"), default="model",
                        help="--checkpoint: the raw or the EMA (Polyak-averaged) weights (default model)")


def load_model_source(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    """The model named by ``--checkpoint`` / ``--pretrained`` (+ ``--weights``), on ``device``, in eval mode,
    built on ``--backend`` (the model owns its backend)."""
    backend = getattr(args, "backend", None)
    if args.pretrained is not None:
        if args.weights != "model":
            raise CommandError("--weights ema applies to --checkpoint only (a saved model holds one set of weights)")
        model = from_pretrained(args.pretrained, device=device, backend=backend)
        label = f"pretrained {args.pretrained!r}: {model.config}"
    else:
        model = model_from_checkpoint(args.checkpoint, weights=args.weights, device=device, backend=backend)
        info = getattr(model, "pretrained_info", {}) or {}
        label = f"{model.config} at step {info.get('step')} ({args.weights} weights)"
    info = dict(getattr(model, "pretrained_info", None) or {})
    if args.checkpoint is not None and isinstance(info.get("data_dir"), str):
        info["data_dir"] = resolve_recorded_dir(info["data_dir"], Path(args.checkpoint).parent)
    return LoadedModel(model.eval(), label, info)


def resolve_recorded_dir(recorded: str, run_dir: Path) -> str:
    """A data folder a run recorded: absolute since issue 18; an older run's relative path is taken
    from the working directory when it exists there, else from the run directory or its parent."""
    path = Path(recorded)
    if path.is_absolute() or path.exists():
        return recorded
    for base in (run_dir, run_dir.parent):
        if (base / path).exists():
            return str(base / path)
    return recorded
