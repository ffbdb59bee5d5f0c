"""What the two pretrained-digits training scripts share: their arguments, the schedule, the loop.

``scripts/train_pretrained_digits.py`` (the unconditional "digits") and
``scripts/train_pretrained_digits_conditional.py`` ("digits-conditional") run the same protocol:
Adam, linear warm-up then cosine decay, gradient-norm clipping, an EMA of the weights, one torch
thread, a fixed seed, a checkpoint every ``--checkpoint-every`` steps that the same command
continues from, and ``--pilot-seconds``. Each script gives what differs: its defaults, how its
model is built, a batch's NLL, and its figures. Imported by the scripts (their folder is on
``sys.path`` when they run); not part of the package.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fastpixel.checkpoint import FORMAT, read_checkpoint, rng_state, save_checkpoint, set_rng_state

ROOT = Path(__file__).resolve().parents[1]
DIMS = 28 * 28
#: The arguments that decide the trained weights (a resumed run must match them).
TRAINING_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "batch_size", "steps", "lr", "warmup",
                 "clip_grad", "ema", "seed")


def build_parser(doc: str, *, name: str, steps: int, grid: str, backend: str | None = None,
                 evaluates: str = "test NLL") -> argparse.ArgumentParser:
    """The scripts' arguments. name: the shipped model's folder (``fastpixel/pretrained/<name>``, work
    folder ``runs/pretrained_<name>``); steps: the default; grid: the README grid's file name;
    backend: add ``--backend`` with this default; evaluates: what ``--eval-every`` prints."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "fastpixel" / "pretrained" / name))
    p.add_argument("--work", default=str(ROOT / "runs" / f"pretrained_{name.replace('-', '_')}"),
                   help="checkpoint + log folder")
    p.add_argument("--model", default="diagonal_bilstm")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--layers", type=int, default=7)
    p.add_argument("--output-hidden", type=int, default=32)
    p.add_argument("--skip", action="store_true")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clip-grad", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    if backend is not None:
        p.add_argument("--backend", default=backend)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=1000, help=f"{evaluates} of --eval-limit digits (0: off)")
    p.add_argument("--eval-limit", type=int, default=200)
    p.add_argument("--pilot-seconds", type=float, default=None)
    p.add_argument("--check-images", type=int, default=100,
                   help="test digits whose NLL is recorded for tests/test_pretrained.py to reproduce")
    p.add_argument("--grid", default=str(ROOT / "docs" / "assets" / grid), help="PNG grid of samples (seed 0) for the README")
    p.add_argument("--only-outputs", action="store_true",
                   help="skip training: load --out and rewrite the grid (and print the figures) only")
    return p


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def trained_with(script: str, settings: dict, *extra: str) -> str:
    """The command line recorded in config.json's ``info``: the settings as flags, then ``extra``."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items() if not isinstance(v, bool))
    return " ".join((f"scripts/{script} {flags}", *extra))


def train(args: argparse.Namespace, train_set, build: Callable[[], torch.nn.Module],
          batch_nll: Callable[[torch.nn.Module, int], torch.Tensor],
          eval_line: Callable[[torch.nn.Module, torch.nn.Module], dict],
          pilot_figures: Callable[[torch.nn.Module, torch.nn.Module], dict], *, note: str = ""):
    """Seed, ``build()`` the model, train it on ``train_set`` (resuming from ``<work>/checkpoint.pt``).

    note: printed after the architecture; batch_nll(model, step): the NLL (nats) of each image
    of step ``step``'s batch; eval_line(model, ema) / pilot_figures(model, ema): the figures of the
    ``--eval-every`` lines and of the pilot's result. Returns (model, ema, steps, settings, seconds),
    or None after a pilot (which prints its result and writes nothing).
    """
    torch.manual_seed(args.seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True)
    settings = {k: getattr(args, k) for k in TRAINING_KEYS}
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model} h={args.hidden} layers={args.layers}{note}: {params} parameters; {train_set.protocol}",
          flush=True)
    ckpt_path = Path(args.work) / "checkpoint.pt"
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
    while step < args.steps:
        if args.pilot_seconds is not None and time.perf_counter() - started > args.pilot_seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        nll = batch_nll(model, step)
        loss = nll.mean() / DIMS
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        ema.update_parameters(model)
        if not math.isfinite(float(loss.detach())):
            raise SystemExit(f"non-finite training loss at step {step}; nothing saved")
        running += float(nll.detach().double().sum())
        seen += nll.shape[0]
        step += 1
        elapsed = time.perf_counter() - started
        if step % args.log_every == 0:
            print(json.dumps({"step": step, "train_nats": round(running / seen, 3),
                              "lr": round(learning_rate(step - 1, args), 6), "seconds": round(elapsed, 1)}), flush=True)
            running, seen = 0.0, 0
        if args.eval_every and step % args.eval_every == 0 and args.pilot_seconds is None:
            print(json.dumps({"step": step, **eval_line(model, ema.module)}), flush=True)
        if args.pilot_seconds is None and (step % args.checkpoint_every == 0 or step == args.steps):
            save(step)

    elapsed = time.perf_counter() - started
    if args.pilot_seconds is not None:
        result = {"model": args.model, "hidden": args.hidden, "layers": args.layers, "parameters": params,
                  "steps": step, "seconds": round(elapsed, 1), "steps_per_second": round(step / elapsed, 3),
                  **pilot_figures(model, ema.module)}
        print("PILOT " + json.dumps(result), flush=True)
        return None
    return model, ema, step, settings, elapsed


def write_tiles(images: torch.Tensor, path: str | Path, *, columns: int, scale: int = 2) -> None:
    """Binary 28x28 images (N, 1, 28, 28), ink black on white, ``columns`` a row with grey gaps, as a PNG."""
    import numpy as np
    from PIL import Image

    num = len(images)
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
