"""``load_dataset(name, split)``: every reader behind one name, returning an :class:`ImageSet`.

Names (``DATASETS``): builtin_mnist (no download), mnist, fashion_mnist, binarized_mnist,
cifar10, imagenet32, imagenet64, png (``data_dir/train`` and ``data_dir/test`` folders of PNGs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastpixel.data import amat, cifar, idx, imagenet
from fastpixel.data.binarize import binarize_fixed
from fastpixel.data.builtin import load_builtin_mnist, load_builtin_mnist_labels
from fastpixel.data.errors import DataFileError
from fastpixel.data.png import png_folder_labels, read_png_folder

DATASETS = ("builtin_mnist", "mnist", "fashion_mnist", "binarized_mnist", "cifar10", "imagenet32", "imagenet64", "png")
GREY_8BIT = ("builtin_mnist", "mnist", "fashion_mnist")
BINARIZE = ("none", "fixed", "dynamic")
#: Image side (height = width) of each named data set; "png" folders have whatever size their files have.
IMAGE_SIZES = {
    "builtin_mnist": 28, "mnist": 28, "fashion_mnist": 28, "binarized_mnist": 28,
    "cifar10": 32, "imagenet32": 32, "imagenet64": 64,
}


@dataclass(frozen=True)
class ImageSet:
    """One split of a data set.

    images: uint8 (N, C, H, W). levels: values per sub-pixel the model sees (2 or 256).
    dynamic: the images are 8-bit grey and each training batch is binarized afresh (levels 2).
    protocol: one line saying what the numbers on this split mean.
    labels: int64 (N,), each image's class id as the data set numbers it (MNIST's digit, CIFAR-10's
      label byte, a PNG class folder's integer name; downsampled ImageNet's npz ``labels``, which
      are 1-based, minus 1: 0..999), or None where the format has none.
    num_classes: how many class ids the data set has (ids lie in [0, num_classes)), or None.
    """

    name: str
    split: str
    images: torch.Tensor
    levels: int
    protocol: str
    dynamic: bool = False
    labels: torch.Tensor | None = None
    num_classes: int | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def dims(self) -> int:
        """Sub-pixels per image, C * H * W (the bits/dim denominator)."""
        return self.images.shape[1] * self.images.shape[2] * self.images.shape[3]


def _need_dir(name: str, data_dir: str | os.PathLike | None, source: str) -> Path:
    if data_dir is None:
        raise DataFileError(
            "(no --data-dir)", f"dataset {name!r} needs data_dir", "the folder holding its files", source
        )
    return Path(data_dir)


def _read(name: str, split: str, data_dir, allow_pickle: bool, png_convert: bool) -> tuple[np.ndarray, str]:
    """Raw uint8 (N, C, H, W) and a description of the source."""
    if name == "builtin_mnist":
        return load_builtin_mnist(split)[:, None], (
            "built-in MNIST digits (fastpixel's seeded 9,000/1,000 split of the first 10,000 MNIST training digits)"
        )
    if name == "mnist":
        folder = _need_dir(name, data_dir, idx.MNIST_SOURCE)
        return idx.read_mnist_images(folder, split)[:, None], "MNIST (LeCun et al.)"
    if name == "fashion_mnist":
        folder = idx.fashion_mnist_dir(data_dir)
        images = idx.read_mnist_images(folder, split, source=idx.FASHION_SOURCE)
        return images[:, None], "Fashion-MNIST (Xiao et al. 2017)"
    if name == "binarized_mnist":
        folder = _need_dir(name, data_dir, amat.SOURCE)
        path = amat.amat_path(folder, split)
        images = amat.read_amat(path, source=amat.SOURCE.format(split=split))
        return images[:, None], "binarized MNIST (Larochelle & Murray 2011, fixed binarization)"
    if name == "cifar10":
        folder = _need_dir(name, data_dir, cifar.SOURCE)
        return cifar.read_cifar10(folder, split, allow_pickle=allow_pickle), "CIFAR-10"
    if name in ("imagenet32", "imagenet64"):
        size = int(name[-2:])
        folder = _need_dir(name, data_dir, imagenet.SOURCE.format(size=size))
        images, version = imagenet.read_imagenet(folder, split, size)
        return images, f"downsampled ImageNet {size}x{size}, {version}"
    if name == "png":
        folder = _need_dir(name, data_dir, "your own PNG files")
        images = read_png_folder(folder / split, convert=png_convert)
        return images, f"PNG folder {folder / split}" + (" (converted on request)" if png_convert else "")
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")


def _read_labels(name: str, split: str, data_dir, allow_pickle: bool) -> tuple[np.ndarray | None, int | None]:
    """(class ids (N,), num_classes) where the format has them (the data set's own integers; downsampled
    ImageNet's npz ``labels`` minus 1, 0-based), else (None, None)."""
    if name == "builtin_mnist":
        return load_builtin_mnist_labels(split), 10
    if name in ("mnist", "fashion_mnist"):
        folder = _need_dir(name, data_dir, idx.MNIST_SOURCE) if name == "mnist" else idx.fashion_mnist_dir(data_dir)
        source = idx.MNIST_SOURCE if name == "mnist" else idx.FASHION_SOURCE
        try:
            idx.find_idx_file(folder, idx.LABEL_STEMS[split], source=source)
        except DataFileError:
            return None, None  # images without their label file: usable, but not for a conditional model
        return idx.read_mnist_labels(folder, split, source=source), 10
    if name == "cifar10":
        return cifar.read_cifar10_labels(_need_dir(name, data_dir, cifar.SOURCE), split, allow_pickle=allow_pickle), 10
    if name == "png":
        labels = png_folder_labels(_need_dir(name, data_dir, "your own PNG files") / split)
        return (labels, int(labels.max()) + 1) if labels is not None else (None, None)
    if name in ("imagenet32", "imagenet64"):
        size = int(name[-2:])
        folder = _need_dir(name, data_dir, imagenet.SOURCE.format(size=size))
        labels = imagenet.read_imagenet_labels(folder, split, size)  # None: PNG folders, npz without 'labels'
        return (labels, imagenet.NUM_CLASSES) if labels is not None else (None, None)
    return None, None  # binarized MNIST (.amat) carries no labels


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    binarize: str = "none",
    binarize_seed: int = 0,
    allow_pickle: bool = False,
    limit: int | None = None,
    png_convert: bool = False,
) -> ImageSet:
    """Load ``split`` ("train", "test"; binarized_mnist also "valid") of data set ``name``.

    binarize: for the 8-bit grey sets (builtin_mnist, mnist, fashion_mnist): "none" (256 levels),
      "fixed" (one seeded draw, 2 levels) or "dynamic" (training batches drawn afresh; the test
      split uses the fixed draw). binarized_mnist is already binary.
    allow_pickle: read CIFAR-10's python (pickle) version; unpickling runs code from the file.
    limit: keep only the first ``limit`` images (quick runs; the protocol line says so); an int
      >= 1 and at most the split's size (more is refused: never silently fewer), or None for all.
    png_convert: "png" folders only: convert what fastpixel.data.png refuses by default (16-bit
      grey quantized to 8 bits, alpha dropped, grey and colour files brought to the first file's mode).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if binarize not in BINARIZE:
        raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
    if binarize != "none" and name not in GREY_8BIT:
        raise ValueError(f"binarize={binarize!r} applies only to {GREY_8BIT}, not {name!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1 (or None: the whole split), got {limit!r}")
    if isinstance(binarize_seed, bool) or not isinstance(binarize_seed, int) or binarize_seed < 0:
        raise ValueError(f"binarize_seed must be an int >= 0, got {binarize_seed!r}")
    if png_convert and name != "png":
        raise ValueError(f"png_convert applies only to the 'png' dataset, not {name!r}")
    images, source = _read(name, split, data_dir, allow_pickle, png_convert)
    if limit is not None and limit > len(images):  # a count is honoured exactly or refused
        raise ValueError(f"limit {limit} exceeds the {len(images)} images of {name} {split!r}: ask for at most "
                         f"{len(images)}, or leave the limit out")
    labels, num_classes = _read_labels(name, split, data_dir, allow_pickle)
    if labels is not None and len(labels) != len(images):
        raise DataFileError(data_dir or name, f"{len(labels)} labels for {len(images)} images",
                            "one class id per image", "the data set's own label files")
    if labels is not None and name in ("imagenet32", "imagenet64"):  # the one set whose ids are not the file's
        source += (f", class ids = the npz 'labels' minus 1 (0..{imagenet.NUM_CLASSES - 1}; "
                   "the files number them from 1)")
    images = images[:limit]
    labels = None if labels is None else torch.from_numpy(np.asarray(labels[:limit], dtype=np.int64))
    dynamic = binarize == "dynamic" and split == "train"
    levels = 2 if name == "binarized_mnist" or binarize != "none" else 256
    if binarize == "fixed" or (binarize == "dynamic" and not dynamic):
        images = binarize_fixed(images, seed=binarize_seed, split=split)
        source += f", binarized once (fixed, seed {binarize_seed})"
    elif dynamic:
        source += ", binarized afresh every batch (dynamic)"
    else:
        source += f", {levels} levels"
    paper = name in ("binarized_mnist", "cifar10") or (name == "imagenet32" and "van den Oord" in source) or (
        name == "imagenet64" and "van den Oord" in source)
    protocol = (
        f"{source}; split {split!r}, {len(images)} images of {tuple(images.shape[1:])}"
        + ("" if limit is None else f" (first {limit} only)")
        + ("; the paper's protocol" if paper and limit is None else "; NOT the paper's protocol")
    )
    return ImageSet(name, split, torch.from_numpy(np.ascontiguousarray(images)), levels, protocol, dynamic,
                    labels=labels, num_classes=num_classes)
