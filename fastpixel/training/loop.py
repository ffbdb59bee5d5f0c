"""The one training loop, shared by ``fastpixel-train`` (:func:`fastpixel.training.train`) and
:func:`fastpixel.fit`.

Given a model, a training :class:`~fastpixel.data.ImageSet` (and optionally a test one) and the
settings (``fastpixel.presets.DEFAULTS`` keys plus ``run_dir``, ``resume``, ``overwrite``, ``quiet``,
``progress``), it runs Adam on the mean NLL per sub-pixel with the batches a pure function of
(seed, step), an optional EMA of the weights and a learning-rate schedule. With a run directory it
writes metrics, checkpoints, sample grids and a loss curve there and never loses work:

* before every save and evaluation it checks every weight (and optimizer moment) is finite, else it
  raises :class:`DivergedError` and the last good checkpoint stays as it was;
* SIGINT / SIGTERM make it finish the current step, save, and raise :class:`TrainingInterrupted`;
* stale temporary files of killed writers are removed on start; a directory that holds a run is
  never overwritten unless ``overwrite``; ``resume`` without a checkpoint is an error; resuming a
  finished run says so and writes nothing.
"""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from fastpixel import presets
from fastpixel.checkpoint import FILENAME, FORMAT, load_checkpoint, rng_state, set_rng_state
from fastpixel.data import training_batch
from fastpixel.data.datasets import ImageSet
from fastpixel.distributed import DistInfo, all_reduce_sum, barrier
from fastpixel.metrics import bits_per_dim
from fastpixel.ops.cross_entropy import pixel_cross_entropy
from fastpixel.training import run_dir as files
from fastpixel.training import watch
from fastpixel.training.errors import DivergedError, RunDirError, RunDirExistsError, TrainingInterrupted
from fastpixel.training.evaluation import evaluate_nll
from fastpixel.training.schedule import check_schedule, learning_rate

#: Settings a resumed run must share with its checkpoint (they shape the trajectory).
TRAJECTORY_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "dataset", "binarize", "binarize_seed",
                   "png_convert",
                   "train_limit", "batch_size", "lr", "clip_grad", "ema", "seed", "lr_schedule", "warmup_steps",
                   "lr_step_every", "lr_gamma", "kind", "factor", "small_hidden", "small_layers",
                   "condition_features")
POSITIVE = ("steps", "batch_size", "eval_batch_size", "log_every", "checkpoint_every", "keep")
NON_NEGATIVE = ("eval_every", "sample_grid", "warmup_steps")


def check_settings(config: dict[str, Any]) -> None:
    """Raise ValueError naming the first setting the loop cannot run with."""
    for key in POSITIVE + NON_NEGATIVE:
        value, low = config[key], 1 if key in POSITIVE else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key} must be an int >= {low}, got {value!r}")
    for key in ("lr", "clip_grad", "ema"):
        if not isinstance(config[key], (int, float)) or not math.isfinite(config[key]):
            raise ValueError(f"{key} must be a finite number, got {config[key]!r}")
    if config["lr"] <= 0:
        raise ValueError(f"lr must be > 0, got {config['lr']!r}")
    if config["clip_grad"] < 0:
        raise ValueError(f"clip_grad must be >= 0 (0: off), got {config['clip_grad']!r}")
    if not 0 <= config["ema"] < 1:
        raise ValueError(f"ema must be a decay in [0, 1) (0: off), got {config['ema']!r}")
    check_schedule(config["lr_schedule"], steps=config["steps"], warmup_steps=config["warmup_steps"],
                   step_every=config["lr_step_every"], gamma=config["lr_gamma"])


def check_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool) -> list[str]:
    """Refuse a request that would lose or misread a run; return the run files already there.

    resume without a checkpoint -> RunDirError; a new run where one exists, without overwrite ->
    RunDirExistsError.
    """
    run_dir = Path(run_dir)
    existing = files.holds_a_run(run_dir)
    if resume and not (run_dir / FILENAME).is_file():
        raise RunDirError(f"--resume: no checkpoint at {run_dir / FILENAME} (nothing to continue; check "
                          f"--run-dir, or leave out --resume to start a new run)")
    if not resume and existing and not overwrite:
        raise RunDirExistsError(f"{run_dir} already holds a run ({', '.join(existing)}): pass --resume to "
                                f"continue it, --overwrite to start again there, or choose another --run-dir")
    return existing


