"""Images a user already holds (a tensor, an array or a ``torch.utils.data.Dataset``) -> an ImageSet."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastpixel.data.datasets import ImageSet


def _as_tensor(item: Any, where: str) -> torch.Tensor:
    if isinstance(item, (tuple, list)) and item and not isinstance(item[0], (int, float)):
        item = item[0]  # (image, label, ...) -> image
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item))
    if not isinstance(item, torch.Tensor):
        raise TypeError(f"{where}: expected an integer image tensor (C, H, W) or (H, W), or an (image, label) "
                        f"tuple; got {type(item).__name__}")
    return item


def with_labels(images: ImageSet, labels: Any, *, num_classes: int | None, split: str) -> ImageSet:
    """``images`` with class ids ``labels`` ((N,) integers in [0, num_classes)) attached."""
    import dataclasses

    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if isinstance(labels, (list, tuple)):
        labels = torch.tensor(labels)
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{split} labels: expected integer class ids (N,), got "
                        f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    if tuple(labels.shape) != (len(images),):
        raise ValueError(f"{split} labels: expected one class id per image, shape ({len(images)},), got "
                         f"{tuple(labels.shape)}")
    if num_classes is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{split} labels: class ids must lie in [0, {num_classes}) (the model's num_classes), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return dataclasses.replace(images, labels=labels.long().cpu(), num_classes=num_classes)


def as_image_set(data: Any, *, channels: int, levels: int, split: str = "train") -> ImageSet:
    """``data`` -> ImageSet of integer images (N, C, H, W) in [0, levels), on the CPU.

    data: an ImageSet (returned as is); an integer tensor or numpy array (N, C, H, W) or (N, H, W);
      or a map-style Dataset whose items are such images (C, H, W) / (H, W) or (image, label) tuples
      (materialised once into one tensor: the batches are then a function of (seed, step)).
    Raises TypeError / ValueError saying what was expected (dtype, rank, channels, value range).
    """
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, torch.Tensor):
        images, what = data, f"{split} images"
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes, dict)):
        if len(data) == 0:
            raise ValueError(f"{split} data: the Dataset is empty")
        items = [_as_tensor(data[i], f"{split} data item {i}") for i in range(len(data))]
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) > 1:
            raise ValueError(f"{split} data: the Dataset's images differ in shape {sorted(shapes)[:4]}; "
                             f"expected one (C, H, W)")
        images, what = torch.stack(items), f"{split} data (a {type(data).__name__} of {len(items)} items)"
    else:
        raise TypeError(f"{split} data: expected an integer tensor (N, C, H, W), a numpy array, or a "
                        f"torch.utils.data.Dataset of images; got {type(data).__name__}")
    if images.dtype == torch.bool:
        images = images.to(torch.uint8)
    if images.is_floating_point() or images.is_complex():
        raise TypeError(f"{what}: expected integer images (uint8 or int), got {images.dtype}; quantise them "
                        f"first, e.g. (x * (levels - 1)).round().long() for x in [0, 1]")
    if images.ndim == 3 and channels == 1:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"{what}: expected (N, C, H, W) (or (N, H, W) for one channel), got shape "
                         f"{tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{what}: no images")
    if images.shape[1] != channels:
        raise ValueError(f"{what}: {images.shape[1]} channel(s), but the model has {channels}; expected "
                         f"(N, {channels}, H, W)")
    low, high = int(images.min()), int(images.max())
    if low < 0 or high >= levels:
        raise ValueError(f"{what}: values in [{low}, {high}], but the model has {levels} levels; expected "
                         f"values in [0, {levels - 1}]")
    images = images.cpu().contiguous()
    if images.dtype != torch.uint8 and levels <= 256:
        images = images.to(torch.uint8)
    protocol = (f"user data ({what}); split {split!r}, {images.shape[0]} images of {tuple(images.shape[1:])}, "
                f"{levels} levels; NOT the paper's protocol")
    return ImageSet("user", split, images, levels, protocol)
