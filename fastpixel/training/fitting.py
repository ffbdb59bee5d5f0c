"""``fastpixel.fit(model, data, steps=...)``: train any model on images held in Python."""

from __future__ import annotations

from typing import Any, Callable

import torch

from fastpixel.backend import BackendChoice
from fastpixel.distributed import DistInfo
from fastpixel.training.config import TrainConfig
from fastpixel.training.loop import train_loop
from fastpixel.training.model_settings import settings_of_model
from fastpixel.training.user_data import as_image_set, with_labels


def fit(
    model: torch.nn.Module,
    data: Any,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    test_data: Any = None,
    labels: Any = None,
    test_labels: Any = None,
    run_dir: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    lr_step_every: int | None = None,
    lr_gamma: float = 0.1,
    clip_grad: float = 1.0,
    ema: float = 0.0,
    seed: int = 0,
    log_every: int = 50,
    eval_every: int = 0,
    eval_batch_size: int = 256,
    checkpoint_every: int | None = None,
    keep: int = 1,
    sample_grid: int = 16,
    tensorboard: bool = False,
    bf16: bool = False,
    backend: str | None = None,
    quiet: bool = True,
    progress: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on ``data`` with the loop ``fastpixel-train`` runs.

    model: any fastpixel model (``create_model(...)``, ``MultiScalePixelRNN``) or a module with the
      same interface (``model(x, validate=False)`` -> logits (B, levels, C, H, W); ``channels``,
      ``levels``; ``nll`` for evaluation), on the device to train on.
    data / test_data: integer images (N, C, H, W) in [0, model.levels) as a tensor or numpy array, or
      a ``torch.utils.data.Dataset`` yielding images (C, H, W) or (image, label) tuples.
    labels / test_labels: a class-conditional model's (``num_classes=``) class id of every image,
      (N,) integers in [0, num_classes) (required for one; refused for an unconditional model).
      Every batch trains on its own labels, the test NLL is -log p(x | its label).
    steps, batch_size, lr, lr_schedule ("constant", "cosine", "step"), warmup_steps, lr_step_every,
      lr_gamma, clip_grad (0: off), ema (decay, 0: off), seed: the optimisation (Adam); the batches
      are a function of (seed, step).
    run_dir: where metrics.jsonl, checkpoint.pt (every ``checkpoint_every`` steps, default only at
      the end; the last ``keep``), sample grids (``sample_grid`` images at every evaluation, 0: none)
      and loss.png go; None: nothing is written. resume / overwrite: as ``--resume`` / ``--overwrite``.
    eval_every: test NLL every N steps when test_data is given (0: only at the end).
    backend: the ops backend to train on (a model with ``to_backend`` is moved there; None: the
      model's own). Every setting is checked by :class:`~fastpixel.training.config.TrainConfig`
      (ValueError with the same messages as ``fastpixel-train``) before anything runs.
    Like the command, it seeds torch's, numpy's and Python's global generators with ``seed``.
    Returns {"step", "train": last train record, "test": last test record (None without test_data),
    "history": every metrics record, "run_dir"}.
    """
    channels, levels = getattr(model, "channels", None), getattr(model, "levels", None)
    if not isinstance(channels, int) or not isinstance(levels, int):
        raise TypeError(f"fit: the model needs integer .channels and .levels (a fastpixel model), "
                        f"got {type(model).__name__}")
    config = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, warmup_steps=warmup_steps,
        lr_step_every=lr_step_every, lr_gamma=lr_gamma, clip_grad=clip_grad, ema=ema, seed=seed,
        log_every=log_every, eval_every=eval_every, eval_batch_size=eval_batch_size,
        checkpoint_every=steps if checkpoint_every is None else checkpoint_every, keep=keep,
        sample_grid=sample_grid, tensorboard=tensorboard, bf16=bf16, dataset="user", binarize="none",
        run_dir=run_dir, resume=resume, overwrite=overwrite, backend=backend, quiet=quiet, progress=progress,
        **settings_of_model(model),
    )
    train_set = as_image_set(data, channels=channels, levels=levels, split="train")
    test_set = None if test_data is None else as_image_set(test_data, channels=channels, levels=levels, split="test")
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None and (labels is not None or test_labels is not None):
        raise ValueError("fit: labels given, but the model is not class-conditional (build it with num_classes=)")
    if num_classes is not None:  # labels given, or those of an ImageSet (load_dataset's)
        if labels is not None:
            train_set = with_labels(train_set, labels, num_classes=num_classes, split="train")
        if test_set is not None and test_labels is not None:
            test_set = with_labels(test_set, test_labels, num_classes=num_classes, split="test")
        if train_set.labels is None or (test_set is not None and test_set.labels is None):
            raise ValueError(f"fit: the model is class-conditional (num_classes={num_classes}): pass labels= "
                             "(and test_labels= with test_data), one class id per image")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    info = DistInfo(rank=0, world=1, local_rank=0, device=device)
    record = {"data": {"train": train_set.protocol, "test": test_set.protocol if test_set else None}}
    _to_backend(model, backend)
    return train_loop(model, train_set, test_set, config, info=info, on_step=on_step, record=record)


def _to_backend(model: torch.nn.Module, backend: str | None) -> None:
    """Move every fastpixel layer of ``model`` (a fastpixel model or the user's own module) to
    ``backend``; they stay there. None: as they are."""
    if backend is None:
        return
    for module in model.modules():
        if isinstance(module, BackendChoice):
            module.to_backend(backend)
