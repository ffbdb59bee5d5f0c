"""``train(config)``: the run ``fastpixel-train`` describes (data set by name, model by name, settings)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from fastpixel.backend import use_backend
from fastpixel.data import load_dataset
from fastpixel.distributed import init_distributed, shutdown
from fastpixel.models import create_model
from fastpixel.training.loop import check_settings, train_loop

#: Options of the Multi-Scale PixelRNN (``model="multiscale"``) beyond create_model's common ones.
MULTISCALE_OPTIONS = ("kind", "factor", "small_hidden", "small_layers", "condition_features")


def model_options(config: dict[str, Any]) -> dict[str, Any]:
    """create_model's keyword arguments (besides channels and levels) from the settings."""
    options = dict(hidden=config["hidden"], layers=config["layers"], output_hidden=config["output_hidden"],
                   skip=config["skip"])
    extra = {k: config.get(k) for k in MULTISCALE_OPTIONS if config.get(k) is not None}
    if config["model"] == "multiscale":
        options.update(extra)
    elif extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(extra))
        verb = "applies" if len(extra) == 1 else "apply"
        raise ValueError(f"{flags} {verb} only to --model multiscale, not {config['model']!r}")
    return options


def train(config: dict[str, Any], *, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``config`` (``fastpixel.cli.train.config_from_args``).

    on_step: called after every optimizer step with the step number (tests use it to kill a run).
    Returns {"step", "run_dir", "train": last train record, "test": last test record, "history"}.
    """
    check_settings(config)
    options = model_options(config)
    data_kw = dict(data_dir=config["data_dir"], binarize=config["binarize"], binarize_seed=config["binarize_seed"],
                   allow_pickle=config["allow_pickle"], png_convert=config.get("png_convert", False))
    train_set = load_dataset(config["dataset"], "train", limit=config["train_limit"], **data_kw)
    test_set = load_dataset(config["dataset"], "test", limit=config["test_limit"], **data_kw)
    info = init_distributed(config["device"])
    try:
        torch.manual_seed(config["seed"])
        model = create_model(config["model"], channels=train_set.channels, levels=train_set.levels,
                             **options).to(info.device)
        record = {"data": {"train": train_set.protocol, "test": test_set.protocol}}
        with use_backend(config["backend"]):
            return train_loop(model, train_set, test_set, config, info=info, on_step=on_step, record=record)
    finally:
        shutdown(info)
