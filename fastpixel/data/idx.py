"""MNIST / Fashion-MNIST in LeCun's idx format (``.gz`` or raw), read without torchvision.

An idx file: 2 zero bytes, a type byte (0x08 = uint8), a byte with the number of dimensions d,
then d big-endian uint32 sizes, then the values in C order. Images are idx3 (N, 28, 28) uint8.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

MNIST_SOURCE = "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
FASHION_SOURCE = (
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion), or on Debian/Ubuntu "
    "`apt install dataset-fashion-mnist`, which installs to /usr/share/datasets/fashion-mnist"
)
#: Where Debian's ``dataset-fashion-mnist`` package puts the four ``*-idx?-ubyte.gz`` files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_STEMS = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_STEMS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
_IDX_TYPES = {0x08: np.dtype(np.uint8)}


def read_idx(path: str | os.PathLike, *, source: str = MNIST_SOURCE) -> np.ndarray:
    """Read one idx file (gzip-compressed when it starts with the gzip magic) -> uint8 array."""
    path = Path(path)
    expected = "an idx file: 0x00 0x00 0x08 <ndim>, ndim big-endian uint32 sizes, then the uint8 values"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, source)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataFileError(path, f"corrupt or truncated gzip data ({err})", expected, source) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataFileError(path, f"bad idx header {raw[:4].hex() or '(empty file)'}", expected, source)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataFileError(path, f"truncated idx header (ndim={ndim}, {len(raw)} bytes)", expected, source)
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    count = int(np.prod(shape))
    if len(raw) - header != count:
        raise DataFileError(
            path, f"{len(raw) - header} value bytes after the header, the header promises {count} {shape}",
            expected, source,
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape).copy()


def find_idx_file(folder: str | os.PathLike, stem: str, *, source: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz`` (also under ``raw/``, torchvision's layout)."""
    folder = Path(folder)
    for sub in (folder, folder / "raw"):
        for name in (stem, stem + ".gz"):
            if (sub / name).is_file():
                return sub / name
    raise DataFileError(
        folder / (stem + ".gz"), "file not found (nor without .gz)", f"the idx file {stem}[.gz]", source
    )


def read_mnist_images(folder: str | os.PathLike, split: str, *, source: str = MNIST_SOURCE) -> np.ndarray:
    """The ``split`` ("train" 60k / "test" 10k) images of an MNIST-format folder -> uint8 (N, 28, 28)."""
    if split not in IMAGE_STEMS:
        raise ValueError(f"split must be one of {sorted(IMAGE_STEMS)}, got {split!r}")
    path = find_idx_file(folder, IMAGE_STEMS[split], source=source)
    images = read_idx(path, source=source)
    if images.ndim != 3:
        raise DataFileError(path, f"idx array of shape {images.shape}", "images: an idx3 file (N, H, W)", source)
    return images


def read_mnist_labels(folder: str | os.PathLike, split: str, *, source: str = MNIST_SOURCE) -> np.ndarray:
    """The ``split`` labels of an MNIST-format folder (``*-labels-idx1-ubyte``) -> uint8 (N,), the file's own ids."""
    if split not in LABEL_STEMS:
        raise ValueError(f"split must be one of {sorted(LABEL_STEMS)}, got {split!r}")
    path = find_idx_file(folder, LABEL_STEMS[split], source=source)
    labels = read_idx(path, source=source)
    if labels.ndim != 1:
        raise DataFileError(path, f"idx array of shape {labels.shape}", "labels: an idx1 file (N,)", source)
    return labels


def fashion_mnist_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` when given, else Debian's install location (the error then says how to get it)."""
    return Path(data_dir) if data_dir is not None else DEBIAN_FASHION_MNIST_DIR
