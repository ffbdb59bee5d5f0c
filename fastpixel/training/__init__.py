"""Training: one typed config (:class:`TrainConfig`) and one loop (:mod:`fastpixel.training.loop`)
behind ``fastpixel-train`` and :func:`fit`.

    fastpixel.fit(model, images_uint8, steps=500, batch_size=32, lr=3e-3, run_dir="runs/mine")
    train(TrainConfig.from_preset("cpu_tiny", steps=50, run_dir="runs/t"))

See docs/training.md for what a run directory holds and how a run is resumed.
"""

from fastpixel.training.config import TrainConfig
from fastpixel.training.errors import DivergedError, RunDirError, RunDirExistsError, TrainingInterrupted
from fastpixel.training.evaluation import evaluate_nll
from fastpixel.training.fitting import fit
from fastpixel.training.from_config import train
from fastpixel.training.loop import TRAJECTORY_KEYS, train_loop
from fastpixel.training.schedule import SCHEDULES, learning_rate

__all__ = [
    "SCHEDULES",
    "TRAJECTORY_KEYS",
    "TrainConfig",
    "DivergedError",
    "RunDirError",
    "RunDirExistsError",
    "TrainingInterrupted",
    "evaluate_nll",
    "fit",
    "learning_rate",
    "train",
    "train_loop",
]
