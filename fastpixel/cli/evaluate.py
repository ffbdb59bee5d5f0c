"""Held-out likelihood: ``fastpixel-evaluate --checkpoint RUN/checkpoint.pt`` (or ``--pretrained NAME``).

Prints the data protocol, then the NLL of the whole split in nats/image and bits/dim. The
network runs in float32; per-image NLLs are summed over the split in float64.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fastpixel.backend import BACKENDS
from fastpixel.cli.args import CommandError, Parser, int_at_least, resolve_device, run_command
from fastpixel.cli.model_source import add_model_source, load_model_source
from fastpixel.data import DATASETS, load_dataset
from fastpixel.data.datasets import BINARIZE
from fastpixel.training.evaluation import evaluate_nll

PROG = "fastpixel-evaluate"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source(p)
    p.add_argument("--split", default="test", help="split to score (default test; binarized_mnist also has valid)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="override the data set the model records")
    p.add_argument("--binarize", choices=BINARIZE, default=None, help="override the recorded binarization")
    p.add_argument("--data-dir", default=None, help="override the data folder recorded in the checkpoint")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read CIFAR-10's python (pickle) version; unpickling runs code from the file")
    p.add_argument("--batch-size", type=int_at_least(1), default=256)
    p.add_argument("--limit", type=int_at_least(1), default=None, help="score only the first N images (not the protocol)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    return p


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, score the model, print the protocol and the figures; return them."""
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    loaded = load_model_source(args, device)
    recorded = loaded.data
    dataset = args.dataset or recorded.get("dataset")
    if dataset is None:
        raise CommandError(f"{loaded.label}: records no data set; pass --dataset (and --binarize, --data-dir)")
    binarize = args.binarize or (recorded.get("binarize", "none") if dataset == recorded.get("dataset") else "none")
    data = load_dataset(
        dataset, args.split, data_dir=args.data_dir or recorded.get("data_dir"), binarize=binarize,
        binarize_seed=recorded.get("binarize_seed", 0), allow_pickle=args.allow_pickle,
        limit=args.limit,
    )
    model = loaded.model
    if data.channels != model.channels or data.levels != model.levels:
        raise CommandError(f"{dataset} {args.split!r} has {data.channels} channel(s) and {data.levels} levels, the "
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
    if args.json:
        print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-evaluate``): exit 0 on success, one-line errors otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
