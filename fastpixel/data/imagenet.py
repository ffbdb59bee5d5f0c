"""Downsampled ImageNet 32x32 / 64x64, as PNG folders or as npz batches.

Two different data sets go by this name, and their likelihoods are not comparable:
  * the PixelRNN paper's (van den Oord et al., 2016), from https://image-net.org/download-images
    ("Downsampled ImageNet 32x32 / 64x64"): ``train_32x32/*.png`` and ``valid_32x32/*.png``
    (``train_64x64`` / ``valid_64x64``);
  * Chrabaszcz et al. (2017), "A Downsampled Variant of ImageNet" (different resizing):
    ``train_data_batch_1..10.npz`` (32x32; ``Imagenet64_train_part*``: ``train_data_batch_*.npz``
    again) and ``val_data.npz``, each holding ``data``: uint8 (N, 3 * S * S), planes R, G, B.
The reader says which one it found in the protocol text.
"""

from __future__ import annotations

import os
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
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise DataFileError(path, f"cannot read ({type(err).__name__}: {err})", expected, source) from None
    if data.ndim != 2 or data.shape[1] != 3 * size * size or data.dtype != np.uint8:
        raise DataFileError(path, f"'data' is {data.dtype} {data.shape}", expected, source)
    return data.reshape(-1, 3, size, size)


def read_imagenet(folder: str | os.PathLike, split: str, size: int) -> tuple[np.ndarray, str]:
    """The ``split`` ("train"/"test") of downsampled ImageNet in ``folder`` -> ((N, 3, S, S), version)."""
    if split not in PNG_FOLDERS:
        raise ValueError(f"ImageNet split must be one of {sorted(PNG_FOLDERS)}, got {split!r}")
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64, got {size}")
    folder = Path(folder)
    source = SOURCE.format(size=size)
    png_dir = folder / PNG_FOLDERS[split].format(size=size)
    if png_dir.is_dir():
        images = read_png_folder(png_dir, channels=3, source=source)
        if images.shape[2:] != (size, size):
            raise DataFileError(png_dir, f"images of size {images.shape[2:]}", f"{size}x{size} images", source)
        return images, f"van den Oord et al. 2016 PNG folders ({png_dir.name})"
    files = sorted(folder.glob(NPZ_GLOBS[split]))
    if files:
        return np.concatenate([read_imagenet_npz(p, size) for p in files]), "Chrabaszcz et al. 2017 npz batches"
    raise DataFileError(
        png_dir, "folder not found (and no " + NPZ_GLOBS[split] + " either)",
        f"a {png_dir.name}/ folder of PNGs or {NPZ_GLOBS[split]}", source,
    )
