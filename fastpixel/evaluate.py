"""Held-out likelihood: ``python -m fastpixel.evaluate --checkpoint RUN/checkpoint.pt``.

Prints the data protocol, then the NLL of the whole split in nats/image and bits/dim. The
network runs in float32; per-image NLLs are summed over the split in float64.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from tqdm import tqdm

from fastpixel.backend import BACKENDS, use_backend
from fastpixel.checkpoint import load_checkpoint
from fastpixel.data import load_dataset
from fastpixel.data.datasets import ImageSet
from fastpixel.distributed import DistInfo, all_reduce_sum
from fastpixel.metrics import bits_per_dim
from fastpixel.models import create_model


@torch.no_grad()
def evaluate_nll(
    model: torch.nn.Module, data: ImageSet, *, batch_size: int = 256, device: str | torch.device = "cpu",
    info: DistInfo | None = None, progress: bool = False,
) -> dict:
    """NLL of every image of ``data`` -> {"nats_per_image", "bits_per_dim", "images"}.

    Under data parallelism (``info.world > 1``) rank r scores images r, r + w, ... and the sums
    are all-reduced, so every rank returns the whole split's figure.
    """
    was_training = model.training
    model.eval()
    rank, world = (info.rank, info.world) if info is not None else (0, 1)
    index = torch.arange(rank, len(data), world)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of nats, images]
    batches = range(0, len(index), batch_size)
    for start in tqdm(batches, desc=f"eval {data.split}", disable=not (progress and rank == 0 and sys.stderr.isatty())):
        x = data.images[index[start:start + batch_size]].to(device=device, dtype=torch.long)
        nll = model.nll(x, validate=False)  # (B,) float32
        total[0] += nll.double().sum()
        total[1] += x.shape[0]
    if info is not None:
        all_reduce_sum(total, info)
    model.train(was_training)
    nats = float(total[0] / total[1])
    return {"nats_per_image": nats, "bits_per_dim": float(bits_per_dim(nats, data.dims)), "images": int(total[1])}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastpixel-evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by fastpixel.train")
    p.add_argument("--split", default="test", help="split to score (default test; binarized_mnist also has valid)")
    p.add_argument("--data-dir", default=None, help="override the data folder recorded in the checkpoint")
    p.add_argument("--weights", choices=("model", "ema"), default="model", help="score the raw or the EMA weights")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="score only the first N images (not the protocol)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    return p


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, score the checkpoint, print the protocol and the figures; return them."""
    args = build_parser().parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt["train_config"]
    model = create_model(**ckpt["model_config"]).to(device)
    if args.weights == "ema":
        if ckpt.get("ema") is None:
            raise SystemExit(f"{args.checkpoint}: no EMA weights (the run was trained without --ema)")
        ema = {k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
        model.load_state_dict(ema)
    else:
        model.load_state_dict(ckpt["model"])
    data = load_dataset(
        cfg["dataset"], args.split, data_dir=args.data_dir or cfg["data_dir"], binarize=cfg["binarize"],
        binarize_seed=cfg["binarize_seed"], allow_pickle=cfg["allow_pickle"], limit=args.limit,
    )
    with use_backend(args.backend):
        result = evaluate_nll(model, data, batch_size=args.batch_size, device=device, progress=True)
    result.update(split=args.split, step=ckpt["step"], weights=args.weights, protocol=data.protocol,
                  model=ckpt["model_config"]["name"])
    print(f"data: {data.protocol}")
    print(f"model: {ckpt['model_config']} at step {ckpt['step']} ({args.weights} weights)")
    print(f"{args.split} NLL: {result['nats_per_image']:.4f} nats/image, {result['bits_per_dim']:.5f} bits/dim "
          f"over {result['images']} images")
    if args.json:
        print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-evaluate``): returns None so the exit status is 0."""
    run(argv)


if __name__ == "__main__":
    main()
