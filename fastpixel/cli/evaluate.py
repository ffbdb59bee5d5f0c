"""Held-out likelihood: ``fastpixel-evaluate --checkpoint RUN/checkpoint.pt`` (or ``--pretrained NAME``).

``--images FILE`` scores your own images (.npz / .npy / .png) instead of the recorded data set.

Prints the data protocol, then the NLL of the whole split in nats/image and bits/dim. The
network runs in float32; per-image NLLs are summed over the split in float64.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from fastpixel.backend import BACKENDS, check_backend_for_device
from fastpixel.cli.args import CommandError, Parser, from_rule, resolve_device, run_command
from fastpixel.cli.model_source import add_model_source, load_model_source
from fastpixel.data import DATASETS, load_dataset
from fastpixel.data.datasets import BINARIZE, ImageSet
from fastpixel.data.image_file import read_image_file
from fastpixel.training.config import BUILT_IN
from fastpixel.training.evaluation import evaluate_nll
from fastpixel.training.user_data import as_image_set

PROG = "fastpixel-evaluate"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source(p)
    p.add_argument("--images", metavar="FILE", default=None,
                   help="score your own images instead of a data set: .npz (key 'images'), .npy or .png of integers "
                        "in [0, levels) (checked as training data is)")
    p.add_argument("--split", default=None, help="split to score (default test; binarized_mnist also has valid)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="override the data set the model records")
    p.add_argument("--binarize", choices=BINARIZE, default=None, help="override the recorded binarization")
    p.add_argument("--data-dir", default=None, help="override the data folder recorded in the checkpoint")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read CIFAR-10's python (pickle) version; unpickling runs code from the file")
    p.add_argument("--batch-size", type=from_rule("eval_batch_size"), default=256)
    p.add_argument("--limit", type=from_rule("limit"), default=None,
                   help="score only the first N images (not the protocol)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    return p


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, score the model, print the protocol and the figures; return them."""
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    check_backend_for_device(args.backend, device, label="--backend")
    if args.images is not None:
        given = [f"--{k.replace('_', '-')}" for k in ("split", "dataset", "binarize", "data_dir") if getattr(args, k)]
        if given:
            raise CommandError(f"{', '.join(given)} select a data set; --images {args.images} scores that file "
                               f"instead: pass one or the other")
        images = read_image_file(args.images)  # before the model loads: a bad file is found at once
    loaded = load_model_source(args, device)
    model = loaded.model
    args.split = args.split or ("images" if args.images is not None else "test")
    data = _user_images(args, images, model) if args.images is not None else _data_set(args, loaded)
    if data.channels != model.channels or data.levels != model.levels:
        raise CommandError(f"{data.name} {args.split!r} has {data.channels} channel(s) and {data.levels} levels, the "
                           f"model {model.channels} and {model.levels}; pass the --dataset / --binarize it was "
                           f"trained on")
    model.to_backend(args.backend)
    result = evaluate_nll(model, data, batch_size=args.batch_size, device=device, progress=True)
    result.update(split=args.split, step=loaded.step, weights=args.weights, protocol=data.protocol,
                  model=model.config.get("name", type(model).__name__) if hasattr(model, "config") else None)
    print(f"data: {data.protocol}")
    print(f"model: {loaded.label}")
    print(f"{args.split} NLL: {result['nats_per_image']:.4f} nats/image, {result['bits_per_dim']:.5f} bits/dim "
          f"over {result['images']} images")
    if getattr(model, "conditional", False):
        print("conditional model: this NLL is -log p(x|y), each image given its own label (not the marginal -log p(x))")
    if args.json:
        print(json.dumps(result))
    return result


def _user_images(args: argparse.Namespace, images, model) -> ImageSet:
    """``--images FILE`` as an ImageSet, checked against the model as fit() checks training data."""
    if args.limit is not None and args.limit > len(images):
        raise CommandError(f"--limit {args.limit}: --images {args.images} holds {len(images)} images; ask for at "
                           f"most {len(images)}, or leave --limit out")
    try:
        data = as_image_set(np.array(images[: args.limit]), channels=model.channels, levels=model.levels, split="images")
    except (TypeError, ValueError) as err:
        raise CommandError(f"--images {args.images}: {err}") from None
    protocol = f"--images {args.images}: {len(data)} images of {tuple(data.images.shape[1:])}, {data.levels} levels"
    return ImageSet(f"--images {args.images}", "images", data.images, data.levels, protocol + "; NOT the paper's "
                    "protocol")


def _data_set(args: argparse.Namespace, loaded) -> ImageSet:
    """The data set the model records (or the one the flags name)."""
    recorded = loaded.data
    dataset = args.dataset or recorded.get("dataset")
    if dataset is None:
        raise CommandError(f"{loaded.label}: records no data set; pass --dataset (and --binarize, --data-dir), "
                           f"or --images FILE")
    if args.data_dir is not None and dataset in BUILT_IN:
        raise CommandError(f"--data-dir {args.data_dir}: the data set {dataset} is built into fastpixel and reads "
                           f"no folder; leave --data-dir out")
    binarize = args.binarize or (recorded.get("binarize", "none") if dataset == recorded.get("dataset") else "none")
    return load_dataset(
        dataset, args.split, data_dir=args.data_dir or recorded.get("data_dir"), binarize=binarize,
        binarize_seed=recorded.get("binarize_seed", 0), allow_pickle=args.allow_pickle,
        limit=args.limit,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-evaluate``): exit 0 on success, one-line errors otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
