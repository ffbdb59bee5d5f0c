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
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastpixel import create_model  # noqa: E402
from fastpixel.checkpoint import FORMAT, read_checkpoint, rng_state, save_checkpoint, set_rng_state  # noqa: E402
from fastpixel.data import load_dataset, training_batch  # noqa: E402
from fastpixel.ops.cross_entropy import pixel_cross_entropy  # noqa: E402
from fastpixel.models.build import from_pretrained, save_pretrained  # noqa: E402
from fastpixel.sampling import sample  # noqa: E402

DIMS = 28 * 28
#: The arguments that decide the trained weights (a resumed run must match them).
TRAINING_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "batch_size", "steps", "lr", "warmup",
                 "clip_grad", "ema", "seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "fastpixel" / "pretrained" / "digits"))
    p.add_argument("--work", default=str(ROOT / "runs" / "pretrained_digits"), help="checkpoint + log folder")
    p.add_argument("--model", default="diagonal_bilstm")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--layers", type=int, default=7)
    p.add_argument("--output-hidden", type=int, default=32)
    p.add_argument("--skip", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clip-grad", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000, help="test NLL of --eval-limit digits (0: off)")
    p.add_argument("--eval-limit", type=int, default=200)
    p.add_argument("--pilot-seconds", type=float, default=None)
    p.add_argument("--check-images", type=int, default=100,
                   help="test digits whose NLL is recorded for tests/test_pretrained.py to reproduce")
    p.add_argument("--grid", default=str(ROOT / "docs" / "assets" / "digits_samples.png"),
                   help="PNG grid of 64 samples (seed 0) for the README")
    p.add_argument("--only-outputs", action="store_true",
                   help="skip training: load --out and rewrite the grid (and print the NLL) only")
    return p


def write_grid(model: torch.nn.Module, path: str | Path, *, num: int = 64, columns: int = 8, seed: int = 0,
               scale: int = 2) -> torch.Tensor:
    """Sample ``num`` digits (generator seeded with ``seed``) and write them as a PNG grid."""
    import numpy as np
    from PIL import Image

    images = sample(model, num, height=28, width=28, generator=torch.Generator().manual_seed(seed))
    tiles = (1 - images[:, 0].numpy()).astype(np.uint8) * 255  # ink black on white
    rows = -(-num // columns)
    pad = 2
    out = np.full((rows * (28 + pad) + pad, columns * (28 + pad) + pad), 200, dtype=np.uint8)  # grey gaps
    for k in range(num):
        r, c = divmod(k, columns)
        out[pad + r * 30: pad + r * 30 + 28, pad + c * 30: pad + c * 30 + 28] = tiles[k]
    out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(path, optimize=True)
    return images


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


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
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    train_set = load_dataset("builtin_mnist", "train", binarize="dynamic")
    test_set = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    torch.manual_seed(args.seed)
    model = create_model(args.model, channels=1, levels=2, hidden=args.hidden, layers=args.layers,
                         output_hidden=args.output_hidden, skip=args.skip)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    settings = {k: getattr(args, k) for k in TRAINING_KEYS}
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model} h={args.hidden} layers={args.layers}: {params} parameters; {train_set.protocol}",
          flush=True)

    if args.only_outputs:
        write_outputs(args, test_set)
        return
    work = Path(args.work)
    ckpt_path = work / "checkpoint.pt"
    step = 0
    if args.pilot_seconds is None and ckpt_path.is_file():
        ckpt = read_checkpoint(ckpt_path)
        if ckpt["train_config"] != settings:
            raise SystemExit(f"{ckpt_path} was written with other settings {ckpt['train_config']}; "
                             "move it away or pass the same arguments")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        set_rng_state(ckpt["rng"])
        step = ckpt["step"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)

    def save(at: int) -> None:
        save_checkpoint(ckpt_path, {"format": FORMAT, "step": at, "model_config": model.config,
                                    "train_config": settings, "model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(), "ema": ema.state_dict(),
                                    "running": torch.zeros(2, dtype=torch.float64), "rng": rng_state()})

    started = time.perf_counter()
    running, seen = 0.0, 0
    subset = test_set.images[: args.eval_limit]
    while step < args.steps:
        if args.pilot_seconds is not None and time.perf_counter() - started > args.pilot_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        x = training_batch(train_set, args.batch_size, seed=args.seed, step=step).long()
        nll = pixel_cross_entropy(model(x, validate=False), x, reduction="none", validate=False).sum(dim=(1, 2, 3))
        loss = nll.mean() / DIMS
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        ema.update_parameters(model)
        if not math.isfinite(float(loss.detach())):
            raise SystemExit(f"non-finite training loss at step {step}; nothing saved")
        running += float(nll.detach().double().sum())
        seen += x.shape[0]
        step += 1
        elapsed = time.perf_counter() - started
        if step % args.log_every == 0:
            print(json.dumps({"step": step, "train_nats": round(running / seen, 3), "lr": round(learning_rate(step - 1, args), 6),
                              "seconds": round(elapsed, 1)}), flush=True)
            running, seen = 0.0, 0
        if args.eval_every and step % args.eval_every == 0 and args.pilot_seconds is None:
            print(json.dumps({"step": step, f"test{args.eval_limit}_nats_model": round(test_nll(model, subset), 3),
                              f"test{args.eval_limit}_nats_ema": round(test_nll(ema.module, subset), 3)}), flush=True)
        if args.pilot_seconds is None and (step % args.checkpoint_every == 0 or step == args.steps):
            save(step)

    elapsed = time.perf_counter() - started
    if args.pilot_seconds is not None:
        result = {"model": args.model, "hidden": args.hidden, "layers": args.layers, "parameters": params,
                  "steps": step, "seconds": round(elapsed, 1), "steps_per_second": round(step / elapsed, 3),
                  f"test{args.eval_limit}_nats_model": round(test_nll(model, subset), 3),
                  f"test{args.eval_limit}_nats_ema": round(test_nll(ema.module, subset), 3)}
        print("PILOT " + json.dumps(result), flush=True)
        return

    figures = {}
    for weights, module in (("model", model), ("ema", ema.module)):
        nats = test_nll(module, test_set.images)
        figures[weights] = {"nats_per_image": nats, "bits_per_dim": nats / (DIMS * math.log(2))}
        print(json.dumps({"weights": weights, "test_images": len(test_set), **figures[weights]}), flush=True)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if not isinstance(v, bool))
    info = {
        "dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0, "height": 28, "width": 28,
        "trained_with": f"scripts/train_pretrained_digits.py {flags}" + (" --skip" if args.skip else ""),
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
