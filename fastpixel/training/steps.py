"""The steps of a training run, each on a :class:`~fastpixel.training.state.RunState`:

* :func:`one_step`: one Adam step on a batch (a pure function of (seed, step)), the EMA update;
* :func:`log_train`: the train record since the last one (all processes' sums);
* :func:`evaluate`: held-out NLL of every kept weights, sample grids, the loss curve;
* :func:`save`: a checkpoint (refused for a non-finite model: the last good one stays);
* :func:`write_config`: the run's ``config.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import torch
from tqdm import tqdm

from fastpixel.atomic import write_bytes_atomically
from fastpixel.checkpoint import FORMAT, rng_state
from fastpixel.data import batch_labels, training_batch
from fastpixel.directory_kind import RUN_FORMAT
from fastpixel.distributed import all_reduce_sum, barrier
from fastpixel.metrics import bits_per_dim
from fastpixel.training import run_dir as files
from fastpixel.training import watch
from fastpixel.training.errors import DivergedError
from fastpixel.training.evaluation import evaluate_nll
from fastpixel.training.guards import first_non_finite
from fastpixel.training.state import RunState

ADVICE = "Lower --lr, set --clip-grad, or add --warmup-steps"


def one_step(state: RunState, net: torch.nn.Module, lr: float, *, bf16: bool) -> None:
    """Train on batch ``state.step`` at learning rate ``lr``; the loss is the mean NLL per sub-pixel.

    net: the model, or its DistributedDataParallel wrapper. bf16: autocast the forward on CUDA.
    """
    config, model = state.config, state.model
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    where = dict(seed=config.seed, step=state.step, rank=state.info.rank, world=state.info.world)
    x = training_batch(state.train_set, config.batch_size, **where).to(device=state.device, dtype=torch.long)
    conditioning = {}
    if getattr(model, "conditional", False):  # a class-conditional model trains on the batch's own labels
        conditioning["labels"] = batch_labels(state.train_set, config.batch_size, **where).to(state.device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        logits = net(x, validate=False, **conditioning)  # (B, levels, C, H, W); a DMoL head's (B, P, H, W)
    nll = model.output_nll(logits.float(), x)  # (B,) nats: the model's head (softmax CE or DMoL) on model.backend
    loss = nll.mean() / state.train_set.dims  # nats per sub-pixel: a scale that does not depend on the image size
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
    state.optimizer.step()
    if state.ema is not None:
        state.ema.update_parameters(model)
    state.running[0] += nll.detach().double().sum()
    state.running[1] += x.shape[0]
    state.step += 1


def emit(state: RunState, record: dict[str, Any]) -> None:
    """Keep ``record``; append it to metrics.jsonl (echoed unless quiet) and TensorBoard."""
    state.history.append(record)
    if state.writes:
        line = files.append_metrics(state.metrics_path, record)
        if not state.config.quiet:
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()
    if state.writer is not None:
        tag = "train" if record["split"] == "train" else f"{record['split']}_{record['weights']}"
        state.writer.add_scalar(f"bits_per_dim/{tag}", record["bits_per_dim"], record["step"])
        if "lr" in record:
            state.writer.add_scalar("lr", record["lr"], record["step"])


def log_train(state: RunState, lr: float) -> dict[str, Any]:
    """Emit and return the train record of the steps since the last one; DivergedError if it is not finite."""
    total = all_reduce_sum(state.running.clone(), state.info)
    nats = float(total[0] / total[1])
    if not math.isfinite(nats):
        kept = state.last_good or "no checkpoint had been written yet"
        raise DivergedError(f"training NLL is {nats} at step {state.step} (the training diverged); nothing was "
                            f"written; {kept}. {ADVICE}")
    record = {"step": state.step, "split": "train", "nats_per_image": nats,
              "bits_per_dim": float(bits_per_dim(nats, state.train_set.dims)), "images": int(total[1]),
              "lr": lr, "seconds": round(time.perf_counter() - state.started, 3)}
    state.running.zero_()
    state.last["train"] = record
    emit(state, record)
    return record


def check_finite(state: RunState, doing: str) -> None:
    """DivergedError unless every weight, optimizer moment and EMA weight is finite."""
    states = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict()["state"]}
    if state.ema is not None:
        states["ema"] = state.ema.state_dict()
    bad = first_non_finite(states)
    if bad is not None:
        kept = state.last_good or "no checkpoint had been written yet"
        raise DivergedError(f"step {state.step}: {bad} is not finite (the training diverged); refusing to {doing} "
                            f"a non-finite model, nothing was written; {kept}. {ADVICE}")


def evaluate(state: RunState) -> None:
    """Test NLL of every kept weights (records), then sample grids and the loss curve (run dir only)."""
    if state.test_set is None:
        return
    check_finite(state, "evaluate")
    for name, module in state.weights():
        result = evaluate_nll(module, state.test_set, batch_size=state.config.eval_batch_size, device=state.device,
                              info=state.info)
        record = {"step": state.step, "split": "test", "weights": name, **result}
        if name == "model":
            state.last["test"] = record
        emit(state, record)
    if state.writes:
        _draw_samples(state)
        watch.plot_loss_curve(files.read_metrics(state.metrics_path), state.run_dir / files.LOSS_PLOT)
    barrier(state.info)


def _draw_samples(state: RunState) -> None:
    """A grid of ``sample_grid`` samples per kept weights, under samples/ (and TensorBoard)."""
    levels = getattr(state.model, "levels", None)
    if not state.config.sample_grid or levels is None:
        return
    height, width = state.train_set.images.shape[2:]
    for name, module in state.weights():
        images = watch.draw_samples(module, state.config.sample_grid, height, width, seed=state.config.seed)
        path = state.run_dir / files.SAMPLES / f"step-{state.step:07d}-{name}.png"
        picture = watch.write_sample_grid(path, images, levels)
        if state.writer is not None:
            state.writer.add_image(f"samples/{name}", picture, state.step, dataformats="HWC")


def save(state: RunState) -> None:
    """Write the checkpoint of step ``state.step`` (keeping the last ``keep``); refuse a non-finite one."""
    if state.run_dir is None:
        return
    check_finite(state, "save")
    if state.info.is_main:
        path = files.save_kept_checkpoint(state.run_dir, checkpoint_state(state), state.step, state.config.keep)
        state.last_good = f"the last good checkpoint (step {state.step}) is kept at {path}"
    barrier(state.info)


def checkpoint_state(state: RunState) -> dict[str, Any]:
    """The checkpoint dict (fastpixel.checkpoint.FORMAT) of the run as it is now."""
    height, width = state.train_set.images.shape[2:]
    return {
        "format": FORMAT, "step": state.step, "model_config": getattr(state.model, "config", None),
        "train_config": state.config.settings(),
        "data": {"height": int(height), "width": int(width), "channels": int(state.train_set.channels),
                 "levels": getattr(state.model, "levels", None)},
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "ema": state.ema.state_dict() if state.ema is not None else None, "running": state.running.cpu(),
        "rng": rng_state(), "world_size": state.info.world,
    }


def write_config(state: RunState, record: dict[str, Any] | None) -> None:
    """``config.json``: its format (``"fastpixel-run"``: what tells a run from a saved model), every field of the config (the run directory as an absolute
    path), the model config, the data protocol (``record``), versions; written atomically."""
    if not state.writes:
        return
    model = state.model
    settings = state.config.to_dict() | {"run_dir": os.path.abspath(state.run_dir)}
    written = {"format": RUN_FORMAT, **settings, "model_config": getattr(model, "config", None),
               "world_size": state.info.world,
               **(record or {}), "torch": torch.__version__, "parameters": sum(p.numel() for p in model.parameters())}
    if getattr(model, "conditional", False) and state.train_set.labels is not None:
        # the data set's own class ids (never positions in a list of names): what --label means for this model
        written["classes"] = sorted(int(c) for c in state.train_set.labels.unique())
    text = json.dumps(written, indent=2, default=str) + "\n"
    write_bytes_atomically(state.run_dir / files.CONFIG, text.encode())
