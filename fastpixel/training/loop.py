"""The one training loop, shared by ``fastpixel-train`` (:func:`fastpixel.training.train`) and
:func:`fastpixel.fit`.

Given a model, a training :class:`~fastpixel.data.ImageSet` (and optionally a test one) and a
:class:`~fastpixel.training.config.TrainConfig`, it runs Adam on the mean NLL per sub-pixel with the
batches a pure function of (seed, step), an optional EMA of the weights and a learning-rate
schedule. The steps (:mod:`~fastpixel.training.resume`, :mod:`~fastpixel.training.steps`):

    prepare the run directory -> start (seed, optimizer, EMA) -> resume -> write config.json
    -> repeat: one_step, log_train every log_every, evaluate every eval_every, save every
       checkpoint_every (and at the end) -> a final evaluation if the end's was lost

With a run directory it writes metrics, checkpoints, sample grids and a loss curve there and never
loses work:

* before every save and evaluation it checks every weight (and optimizer moment) is finite, else it
  raises :class:`DivergedError` and the last good checkpoint stays as it was;
* SIGINT / SIGTERM make it finish the current step, save, and raise :class:`TrainingInterrupted`;
* stale temporary files of killed writers are removed on start; a directory that holds a run is
  never overwritten unless ``overwrite``; ``resume`` without a checkpoint is an error; resuming a
  finished run says so and writes nothing.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fastpixel.atomic import NO_SPACE, disk_full
from fastpixel.data.datasets import ImageSet
from fastpixel.distributed import DistInfo, all_reduce_sum, barrier
from fastpixel.training import watch
from fastpixel.training.config import TrainConfig
from fastpixel.training.errors import TrainingInterrupted
from fastpixel.training.guards import stop_on_signals
from fastpixel.training.resume import TRAJECTORY_KEYS, last_records, resume
from fastpixel.training.run_dir import TENSORBOARD, prepare_run_dir
from fastpixel.training.schedule import learning_rate
from fastpixel.training.state import RunState, say, start
from fastpixel.training.steps import evaluate, log_train, one_step, save, write_config

__all__ = ["TRAJECTORY_KEYS", "train_loop"]


def train_loop(model: torch.nn.Module, train_set: ImageSet, test_set: ImageSet | None,
               config: TrainConfig | Mapping[str, Any], *, info: DistInfo,
               on_step: Callable[[int], None] | None = None, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` (already on ``info.device``) in place; see the module docstring.

    config: a TrainConfig (a mapping of its fields is accepted and checked the same way).
    record: extra fields for ``config.json`` (data protocol lines, ...).
    on_step: called after every optimizer step with the step number (tests use it to kill a run).
    Returns {"step", "run_dir", "train": last train record, "test": last test record (model weights),
    "history": every record of this call (or, resuming a finished run, of the metrics file)}.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    check_bf16(config.bf16, info.device)
    if config.batch_size > len(train_set):
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(train_set)} training images")
    run_dir = Path(config.run_dir) if config.run_dir else None
    if run_dir is not None:
        prepare_run_dir(run_dir, resume=config.resume, overwrite=config.overwrite, writes=info.is_main,
                        say=lambda text: say(info, text))
        barrier(info)
    state = start(model, train_set, test_set, config, info)
    if run_dir is not None and config.resume:
        kept = resume(state)
        done = last_records(kept, state.step)
        if state.step >= config.steps and (done["test"] is not None or test_set is None):
            return {"step": state.step, "run_dir": str(run_dir), "history": kept, **done}
        # else: unfinished, or finished but its final test record was lost (a torn line): go on
    with disk_full_keeps(state):
        write_config(state, record)
        if run_dir is not None and config.tensorboard and info.is_main:
            state.writer = watch.open_tensorboard(run_dir / TENSORBOARD,
                                                  purge_step=state.step + 1 if state.step else None)
        try:
            run_steps(state, on_step)
        finally:
            if state.writer is not None:
                state.writer.close()
        if state.last["test"] is None and test_set is not None:  # resumed at the end: still report the held-out figure
            evaluate(state)
    return {"step": state.step, "run_dir": str(run_dir) if run_dir else None, "history": state.history, **state.last}


@contextmanager
def disk_full_keeps(state: RunState) -> Iterator[None]:
    """A full disk (ENOSPC) anywhere in the run becomes one DiskFullError naming the file and the last
    good checkpoint (which a failed write never touches)."""
    try:
        yield
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        kept = state.last_good or "no checkpoint had been written yet"
        raise disk_full(err, Path(err.filename or state.run_dir or "."), kept=kept) from None


def check_bf16(bf16: bool, device: torch.device) -> None:
    """ValueError when bf16 autocast is asked for where it cannot apply (it is never silently dropped)."""
    if not bf16:
        return
    if device.type != "cuda":
        raise ValueError(f"--bf16 (bf16=True) needs a CUDA device; this run is on {device.type}: leave it out "
                         f"(or pass --no-bf16) to train in float32")
    if not torch.cuda.is_bf16_supported():
        raise ValueError(f"--bf16 (bf16=True): {torch.cuda.get_device_name(device)} does not support bfloat16; "
                         f"pass --no-bf16 to train in float32")


def run_steps(state: RunState, on_step: Callable[[int], None] | None) -> None:
    """Step from ``state.step`` to ``config.steps``: train, log, evaluate and save on their schedules;
    on SIGINT / SIGTERM, save and raise TrainingInterrupted."""
    config, info = state.config, state.info
    net = DistributedDataParallel(state.model) if info.world > 1 else state.model
    bf16 = config.bf16  # checked by train_loop: a CUDA device that supports it
    show = config.progress and info.is_main and sys.stderr.isatty()
    bar = tqdm(total=config.steps, initial=state.step, desc="train", disable=not show, dynamic_ncols=True)
    schedule = dict(base=config.lr, schedule=config.lr_schedule, steps=config.steps, warmup_steps=config.warmup_steps,
                    step_every=config.lr_step_every, gamma=config.lr_gamma)
    state.started = time.perf_counter()
    try:
        with stop_on_signals(state.run_dir is not None) as received:
            while state.step < config.steps:
                lr = learning_rate(state.step, **schedule)
                one_step(state, net, lr, bf16=bf16)
                bar.update(1)
                step, end = state.step, state.step == config.steps
                if end or step % config.log_every == 0:
                    bar.set_postfix(bpd=f"{log_train(state, lr)['bits_per_dim']:.4f}")
                if end or (config.eval_every and step % config.eval_every == 0):
                    evaluate(state)
                if end or step % config.checkpoint_every == 0:
                    save(state)
                if on_step is not None:
                    on_step(step)
                if _stop_requested(received, info, state.device) and not end:
                    if step % config.checkpoint_every:
                        save(state)
                    raise TrainingInterrupted(received[0] if received else signal.SIGTERM, step,
                                              str(state.checkpoint_path) if state.checkpoint_path else None)
    finally:
        bar.close()


def _stop_requested(received: list[int], info: DistInfo, device: torch.device) -> bool:
    """Whether any process received SIGINT / SIGTERM (all processes agree, so all of them stop)."""
    stop = torch.tensor([float(bool(received))], device=device)
    if info.world > 1:
        all_reduce_sum(stop, info)
    return bool(stop.item())
