"""Resuming a run from its checkpoint: the same settings, then every state as it was saved.

A resumed run continues bit for bit where the checkpoint was taken (weights, Adam moments, EMA,
running loss sums, every RNG, the data order, which is a function of (seed, step)).
"""

from __future__ import annotations

from typing import Any

from fastpixel.checkpoint import read_checkpoint, set_rng_state
from fastpixel.training import run_dir as files
from fastpixel.training.config import MULTISCALE_OPTIONS, TrainConfig
from fastpixel.training.errors import RunDirError
from fastpixel.training.model_settings import HEAD_SETTINGS, effective
from fastpixel.training.state import RunState

#: Settings a resumed run must share with its checkpoint (they shape the trajectory).
TRAJECTORY_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", "dataset", "binarize", "binarize_seed",
                   "png_convert",
                   "train_limit", "batch_size", "lr", "clip_grad", "ema", "seed", "lr_schedule", "warmup_steps",
                   "lr_step_every", "lr_gamma", "kind", "factor", "small_hidden", "small_layers",
                   "condition_features", *HEAD_SETTINGS)


def settings_for_resume(recorded: TrainConfig, given: dict[str, Any], where: str) -> tuple[TrainConfig, list[str]]:
    """The config a resumed run continues with: the run's own settings (``recorded``, from its
    directory), with the settings ``given`` on the command line (flag name without dashes -> value).

    A given setting equal to the run's changes nothing. One that shapes the trajectory
    (TRAJECTORY_KEYS, and ``steps`` under the cosine schedule) and differs is refused with one line
    naming both values (RunDirError); any other (``steps``, how often to log, evaluate and save,
    ``keep``, ``data_dir``, ...) is honoured and returned in the notes (the run's config.json then
    records it). ``where``: the run directory, for the messages.
    """
    changes = {k: v for k, v in given.items() if v is not None and _value(recorded, k) != v}
    proposed = recorded.replace(**changes)
    refused = changed_settings(recorded, proposed)
    if refused:
        said = "; ".join(f"--{k.split(' ')[0].replace('_', '-')} {now!r} on the command line, {before!r} in the run"
                         for k, (before, now) in refused.items())
        raise RunDirError(f"--resume {where}: {said}; the run continues with its own settings, so leave the "
                          f"flag out (or start a new run: another --run-dir, or --overwrite)")
    notes = [f"--{k.replace('_', '-')} {v!r} (the run had {getattr(recorded, k)!r}): honoured and recorded"
             for k, v in changes.items()]
    return proposed, notes


#: The settings that describe the model; for a ``fit`` run (dataset "user") the caller brings the model,
#: whose checkpoint must load into it (its state dict is the check), and an older fastpixel recorded
#: the defaults here instead of the model's own: they are not compared.
MODEL_KEYS = ("model", "hidden", "layers", "output_hidden", "skip", *MULTISCALE_OPTIONS, *HEAD_SETTINGS)


def changed_settings(before: TrainConfig, now: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{setting: (checkpoint's, now)} for every trajectory setting that differs (and, for the cosine
    schedule, its length ``steps``); a ``fit`` run's model settings are not compared (MODEL_KEYS)."""
    keys = [k for k in TRAJECTORY_KEYS if not (before.dataset == "user" and k in MODEL_KEYS)]
    changed = {k: (_value(before, k), _value(now, k)) for k in keys if _value(before, k) != _value(now, k)}
    if now.lr_schedule == "cosine" and before.steps != now.steps:
        changed["steps (the cosine schedule's length)"] = (before.steps, now.steps)
    return changed


def _value(config: TrainConfig, name: str) -> Any:
    """The setting ``name`` of ``config``; for a head setting the value the model is built with (a run that
    left --head out and one that says --head dmol train the same PixelCNN++)."""
    return effective(config, name) if name in HEAD_SETTINGS else getattr(config, name)


def resume(state: RunState) -> list[dict[str, Any]]:
    """Load the run's checkpoint into ``state`` (RunDirError if its settings differ from the config's);
    return the metrics records up to its step (those a killed run wrote after it are dropped)."""
    path = state.checkpoint_path
    ckpt = read_checkpoint(path, map_location=state.device)
    before = TrainConfig.from_saved(ckpt["train_config"])
    changed = changed_settings(before, state.config)
    if changed:
        said = "; ".join(f"{k}: {b!r} in the checkpoint, {n!r} now" for k, (b, n) in changed.items())
        raise RunDirError(f"{path}: resuming with different settings ({said}); resume with the run's own settings")
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if state.ema is not None:
        state.ema.load_state_dict(ckpt["ema"])
    state.running.copy_(ckpt["running"])
    state.step = ckpt["step"]
    set_rng_state(ckpt["rng"])
    state.last_good = f"the last good checkpoint (step {state.step}) is kept at {path}"
    steps = state.config.steps
    if state.step >= steps:
        if state.step > steps:
            state.say(f"{path} is at step {state.step}, beyond --steps {steps}: nothing to train "
                      f"(raise --steps above {state.step} to continue)")
        else:
            state.say(f"{state.run_dir}: the run already finished at step {state.step} of {steps}; nothing to do "
                      f"(raise --steps to train longer)")
    elif before.steps != steps:
        state.say(f"resuming at step {state.step}: --steps {before.steps} -> {steps}")
    if state.info.is_main:
        return files.truncate_metrics(state.metrics_path, state.step)
    return files.read_metrics(state.metrics_path)


def last_records(records: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """{"train": the last train record, "test": the model weights' test record at ``step``} (None: absent)."""
    train = [r for r in records if r.get("split") == "train"]
    test = [r for r in records if r.get("split") == "test" and r.get("weights", "model") == "model"
            and r["step"] == step]
    return {"train": train[-1] if train else None, "test": test[-1] if test else None}
