"""What a run shows while it trains: sample grids, a loss curve, optional TensorBoard logs.

* :func:`write_sample_grid` draws ``num`` images from the current weights (one fixed generator seed,
  so successive grids differ only by what the model learnt) and writes them as a PNG grid.
* :func:`plot_loss_curve` draws train and test bits/dim against steps (matplotlib, Agg backend).
* :func:`open_tensorboard` returns a ``SummaryWriter``; tensorboard is an optional dependency
  (``pip install fastpixel[tensorboard]``) imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastpixel.image_grid import default_columns, grid, save_png, to_rgb8

TENSORBOARD_HINT = "TensorBoard logging needs the tensorboard package: pip install 'fastpixel[tensorboard]'"


@torch.no_grad()
def draw_samples(model: torch.nn.Module, num: int, height: int, width: int, *, seed: int) -> torch.Tensor:
    """int64 (num, C, height, width) drawn from ``model`` with a CPU generator seeded ``seed``.

    The global RNGs are untouched (a resumed run stays bit-identical) and the training mode is restored.
    """
    from fastpixel.sampling import sample

    was_training = model.training
    model.eval()
    num_classes = getattr(model, "num_classes", None)  # a class-conditional model: classes 0, 1, ... in turn
    labels = None if num_classes is None else torch.arange(num) % num_classes
    try:
        return sample(model, num, height=height, width=width, labels=labels,
                      generator=torch.Generator().manual_seed(seed)).cpu()
    finally:
        model.train(was_training)


def write_sample_grid(path: str | os.PathLike, images: torch.Tensor, levels: int, *, scale: int = 4) -> np.ndarray:
    """Write a PNG grid of int images (N, C, H, W) in [0, levels), each pixel a ``scale`` x ``scale``
    block; return the grid, uint8 (rows, cols, 3), at scale 1."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = grid(to_rgb8(images, levels), columns=default_columns(images.shape[0]))
    tmp = path.with_name(path.name + ".tmp")  # *.png.tmp: never a half-written PNG under the real name
    save_png(tmp, picture, scale)
    os.replace(tmp, path)
    return picture


def plot_loss_curve(records: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Train and test (model and EMA weights) bits/dim against steps -> PNG; None when nothing to draw."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        if "bits_per_dim" not in r:
            continue
        label = "train" if r.get("split") == "train" else f"{r.get('split', 'test')} ({r.get('weights', 'model')})"
        steps, values = series.setdefault(label, ([], []))
        steps.append(r["step"])
        values.append(r["bits_per_dim"])
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global figure state, safe in any thread

    fig = Figure(figsize=(5.5, 3.4), dpi=110)
    ax = fig.add_subplot()
    for label, (steps, values) in series.items():
        ax.plot(steps, values, marker="o" if label != "train" else None, markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("bits / dim")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, or ImportError with the install hint."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(f"{TENSORBOARD_HINT} ({err})") from None
    return SummaryWriter


def open_tensorboard(log_dir: str | os.PathLike, *, purge_step: int | None = None):
    """A SummaryWriter writing under ``log_dir`` (events after ``purge_step`` dropped on resume)."""
    return require_tensorboard()(log_dir=str(log_dir), purge_step=purge_step)
