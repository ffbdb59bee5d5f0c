"""Batches whose order is a pure function of (seed, step): what makes resumed runs bit-identical.

Epoch e = step // steps_per_epoch visits the images in ``default_rng([seed, e]).permutation(N)``
order, in batches of ``batch_size`` (the last partial batch is dropped). Under data parallelism
rank r of w takes every w-th image of the global batch, so the global batch is the same for any w.
"""

from __future__ import annotations

import numpy as np
import torch

from fastpixel.data.binarize import binarize_dynamic
from fastpixel.data.datasets import ImageSet


def _check_int(label: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
    return int(value)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches in one pass over ``num_images`` images (the last partial batch is dropped)."""
    _check_int("num_images", num_images, 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_images:
        raise ValueError(f"batch_size must be in [1, {num_images}] (the data set size), an int; got {batch_size!r}")
    return num_images // batch_size


def batch_indices(
    num_images: int, batch_size: int, *, seed: int, step: int, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """Indices (batch_size // world,) of the images rank ``rank`` trains on at ``step``."""
    _check_int("step", step, 0)
    _check_int("seed", seed, 0)
    _check_int("world", world, 1)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world:
        raise ValueError(f"rank must be an int in [0, {world}), got {rank!r}")
    per_epoch = steps_per_epoch(num_images, batch_size)
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_images)
    batch = order[position * batch_size:(position + 1) * batch_size]
    return torch.from_numpy(batch[rank::world].copy())


def batch_labels(
    data: ImageSet, batch_size: int, *, seed: int, step: int, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """Class ids (batch_size // world,) of the images :func:`training_batch` gives for ``step``."""
    if data.labels is None:
        raise ValueError(f"{data.name} ({data.split}) has no labels: a class-conditional model cannot train on it")
    return data.labels[batch_indices(len(data), batch_size, seed=seed, step=step, rank=rank, world=world)]


def training_batch(
    data: ImageSet, batch_size: int, *, seed: int, step: int, rank: int = 0, world: int = 1
) -> torch.Tensor:
    """uint8 images (batch_size // world, C, H, W) for ``step`` (binarized afresh when dynamic)."""
    index = batch_indices(len(data), batch_size, seed=seed, step=step, rank=rank, world=world)
    images = data.images[index]
    if data.dynamic:
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)
        images = binarize_dynamic(images, generator)
    return images
