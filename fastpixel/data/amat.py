"""The paper's binarized MNIST (Larochelle & Murray, 2011): ``binarized_mnist_{train,valid,test}.amat``.

One image per line: 784 space-separated 0/1 values in raster order (50k / 10k / 10k lines). The
binarization is fixed (sampled once by the authors), which is what makes numbers comparable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

SOURCE = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"
SPLITS = ("train", "valid", "test")
PIXELS = 28 * 28


def amat_path(folder: str | os.PathLike, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"binarized MNIST split must be one of {SPLITS}, got {split!r}")
    return Path(folder) / f"binarized_mnist_{split}.amat"


def read_amat(path: str | os.PathLike, *, source: str = SOURCE) -> np.ndarray:
    """One ``.amat`` file -> uint8 (N, 28, 28) of 0/1."""
    path = Path(path)
    expected = f"text lines of {PIXELS} space-separated 0/1 values"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, source)
    rows = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                values = np.array(line.split(), dtype=np.float64)
            except ValueError:
                raise DataFileError(path, f"line {number} has a non-numeric value", expected, source) from None
            if values.size != PIXELS:
                raise DataFileError(path, f"line {number} has {values.size} values (truncated?)", expected, source)
            if not np.all((values == 0) | (values == 1)):
                raise DataFileError(path, f"line {number} has values other than 0 and 1", expected, source)
            rows.append(values.astype(np.uint8))
    if not rows:
        raise DataFileError(path, "no images in the file", expected, source)
    return np.stack(rows).reshape(-1, 28, 28)
