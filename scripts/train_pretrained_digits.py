"""Train the built-in pretrained model ``fastpixel.from_pretrained("digits")`` and write it.

    python scripts/train_pretrained_digits.py                      # the shipped model (32 min on 1 shared core, backend "torch")
    python scripts/train_pretrained_digits.py --pilot-seconds 150 --model pixelcnn --hidden 32 --layers 8

Data: the built-in digits (``load_dataset("builtin_mnist", ...)``), 9,000 training images
binarized afresh for every batch (dynamic binarization, an augmentation against over-fitting on
so few images), scored on the 1,000 test digits under the *fixed* binarization (seed 0), the same
0/1 images every time. Optimiser: Adam, linear warm-up then cosine decay of the learning rate to
zero, gradient-norm clipping, an exponential moving average (EMA) of the weights; the EMA weights
are the ones shipped (chosen before the run, not by their test score). One torch thread and a
fixed seed: the run is a pure function of its arguments on a given torch build.

A checkpoint (``<work>/checkpoint.pt``, fastpixel.checkpoint's format) is written every
``--checkpoint-every`` steps; rerunning the same command continues from it. At the end the script
evaluates both weight sets on the full test split, prints nats/image and bits/dim, and writes
``<out>/config.json`` + ``<out>/model.safetensors`` with :func:`fastpixel.save_pretrained` (the
figures go into config.json's ``info``). ``--pilot-seconds S`` instead trains for S seconds and
prints the steps per second and the NLL of the first ``--eval-limit`` test digits (architecture
comparisons; writes nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _pretrained_digits import DIMS, build_parser, train, trained_with, write_tiles  # noqa: E402
from fastpixel import create_model  # noqa: E402
from fastpixel.data import load_dataset, training_batch  # noqa: E402
from fastpixel.models.build import from_pretrained, save_pretrained  # noqa: E402
from fastpixel.ops.cross_entropy import pixel_cross_entropy  # noqa: E402
from fastpixel.sampling import sample  # noqa: E402


def write_grid(model: torch.nn.Module, path: str | Path, *, num: int = 64, columns: int = 8, seed: int = 0,
               scale: int = 2) -> torch.Tensor:
    """Sample ``num`` digits (generator seeded with ``seed``) and write them as a PNG grid."""
    images = sample(model, num, height=28, width=28, generator=torch.Generator().manual_seed(seed))
    write_tiles(images, path, columns=columns, scale=scale)
    return images


@torch.no_grad()
def test_nll(model: torch.nn.Module, images: torch.Tensor, batch: int = 250) -> float:
    """Mean NLL (nats/image) of uint8 images (N, 1, 28, 28), summed in float64."""
    was = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(images), batch):
        total += float(model.nll(images[start:start + batch].long(), validate=False).double().sum())
    model.train(was)
    return total / len(images)


def main(argv: list[str] | None = None) -> None:
    args = build_parser(__doc__, name="digits", steps=5000, grid="digits_samples.png").parse_args(argv)
    torch.set_num_threads(1)
    train_set = load_dataset("builtin_mnist", "train", binarize="dynamic")
    test_set = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    if args.only_outputs:
        write_outputs(args, test_set)
        return
    subset = test_set.images[: args.eval_limit]

    def build() -> torch.nn.Module:
        return create_model(args.model, channels=1, levels=2, hidden=args.hidden, layers=args.layers,
                            output_hidden=args.output_hidden, skip=args.skip)

    def batch_nll(model: torch.nn.Module, step: int) -> torch.Tensor:
        x = training_batch(train_set, args.batch_size, seed=args.seed, step=step).long()
        return pixel_cross_entropy(model(x, validate=False), x, reduction="none", validate=False).sum(dim=(1, 2, 3))

    def subset_nll(model: torch.nn.Module, ema: torch.nn.Module) -> dict:
        return {f"test{args.eval_limit}_nats_model": round(test_nll(model, subset), 3),
                f"test{args.eval_limit}_nats_ema": round(test_nll(ema, subset), 3)}

    trained = train(args, train_set, build, batch_nll, subset_nll, subset_nll)
    if trained is None:  # a pilot
        return
    model, ema, step, settings, elapsed = trained
    figures = {}
    for weights, module in (("model", model), ("ema", ema.module)):
        nats = test_nll(module, test_set.images)
        figures[weights] = {"nats_per_image": nats, "bits_per_dim": nats / (DIMS * math.log(2))}
        print(json.dumps({"weights": weights, "test_images": len(test_set), **figures[weights]}), flush=True)
    info = {
        "dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0, "height": 28, "width": 28,
        "trained_with": trained_with("train_pretrained_digits.py", settings, *(["--skip"] if args.skip else [])),
        "train_binarization": "dynamic", "weights": "ema", "steps": step, "seconds": round(elapsed, 1),
        "torch": torch.__version__,
        "test_images": len(test_set), "test_nats_per_image": figures["ema"]["nats_per_image"],
        "test_bits_per_dim": figures["ema"]["bits_per_dim"], "test_protocol": test_set.protocol,
        "check_images": args.check_images,
        "check_nats_per_image": test_nll(ema.module, test_set.images[: args.check_images], batch=args.check_images),
    }
    path = save_pretrained(ema.module, args.out, info=info)
    print(f"wrote {path} (EMA weights): test NLL {figures['ema']['nats_per_image']:.4f} nats/image, "
          f"{figures['ema']['bits_per_dim']:.5f} bits/dim", flush=True)
    write_outputs(args, test_set)


def write_outputs(args: argparse.Namespace, test_set) -> None:
    """Reload the saved model from disk, check its recorded figures, and write the README grid."""
    model = from_pretrained(args.out)
    info = model.pretrained_info
    nats = test_nll(model, test_set.images)
    check = test_nll(model, test_set.images[: info["check_images"]], batch=info["check_images"])
    print(json.dumps({"reloaded": args.out, "test_nats_per_image": nats, "bits_per_dim": nats / (DIMS * math.log(2)),
                      "recorded": info["test_nats_per_image"], "check_nats_per_image": check,
                      "check_recorded": info["check_nats_per_image"]}), flush=True)
    write_grid(model, args.grid)
    print(f"wrote {args.grid}", flush=True)


if __name__ == "__main__":
    main()
