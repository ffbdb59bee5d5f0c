"""Where sample / evaluate take their model from: ``--checkpoint PATH`` or ``--pretrained NAME``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import torch

from fastpixel.checkpoint import load_checkpoint
from fastpixel.cli.args import CommandError

# Image size of the data sets fastpixel.data reads (checkpoints older than "image_size" record only the name).
DATASET_SIZES = {
    "builtin_mnist": 28, "mnist": 28, "fashion_mnist": 28, "binarized_mnist": 28,
    "cifar10": 32, "imagenet32": 32, "imagenet64": 64,
}


@dataclass
class LoadedModel:
    """A model ready to use, and what its source says about the data it was trained on.

    data: dataset, data_dir, binarize, binarize_seed, allow_pickle (those known). image_size: (H, W)
    of the training images, or None when unknown. label: a line describing the source.
    """

    model: torch.nn.Module
    label: str
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None

    def default_size(self) -> tuple[int, int] | None:
        if self.image_size is not None:
            return self.image_size
        size = DATASET_SIZES.get(self.data.get("dataset"))
        return (size, size) if size else None


def add_model_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint.pt written by fastpixel-train")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a saved model (folder, file or built-in name such as 'digits'), via fastpixel.from_pretrained")
    parser.add_argument("--weights", choices=("model", "ema"), default="model",
                        help="--checkpoint: the raw or the EMA (Polyak-averaged) weights (default model)")


DATA_KEYS = ("dataset", "data_dir", "binarize", "binarize_seed", "allow_pickle")


def load_model_source(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    """The model named by ``--checkpoint`` / ``--pretrained`` (+ ``--weights``), on ``device``, in eval mode."""
    if args.pretrained is not None:
        if args.weights != "model":
            raise CommandError("--weights ema applies to --checkpoint only (a saved model holds one set of weights)")
        import fastpixel

        if not hasattr(fastpixel, "from_pretrained"):
            raise CommandError("--pretrained needs fastpixel.from_pretrained, which this install lacks")
        model = fastpixel.from_pretrained(args.pretrained)
        meta = _pretrained_metadata(model)
        data = {k: meta[k] for k in DATA_KEYS if k in meta}
        size = meta.get("image_size")
        return LoadedModel(model.to(device).eval(), f"pretrained {args.pretrained!r}", meta.get("step"), data,
                           tuple(size) if size else None)
    ckpt = load_checkpoint(args.checkpoint)
    config = ckpt.get("model_config")
    if not isinstance(config, dict):
        raise CommandError(f"{args.checkpoint}: records no model config (trained with fastpixel.fit on a custom "
                           f"model?); load it in Python and call fastpixel.sample / the model directly")
    from fastpixel.models import create_model

    model = create_model(**config)
    if args.weights == "ema":
        if ckpt.get("ema") is None:
            raise CommandError(f"{args.checkpoint}: no EMA weights (the run was trained without --ema); "
                               f"use --weights model")
        model.load_state_dict({k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")})
    else:
        model.load_state_dict(ckpt["model"])
    cfg = ckpt.get("train_config") or {}
    size = ckpt.get("image_size")
    return LoadedModel(model.to(device).eval(), f"{config} at step {ckpt.get('step')} ({args.weights} weights)",
                       ckpt.get("step"), {k: cfg[k] for k in DATA_KEYS if k in cfg}, tuple(size) if size else None)


def _pretrained_metadata(model: torch.nn.Module) -> dict[str, Any]:
    """What a saved model says about its training data (``model.pretrained_info``, when it has one)."""
    info = getattr(model, "pretrained_info", None) or {}
    return dict(info) if isinstance(info, dict) else {}
