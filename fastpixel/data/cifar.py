"""CIFAR-10: the binary version (``cifar-10-batches-bin``); the pickle version only on request.

Binary record: 1 label byte, then 3072 bytes: the 32x32 red plane, green plane, blue plane, each
row-major. Train = ``data_batch_1..5.bin`` (50k), test = ``test_batch.bin`` (10k). The python
version (``cifar-10-batches-py``) is a pickle, and unpickling a file runs code from it: it is read
only with ``allow_pickle=True`` (``--allow-pickle``), for files you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (the 'CIFAR-10 binary version')"
PICKLE_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
RECORD = 1 + 3 * 32 * 32
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_cifar_binary(path: str | os.PathLike) -> np.ndarray:
    """One binary batch file -> uint8 (N, 3, 32, 32)."""
    path = Path(path)
    expected = f"records of {RECORD} bytes (1 label byte + 3x32x32 pixel bytes)"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, SOURCE)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataFileError(path, f"{raw.size} bytes is not a whole number of records (truncated?)", expected, SOURCE)
    records = raw.reshape(-1, RECORD)
    if records[:, 0].max() > 9:
        raise DataFileError(path, f"label byte {int(records[:, 0].max())} > 9", expected, SOURCE)
    return records[:, 1:].reshape(-1, 3, 32, 32).copy()


def read_cifar_pickle(path: str | os.PathLike, *, allow_pickle: bool = False) -> np.ndarray:
    """One python-version batch (a pickle) -> uint8 (N, 3, 32, 32); needs ``allow_pickle=True``."""
    path = Path(path)
    expected = "a pickled dict with b'data': uint8 (N, 3072)"
    if not allow_pickle:
        raise PermissionError(
            f"{path}: the python version of CIFAR-10 is a pickle and loading it runs code from the file; "
            f"pass allow_pickle=True (--allow-pickle) if you trust it, or use the binary version: {SOURCE}"
        )
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, PICKLE_SOURCE)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
    except Exception as err:  # any unpickling failure means a corrupt file
        raise DataFileError(path, f"cannot unpickle ({type(err).__name__}: {err})", expected, PICKLE_SOURCE) from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataFileError(path, f"b'data' has shape {data.shape}", expected, PICKLE_SOURCE)
    return data.reshape(-1, 3, 32, 32)


def read_cifar10_labels(folder: str | os.PathLike, split: str, *, allow_pickle: bool = False) -> np.ndarray:
    """The class (0-9, CIFAR-10's own label byte / ``b'labels'``) of every ``split`` image -> uint8 (N,),
    in the order :func:`read_cifar10` reads the images."""
    if split not in FILES:
        raise ValueError(f"CIFAR-10 split must be one of {sorted(FILES)}, got {split!r}")
    folder = Path(folder)
    for sub in (folder, folder / "cifar-10-batches-bin"):
        if (sub / (FILES[split][0] + ".bin")).is_file():
            return np.concatenate([np.fromfile(sub / (name + ".bin"), dtype=np.uint8).reshape(-1, RECORD)[:, 0]
                                   for name in FILES[split]])
    for sub in (folder, folder / "cifar-10-batches-py"):
        if (sub / FILES[split][0]).is_file():
            if not allow_pickle:
                raise PermissionError(f"{sub}: the python version of CIFAR-10 is a pickle; pass allow_pickle=True")
            labels = []
            for name in FILES[split]:
                with open(sub / name, "rb") as f:
                    labels.append(np.asarray(pickle.load(f, encoding="bytes")[b"labels"], dtype=np.uint8))
            return np.concatenate(labels)
    raise DataFileError(
        folder / "cifar-10-batches-bin" / (FILES[split][0] + ".bin"), "file not found",
        "the CIFAR-10 binary batches data_batch_1..5.bin and test_batch.bin", SOURCE,
    )


def read_cifar10(folder: str | os.PathLike, split: str, *, allow_pickle: bool = False) -> np.ndarray:
    """The ``split`` of CIFAR-10 found in ``folder`` (or its ``cifar-10-batches-{bin,py}``) -> (N, 3, 32, 32)."""
    if split not in FILES:
        raise ValueError(f"CIFAR-10 split must be one of {sorted(FILES)}, got {split!r}")
    folder = Path(folder)
    for sub in (folder, folder / "cifar-10-batches-bin"):
        if (sub / (FILES[split][0] + ".bin")).is_file():
            return np.concatenate([read_cifar_binary(sub / (name + ".bin")) for name in FILES[split]])
    for sub in (folder, folder / "cifar-10-batches-py"):
        if (sub / FILES[split][0]).is_file():
            return np.concatenate([read_cifar_pickle(sub / name, allow_pickle=allow_pickle) for name in FILES[split]])
    raise DataFileError(
        folder / "cifar-10-batches-bin" / (FILES[split][0] + ".bin"), "file not found",
        "the CIFAR-10 binary batches data_batch_1..5.bin and test_batch.bin", SOURCE,
    )
