"""``RunState``: what one training run holds while it goes (model, optimizer, EMA, counters, files).

Built by :func:`start`; read and advanced by the steps of :mod:`fastpixel.training.steps` and
:mod:`fastpixel.training.resume`, driven by :func:`fastpixel.training.loop.train_loop`.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fastpixel.checkpoint import FILENAME
from fastpixel.data.datasets import ImageSet
from fastpixel.distributed import DistInfo
from fastpixel.training import run_dir as files
from fastpixel.training.config import TrainConfig


@dataclass
class RunState:
    """One run in progress.

    running: float64 [sum of train nats, images] since the last train record (on the device).
    last: the latest {"train": record, "test": record of the model weights}; history: every record
    of this call. last_good: where the last good checkpoint is, said in words (None: none yet).
    """

    config: TrainConfig
    model: torch.nn.Module
    train_set: ImageSet
    test_set: ImageSet | None
    info: DistInfo
    optimizer: torch.optim.Optimizer
    ema: AveragedModel | None
    running: torch.Tensor
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=lambda: {"train": None, "test": None})
    last_good: str | None = None
    writer: Any = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def run_dir(self) -> Path | None:
        return Path(self.config.run_dir) if self.config.run_dir else None

    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / FILENAME if self.run_dir else None

    @property
    def metrics_path(self) -> Path | None:
        return self.run_dir / files.METRICS if self.run_dir else None

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (the main one, and only with a run directory)."""
        return self.run_dir is not None and self.info.is_main

    def say(self, text: str) -> None:
        """A status line on stderr, from the main process only."""
        say(self.info, text)

    def weights(self) -> list[tuple[str, torch.nn.Module]]:
        """[("model", model)] and ("ema", the averaged model) when the run keeps one."""
        return [("model", self.model)] + ([("ema", self.ema.module)] if self.ema is not None else [])


def say(info: DistInfo, text: str) -> None:
    """``fastpixel: <text>`` on stderr, from the main process only."""
    if info.is_main:
        print(f"fastpixel: {text}", file=sys.stderr)


def seed_everything(seed: int) -> None:
    """Seed torch's, numpy's and Python's global generators (as the command always has)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def start(model: torch.nn.Module, train_set: ImageSet, test_set: ImageSet | None, config: TrainConfig,
          info: DistInfo) -> RunState:
    """Seed the generators and build the optimizer (Adam) and the EMA; nothing is read or written."""
    seed_everything(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    ema = None
    if config.ema:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
    running = torch.zeros(2, dtype=torch.float64, device=info.device)
    return RunState(config, model, train_set, test_set, info, optimizer, ema, running)
