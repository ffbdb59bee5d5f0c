"""``train(config)``: the run ``fastpixel-train`` describes (data set by name, model by name, settings)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from fastpixel.data import load_dataset
from fastpixel.distributed import barrier, init_distributed, shutdown
from fastpixel.models import create_model
from fastpixel.training.config import MULTISCALE_OPTIONS, TrainConfig
from fastpixel.training.loop import train_loop

__all__ = ["MULTISCALE_OPTIONS", "model_options", "train"]


def model_options(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """create_model's keyword arguments (besides channels, levels and backend) from the settings."""
    return as_config(config).model_options()


def as_config(config: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    """``config`` itself, or the TrainConfig of a mapping of its fields (checked)."""
    return config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)


def train(config: TrainConfig | Mapping[str, Any], *, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``config`` (a TrainConfig, e.g. from
    ``fastpixel.cli.train.config_from_args`` or ``TrainConfig.from_preset``; a mapping of its fields
    is accepted and checked the same way).

    The model is built on the config's backend (``create_model(..., backend=config.backend)``).
    on_step: called after every optimizer step with the step number (tests use it to kill a run).
    Returns {"step", "run_dir", "train": last train record, "test": last test record, "history"}.
    """
    config = as_config(config)
    data_kw = dict(data_dir=config.data_dir, binarize=config.binarize, binarize_seed=config.binarize_seed,
                   allow_pickle=config.allow_pickle, png_convert=config.png_convert)
    train_set = load_dataset(config.dataset, "train", limit=config.train_limit, **data_kw)
    test_set = load_dataset(config.dataset, "test", limit=config.test_limit, **data_kw)
    classes = {}
    if config.conditional:
        if train_set.labels is None or train_set.num_classes is None:
            raise ValueError(f"--conditional needs labels, and --dataset {config.dataset} has none (labelled: "
                             "builtin_mnist, mnist, fashion_mnist, cifar10, imagenet32/64 as npz batches, png with a folder "
                             "per class id)")
        classes = dict(num_classes=train_set.num_classes)
    info = init_distributed(config.device)
    try:
        torch.manual_seed(config.seed)
        model = create_model(config.model, channels=train_set.channels, levels=train_set.levels,
                             backend=config.backend, **config.model_options(), **classes).to(info.device)
        record = {"data": {"train": train_set.protocol, "test": test_set.protocol}}
        result = train_loop(model, train_set, test_set, config, info=info, on_step=on_step, record=record)
        # every process is past its last collective and rank 0 past its last write before any tears the group
        # down: a rank that destroyed its gloo group and exited while another still used it aborted the other
        # ("terminate called without an active exception", seen once in CI)
        barrier(info)
        return result
    finally:
        shutdown(info)
