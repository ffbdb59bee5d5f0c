"""Downsampled ImageNet 32x32 / 64x64, as PNG folders or as npz batches.

Two different data sets go by this name, and their likelihoods are not comparable:
  * the PixelRNN paper's (van den Oord et al., 2016), from https://image-net.org/download-images
    ("Downsampled ImageNet 32x32 / 64x64"): ``train_32x32/*.png`` and ``valid_32x32/*.png``
    (``train_64x64`` / ``valid_64x64``); no labels;
  * Chrabaszcz et al. (2017), "A Downsampled Variant of ImageNet" (different resizing):
    ``train_data_batch_1..10.npz`` (32x32; ``Imagenet64_train_part*``: ``train_data_batch_*.npz``
    again) and ``val_data.npz``, each holding ``data``: uint8 (N, 3 * S * S), planes R, G, B, and
    ``labels``: the class of each row, **1-based** (1..1000) in the published files.
The reader says which one it found in the protocol text. :func:`read_imagenet_labels` returns the
npz labels **0-based** (the file's minus 1: 0..999), in the order :func:`read_imagenet` reads the
images; the PNG folders have none.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError
from fastpixel.data.png import read_png_folder

SOURCE = (
    "https://image-net.org/download-images (Downsampled ImageNet {size}x{size}: the PixelRNN paper's "
    "train_{size}x{size}/valid_{size}x{size} PNG folders, or Imagenet{size}_*_npz)"
)
PNG_FOLDERS = {"train": "train_{size}x{size}", "test": "valid_{size}x{size}"}
NPZ_GLOBS = {"train": "train_data_batch_*.npz", "test": "val_data.npz"}
#: Classes of the npz version; its files number them 1..NUM_CLASSES, fastpixel 0..NUM_CLASSES - 1.
NUM_CLASSES = 1000
_READ_ERRORS = (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError)


def read_imagenet_npz(path: str | os.PathLike, size: int) -> np.ndarray:
    """One npz batch of Chrabaszcz et al. -> uint8 (N, 3, size, size)."""
    path = Path(path)
    source = SOURCE.format(size=size)
    expected = f"an npz with 'data': uint8 (N, {3 * size * size})"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, source)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = np.asarray(npz["data"])
    except _READ_ERRORS as err:
        raise DataFileError(path, f"cannot read ({type(err).__name__}: {err})", expected, source) from None
    if data.ndim != 2 or data.shape[1] != 3 * size * size or data.dtype != np.uint8:
        raise DataFileError(path, f"'data' is {data.dtype} {data.shape}", expected, source)
    return data.reshape(-1, 3, size, size)


def _rows(npz: np.lib.npyio.NpzFile, key: str) -> int:
    """Rows of the npz member ``key``, from its .npy header where it can be read without loading the array."""
    try:
        with npz.zip.open(key + ".npy") as f:
            version = np.lib.format.read_magic(f)
            if version in ((1, 0), (2, 0)):
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape = read(f)[0]
                if shape:
                    return int(shape[0])
    except (AttributeError, *_READ_ERRORS):
        pass
    return len(np.asarray(npz[key]))


def read_imagenet_npz_labels(path: str | os.PathLike, size: int) -> np.ndarray | None:
    """One npz batch's ``labels`` -> int64 (N,) class ids **0-based** (0..999: the file's, which are
    1-based, minus 1), one per row of its ``data``; None when the file has no ``labels``."""
    path = Path(path)
    source = SOURCE.format(size=size)
    expected = (f"'labels': integer class ids 1..{NUM_CLASSES} (1-based, as published), a 1-D array "
                "with one per row of 'data'")
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, source)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "labels" not in npz.files:
                return None
            labels = np.asarray(npz["labels"])
            rows = _rows(npz, "data")
    except _READ_ERRORS as err:
        raise DataFileError(path, f"cannot read ({type(err).__name__}: {err})", expected, source) from None
    if labels.ndim != 1:
        raise DataFileError(path, f"'labels' has shape {labels.shape}", expected, source)
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(path, f"'labels' is {labels.dtype}, not integers", expected, source)
    if len(labels) != rows:
        raise DataFileError(path, f"{len(labels)} labels for the {rows} rows of 'data'", expected, source)
    if len(labels) and (int(labels.min()) < 1 or int(labels.max()) > NUM_CLASSES):
        bad = int(labels.min()) if int(labels.min()) < 1 else int(labels.max())
        where = int(np.flatnonzero(labels == bad)[0])
        span = f"{int(labels.min())}..{int(labels.max())}"
        raise DataFileError(path, f"label {bad} (row {where}; the labels span {span})", expected, source)
    return labels.astype(np.int64) - 1


def _check(split: str, size: int) -> None:
    if split not in PNG_FOLDERS:
        raise ValueError(f"ImageNet split must be one of {sorted(PNG_FOLDERS)}, got {split!r}")
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64, got {size}")


def _batch_order(path: Path) -> tuple[int, str]:
    """train_data_batch_2 before train_data_batch_10: by the batch number, then by name."""
    number = re.search(r"(\d+)\.npz$", path.name)
    return (int(number.group(1)) if number else 0, path.name)


def _npz_files(folder: Path, split: str, size: int, png_dir: Path) -> list[Path]:
    """The split's npz batches in the order they are read (by batch number: 1, 2, ..., 10), in
    ``folder`` or in its subfolders one level down (the 64x64 training batches are published as
    Imagenet64_train_part1/ and _part2/), or the not-found error; a batch found twice is refused."""
    pattern = NPZ_GLOBS[split]
    files = sorted([*folder.glob(pattern), *folder.glob(f"*/{pattern}")], key=_batch_order)
    if not files:
        raise DataFileError(
            png_dir, "folder not found (and no " + pattern + " either)",
            f"a {png_dir.name}/ folder of PNGs or {pattern} (in it or in its subfolders)", SOURCE.format(size=size),
        )
    names = [p.name for p in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataFileError(folder, f"{', '.join(twice)} found more than once ({', '.join(str(p) for p in files if p.name in twice)})",
                            f"each {pattern} once, in {folder} or one of its subfolders", SOURCE.format(size=size))
    return files


def read_imagenet(folder: str | os.PathLike, split: str, size: int) -> tuple[np.ndarray, str]:
    """The ``split`` ("train"/"test") of downsampled ImageNet in ``folder`` -> ((N, 3, S, S), version)."""
    _check(split, size)
    folder = Path(folder)
    source = SOURCE.format(size=size)
    png_dir = folder / PNG_FOLDERS[split].format(size=size)
    if png_dir.is_dir():
        images = read_png_folder(png_dir, channels=3, source=source)
        if images.shape[2:] != (size, size):
            raise DataFileError(png_dir, f"images of size {images.shape[2:]}", f"{size}x{size} images", source)
        return images, f"van den Oord et al. 2016 PNG folders ({png_dir.name})"
    files = _npz_files(folder, split, size, png_dir)
    return np.concatenate([read_imagenet_npz(p, size) for p in files]), "Chrabaszcz et al. 2017 npz batches"


def read_imagenet_labels(folder: str | os.PathLike, split: str, size: int) -> np.ndarray | None:
    """The class of every ``split`` image -> int64 (N,) **0-based** ids 0..999 (the npz ``labels``,
    which are 1-based, minus 1), in the order :func:`read_imagenet` reads the images (every batch of
    the split, by batch number); None for the PNG folders (they have no labels) and for npz
    batches without ``labels``. A split whose batches are some labelled, some not, is refused."""
    _check(split, size)
    folder = Path(folder)
    png_dir = folder / PNG_FOLDERS[split].format(size=size)
    if png_dir.is_dir():
        return None
    files = _npz_files(folder, split, size, png_dir)
    labels = [read_imagenet_npz_labels(p, size) for p in files]
    unlabelled = [p.name for p, ids in zip(files, labels) if ids is None]
    if not unlabelled:
        return np.concatenate(labels)
    if len(unlabelled) == len(files):
        return None
    labelled = [p.name for p, ids in zip(files, labels) if ids is not None]
    raise DataFileError(
        folder / unlabelled[0],
        f"no 'labels' in {', '.join(unlabelled)}, while {', '.join(labelled)} of the same split have them",
        f"'labels' in every {NPZ_GLOBS[split]} of the split, or in none (then its images are read without labels)",
        SOURCE.format(size=size),
    )
