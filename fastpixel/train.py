"""Train a model: ``python -m fastpixel.train --preset cpu_tiny --run-dir runs/tiny``.

A preset (fastpixel.presets) gives every setting; any flag overrides it. The run directory gets
``config.json``, ``metrics.jsonl`` (one JSON object per line: train and test NLL in nats/image
and bits/dim) and ``checkpoint.pt`` (atomic; ``--resume`` continues from it with the same step,
optimizer, EMA and RNG state, and the same data order, which is a function of (seed, step)).
Under ``torchrun --nproc-per-node N`` the same code runs DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from fastpixel import presets
from fastpixel.backend import BACKENDS, use_backend
from fastpixel.checkpoint import FILENAME, FORMAT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fastpixel.data import DATASETS, load_dataset, training_batch
from fastpixel.data.datasets import BINARIZE
from fastpixel.distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown
from fastpixel.evaluate import evaluate_nll
from fastpixel.metrics import bits_per_dim
from fastpixel.models import MODELS, create_model
from fastpixel.ops.cross_entropy import pixel_cross_entropy

#: Settings a resumed run must share with its checkpoint (they shape the trajectory).
TRAJECTORY_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "dataset", "binarize", "binarize_seed",
                   "train_limit", "batch_size", "lr", "clip_grad", "ema", "seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastpixel-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu_tiny", choices=sorted(presets.PRESETS), help="default: cpu_tiny")
    p.add_argument("--run-dir", default=None, help="where config, metrics and checkpoint go (default runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is also off when not a TTY)")
    p.add_argument("--quiet", action="store_true", help="do not echo metric lines to stdout")
    g = p.add_argument_group("settings (each overrides the preset)")
    g.add_argument("--model", choices=sorted(MODELS))
    g.add_argument("--hidden", type=int, help="h; the residual stream has 2h features")
    g.add_argument("--layers", type=int)
    g.add_argument("--output-hidden", type=int)
    g.add_argument("--skip", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--dataset", choices=DATASETS)
    g.add_argument("--data-dir")
    g.add_argument("--binarize", choices=BINARIZE, help="8-bit grey sets only: none, fixed or dynamic")
    g.add_argument("--binarize-seed", type=int)
    g.add_argument("--allow-pickle", action="store_const", const=True, default=None,
                   help="read CIFAR-10's python (pickle) version; unpickling runs code from the file")
    g.add_argument("--train-limit", type=int, help="train on the first N images only")
    g.add_argument("--test-limit", type=int, help="evaluate on the first N test images only (not the protocol)")
    g.add_argument("--batch-size", type=int, help="global batch (split over processes)")
    g.add_argument("--eval-batch-size", type=int)
    g.add_argument("--steps", type=int, help="total optimizer steps")
    g.add_argument("--lr", type=float, help="Adam learning rate")
    g.add_argument("--clip-grad", type=float, help="max global gradient norm (0: off)")
    g.add_argument("--ema", type=float, help="EMA decay of the Polyak-averaged weights (0: off)")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (CUDA only)")
    g.add_argument("--seed", type=int)
    g.add_argument("--log-every", type=int)
    g.add_argument("--eval-every", type=int, help="test NLL every N steps (0: only at the end)")
    g.add_argument("--checkpoint-every", type=int)
    return p


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {k: getattr(args, k) for k in presets.DEFAULTS}
    config = presets.resolve(args.preset, overrides)
    config.update(run_dir=args.run_dir or os.path.join("runs", args.preset), resume=args.resume,
                  backend=args.backend, device=args.device, progress=not args.no_progress, quiet=args.quiet)
    return config


def _write_metrics(path: Path, record: dict, quiet: bool) -> None:
    line = json.dumps(record)
    with open(path, "a") as f:
        f.write(line + "\n")
    if not quiet:
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records a killed run wrote after its last checkpoint (their work is redone)."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def train(config: dict[str, Any], *, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``config`` (see :func:`config_from_args`).

    on_step: called after every optimizer step with the step number (tests use it to kill a run).
    Returns {"step", "train": last train record, "test": last test record, "run_dir"}.
    """
    for key in ("steps", "batch_size", "eval_batch_size", "log_every", "checkpoint_every"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{key} must be an int >= 1, got {config[key]!r}")
    if config["eval_every"] < 0 or config["clip_grad"] < 0 or not 0 <= config["ema"] < 1:
        raise ValueError("eval_every and clip_grad must be >= 0, and ema a decay in [0, 1)")
    info = init_distributed(config["device"])
    try:
        with use_backend(config["backend"]):
            return _train(config, info, on_step)
    finally:
        shutdown(info)


def _train(config: dict[str, Any], info: DistInfo, on_step) -> dict[str, Any]:
    run_dir = Path(config["run_dir"])
    ckpt_path, metrics_path = run_dir / FILENAME, run_dir / "metrics.jsonl"
    device = info.device
    data_kw = dict(data_dir=config["data_dir"], binarize=config["binarize"], binarize_seed=config["binarize_seed"],
                   allow_pickle=config["allow_pickle"])
    train_set = load_dataset(config["dataset"], "train", limit=config["train_limit"], **data_kw)
    test_set = load_dataset(config["dataset"], "test", limit=config["test_limit"], **data_kw)

    torch.manual_seed(config["seed"])
    model = create_model(
        config["model"], channels=train_set.channels, levels=train_set.levels, hidden=config["hidden"],
        layers=config["layers"], output_hidden=config["output_hidden"], skip=config["skip"],
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    ema = None
    if config["ema"]:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config["ema"]), use_buffers=True)
    running = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of train nats, images] since last log
    step = 0

    if ckpt_path.is_file() and not config["resume"]:
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --run-dir")
    if ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        before = ckpt["train_config"]
        changed = {k: (before[k], config[k]) for k in TRAJECTORY_KEYS if before[k] != config[k]}
        if changed:
            raise ValueError(f"{ckpt_path}: --resume with different settings {changed} (checkpoint, now)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        running.copy_(ckpt["running"])
        step = ckpt["step"]
        set_rng_state(ckpt["rng"])
        if info.is_main:
            _truncate_metrics(metrics_path, step)
    elif info.is_main and metrics_path.exists():
        metrics_path.unlink()
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {**config, "model_config": model.config, "world_size": info.world,
                  "data": {"train": train_set.protocol, "test": test_set.protocol},
                  "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters())}
        (run_dir / "config.json").write_text(json.dumps(record, indent=2) + "\n")

    net = DistributedDataParallel(model) if info.world > 1 else model
    use_bf16 = bool(config["bf16"]) and device.type == "cuda"
    if config["bf16"] and not use_bf16 and info.is_main:
        print("fastpixel.train: --bf16 applies on CUDA only; training in float32", file=sys.stderr)
    dims = train_set.dims
    last = {"train": None, "test": None}
    started = time.perf_counter()

    def evaluate(at: int) -> None:
        for weights, module in (("model", model), ("ema", ema.module if ema is not None else None)):
            if module is None:
                continue
            result = evaluate_nll(module, test_set, batch_size=config["eval_batch_size"], device=device, info=info)
            record = {"step": at, "split": "test", "weights": weights, **result}
            if weights == "model":
                last["test"] = record
            if info.is_main:
                _write_metrics(metrics_path, record, config["quiet"])

    def save(at: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, {
                "format": FORMAT, "step": at, "model_config": model.config,
                "train_config": {k: config[k] for k in presets.DEFAULTS} | {"preset": config["preset"]},
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "running": running.cpu(),
                "rng": rng_state(), "world_size": info.world,
            })
        barrier(info)

    show = config["progress"] and info.is_main and sys.stderr.isatty()
    bar = tqdm(total=config["steps"], initial=step, desc="train", disable=not show, dynamic_ncols=True)
    while step < config["steps"]:
        x = training_batch(train_set, config["batch_size"], seed=config["seed"], step=step,
                           rank=info.rank, world=info.world).to(device=device, dtype=torch.long)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(x, validate=False)
        nll = pixel_cross_entropy(logits.float(), x, reduction="none", validate=False).sum(dim=(1, 2, 3))
        loss = nll.mean() / dims  # nats per sub-pixel: a scale that does not depend on the image size
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config["clip_grad"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip_grad"])
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        running[0] += nll.detach().double().sum()
        running[1] += x.shape[0]
        step += 1
        bar.update(1)

        if step % config["log_every"] == 0 or step == config["steps"]:
            total = all_reduce_sum(running.clone(), info)
            nats = float(total[0] / total[1])
            if not math.isfinite(nats):
                raise FloatingPointError(f"training NLL is {nats} at step {step}; lower --lr or set --clip-grad")
            last["train"] = {"step": step, "split": "train", "nats_per_image": nats,
                             "bits_per_dim": float(bits_per_dim(nats, dims)), "images": int(total[1]),
                             "seconds": round(time.perf_counter() - started, 3)}
            running.zero_()
            bar.set_postfix(bpd=f"{last['train']['bits_per_dim']:.4f}")
            if info.is_main:
                _write_metrics(metrics_path, last["train"], config["quiet"])
        if step == config["steps"] or (config["eval_every"] and step % config["eval_every"] == 0):
            evaluate(step)
        if step == config["steps"] or step % config["checkpoint_every"] == 0:
            save(step)
        if on_step is not None:
            on_step(step)
    bar.close()
    if last["test"] is None:  # resumed at the end: still report the held-out figure
        evaluate(step)
    return {"step": step, "run_dir": str(run_dir), **last}


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-train``): returns None so the exit status is 0."""
    train(config_from_args(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