def first_non_finite(named: dict[str, Any]) -> str | None:
    """The name of the first floating tensor holding a NaN or an infinity in nested state dicts."""
    stack = list(named.items())
    while stack:
        name, value = stack.pop(0)
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return name
        elif isinstance(value, dict):
            stack.extend((f"{name}.{k}", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
    return None


@contextmanager
def _stop_on_signals(enabled: bool):
    """Within: SIGINT/SIGTERM are recorded (a second one interrupts at once); yields the record."""
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        print(f"\nfastpixel: {signal.Signals(signum).name}: saving after this step (again to stop at once)",
              file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train_loop(model: torch.nn.Module, train_set: ImageSet, test_set: ImageSet | None, config: dict[str, Any], *,
               info: DistInfo, on_step: Callable[[int], None] | None = None,
               record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` (already on ``info.device``) in place; see the module docstring.

    record: extra fields for ``config.json`` (data protocol lines, ...).
    on_step: called after every optimizer step with the step number (tests use it to kill a run).
    Returns {"step", "run_dir", "train": last train record, "test": last test record (model weights),
    "history": every record of this call (or, resuming a finished run, of the metrics file)}.
    """
    check_settings(config)
    if config["batch_size"] > len(train_set):
        raise ValueError(f"batch_size {config['batch_size']} exceeds the {len(train_set)} training images")
    run_dir = Path(config["run_dir"]) if config.get("run_dir") else None
    device = info.device
    ckpt_path = run_dir / FILENAME if run_dir else None
    metrics_path = run_dir / files.METRICS if run_dir else None
    say = (lambda text: print(f"fastpixel: {text}", file=sys.stderr)) if info.is_main else (lambda text: None)

    # -- the run directory: refuse to lose a run, clear what is stale -------------------------------
    if run_dir is not None:
        existing = check_run_dir(run_dir, resume=config["resume"], overwrite=config.get("overwrite", False))
        if info.is_main:
            for path in files.remove_stale_temporary_files(run_dir):
                say(f"removed {path.name}, a temporary file left by a writer that was killed")
            if not config["resume"] and existing:
                files.clear_run(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
        barrier(info)

    torch.manual_seed(config["seed"])
    np.random.seed(config["seed"] % 2**32)
    random.seed(config["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    ema = None
    if config["ema"]:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config["ema"]), use_buffers=True)
    running = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of train nats, images] since last log
    step = 0
    history: list[dict[str, Any]] = []
    last_good: str | None = None

    if run_dir is not None and config["resume"]:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        before = ckpt["train_config"]
        changed = {k: (before.get(k, presets.DEFAULTS.get(k)), config.get(k)) for k in TRAJECTORY_KEYS
                   if k in config and before.get(k, presets.DEFAULTS.get(k)) != config[k]}
        if config["lr_schedule"] == "cosine" and before.get("steps") != config["steps"]:
            changed["steps (the cosine schedule's length)"] = (before.get("steps"), config["steps"])
        if changed:
            raise RunDirError(f"{ckpt_path}: --resume with different settings {changed} (checkpoint, now)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        running.copy_(ckpt["running"])
        step = ckpt["step"]
        set_rng_state(ckpt["rng"])
        last_good = f"the last good checkpoint (step {step}) is kept at {ckpt_path}"
        kept = files.truncate_metrics(metrics_path, step) if info.is_main else files.read_metrics(metrics_path)
        if step >= config["steps"]:
            if step > config["steps"]:
                say(f"{ckpt_path} is at step {step}, beyond --steps {config['steps']}: nothing to train "
                    f"(raise --steps above {step} to continue)")
            else:
                say(f"{run_dir}: the run already finished at step {step} of {config['steps']}; nothing to do "
                    f"(raise --steps to train longer)")
            done = _last_records(kept, step)
            if done["test"] is not None or test_set is None:
                return {"step": step, "run_dir": str(run_dir), "history": kept, **done}
            # finished but its final test record was lost (torn line): score it once
        elif before.get("steps") != config["steps"] and info.is_main:
            say(f"resuming at step {step}: --steps {before.get('steps')} -> {config['steps']}")

    if run_dir is not None and info.is_main:
        model_config = getattr(model, "config", None)
        written = {**config, "model_config": model_config, "world_size": info.world, **(record or {}),
                   "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters())}
        (run_dir / files.CONFIG).write_text(json.dumps(written, indent=2, default=str) + "\n")

    writer = None
    if run_dir is not None and config.get("tensorboard") and info.is_main:
        writer = watch.open_tensorboard(run_dir / files.TENSORBOARD, purge_step=step + 1 if step else None)

    net = DistributedDataParallel(model) if info.world > 1 else model
    use_bf16 = bool(config["bf16"]) and device.type == "cuda"
    if config["bf16"] and not use_bf16:
        say("--bf16 applies on CUDA only; training in float32")
    dims = train_set.dims
    last: dict[str, Any] = {"train": None, "test": None}
    started = time.perf_counter()
    height, width = train_set.images.shape[2:]
    levels = getattr(model, "levels", None)

    def emit(record: dict[str, Any]) -> None:
        history.append(record)
        if info.is_main and metrics_path is not None:
            line = files.append_metrics(metrics_path, record)
            if not config.get("quiet"):
                tqdm.write(line, file=sys.stdout)
                sys.stdout.flush()
        if writer is not None:
            tag = "train" if record["split"] == "train" else f"{record['split']}_{record['weights']}"
            writer.add_scalar(f"bits_per_dim/{tag}", record["bits_per_dim"], record["step"])
            if "lr" in record:
                writer.add_scalar("lr", record["lr"], record["step"])

    def weights() -> list[tuple[str, torch.nn.Module]]:
        return [("model", model)] + ([("ema", ema.module)] if ema is not None else [])

    def check_finite(at: int, doing: str) -> None:
        states = {"model": model.state_dict(), "optimizer": optimizer.state_dict()["state"]}
        if ema is not None:
            states["ema"] = ema.state_dict()
        bad = first_non_finite(states)
        if bad is not None:
            kept = last_good or "no checkpoint had been written yet"
            raise DivergedError(f"step {at}: {bad} is not finite (the training diverged); refusing to {doing} "
                                f"a non-finite model, nothing was written; {kept}. Lower --lr, set --clip-grad, "
                                f"or add --warmup-steps")

    def evaluate(at: int) -> None:
        if test_set is None:
            return
        check_finite(at, "evaluate")
        for name, module in weights():
            result = evaluate_nll(module, test_set, batch_size=config["eval_batch_size"], device=device, info=info)
            record = {"step": at, "split": "test", "weights": name, **result}
            if name == "model":
                last["test"] = record
            emit(record)
        if run_dir is not None and info.is_main:
            if config["sample_grid"] and levels is not None:
                for name, module in weights():
                    images = watch.draw_samples(module, config["sample_grid"], height, width, seed=config["seed"])
                    picture = watch.write_sample_grid(run_dir / files.SAMPLES / f"step-{at:07d}-{name}.png",
                                                      images, levels)
                    if writer is not None:
                        writer.add_image(f"samples/{name}", picture, at, dataformats="HWC")
            watch.plot_loss_curve(files.read_metrics(metrics_path), run_dir / files.LOSS_PLOT)
        barrier(info)

    def save(at: int) -> None:
        nonlocal last_good
        if run_dir is None:
            return
        check_finite(at, "save")
        if info.is_main:
            train_config = {k: config[k] for k in presets.DEFAULTS if k in config}
            path = files.save_kept_checkpoint(run_dir, {
                "format": FORMAT, "step": at, "model_config": getattr(model, "config", None),
                "train_config": train_config | {"preset": config.get("preset")},
                "data": {"height": int(height), "width": int(width), "channels": int(train_set.channels),
                         "levels": levels},
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "running": running.cpu(),
                "rng": rng_state(), "world_size": info.world,
            }, at, config["keep"])
            last_good = f"the last good checkpoint (step {at}) is kept at {path}"
        barrier(info)

    show = config.get("progress", False) and info.is_main and sys.stderr.isatty()
    bar = tqdm(total=config["steps"], initial=step, desc="train", disable=not show, dynamic_ncols=True)
    schedule = dict(base=config["lr"], schedule=config["lr_schedule"], steps=config["steps"],
                    warmup_steps=config["warmup_steps"], step_every=config["lr_step_every"], gamma=config["lr_gamma"])
    try:
        with _stop_on_signals(run_dir is not None) as received:
            while step < config["steps"]:
                lr = learning_rate(step, **schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
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
                        kept = last_good or "no checkpoint had been written yet"
                        raise DivergedError(f"training NLL is {nats} at step {step} (the training diverged); "
                                            f"nothing was written; {kept}. Lower --lr, set --clip-grad, or add "
                                            f"--warmup-steps")
                    last["train"] = {"step": step, "split": "train", "nats_per_image": nats,
                                     "bits_per_dim": float(bits_per_dim(nats, dims)), "images": int(total[1]),
                                     "lr": lr, "seconds": round(time.perf_counter() - started, 3)}
                    running.zero_()
                    bar.set_postfix(bpd=f"{last['train']['bits_per_dim']:.4f}")
                    emit(last["train"])
                if step == config["steps"] or (config["eval_every"] and step % config["eval_every"] == 0):
                    evaluate(step)
                if step == config["steps"] or step % config["checkpoint_every"] == 0:
                    save(step)
                if on_step is not None:
                    on_step(step)
                stop = torch.tensor([float(bool(received))], device=device)
                if info.world > 1:
                    all_reduce_sum(stop, info)
                if stop.item() and step < config["steps"]:
                    if step % config["checkpoint_every"]:
                        save(step)
                    raise TrainingInterrupted(received[0] if received else signal.SIGTERM, step,
                                              str(ckpt_path) if ckpt_path else None)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if last["test"] is None and test_set is not None:  # resumed at the end: still report the held-out figure
        evaluate(step)
    return {"step": step, "run_dir": str(run_dir) if run_dir else None, "history": history, **last}


def _last_records(records: list[dict[str, Any]], step: int) -> dict[str, Any]:
    train = [r for r in records if r.get("split") == "train"]
    test = [r for r in records if r.get("split") == "test" and r.get("weights", "model") == "model"
            and r["step"] == step]
    return {"train": train[-1] if train else None, "test": test[-1] if test else None}
