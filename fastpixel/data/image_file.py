"""A user's own images in one file: ``.npz`` (key "images", or its only array), ``.npy`` or ``.png``.

``fastpixel-sample --complete --images FILE`` and ``fastpixel-evaluate --images FILE`` read it with
:func:`read_image_file`; the images are then checked as training data is
(:func:`fastpixel.training.user_data.as_image_set`: integer dtype, shape, channels, value range).
A file that is not what its name says (a text file named ``.npz``, a truncated archive, a pickle)
is one :class:`DataFileError` naming it; no pickle is ever loaded.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError
from fastpixel.data.png import read_png

SUFFIXES = (".npz", ".npy", ".png")
EXPECTED = "integer images (N, C, H, W) or (N, H, W) as .npz (key 'images') or .npy, or one .png"
SOURCE = "your own images (np.savez(path, images=array) or np.save(path, array), integers in [0, levels))"


def _npz_array(file: Path) -> np.ndarray:
    with np.load(file, allow_pickle=False) as npz:
        if not npz.files:
            raise DataFileError(file, "the npz holds no arrays", EXPECTED, SOURCE)
        if "images" not in npz.files and len(npz.files) > 1:
            raise DataFileError(file, f"no 'images' array among {npz.files}", EXPECTED, SOURCE)
        return np.asarray(npz["images" if "images" in npz.files else npz.files[0]])


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """The images in ``path`` as an array (N, C, H, W) or (N, H, W) of the file's dtype (a PNG:
    uint8 (1, C, H, W)); DataFileError naming the file for anything else."""
    file = Path(path)
    if not file.is_file():
        raise DataFileError(file, "no such file", EXPECTED, SOURCE)
    suffix = file.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(file, f"unknown file type {file.suffix!r}", EXPECTED, SOURCE)
    if suffix == ".png":
        return read_png(file)[None]
    head = file.read_bytes()[:8]
    if suffix == ".npz" and not head.startswith(b"PK"):
        raise DataFileError(file, f"cannot read it: not an npz archive (a zip file), it starts with {head!r}",
                            EXPECTED, SOURCE)
    if suffix == ".npy" and not head.startswith(b"\x93NUMPY"):
        raise DataFileError(file, f"cannot read it: not a .npy file, it starts with {head!r}", EXPECTED, SOURCE)
    try:
        array = _npz_array(file) if suffix == ".npz" else np.load(file, allow_pickle=False)
    except DataFileError:
        raise
    except ValueError as err:
        problem = ("cannot read it: it holds Python objects (a pickle), which fastpixel never loads"
                   if "pickle" in str(err) else f"cannot read it ({err})")
        raise DataFileError(file, problem, EXPECTED, SOURCE) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise DataFileError(file, f"cannot read it: truncated or corrupt ({type(err).__name__}: {err})", EXPECTED,
                            SOURCE) from None
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise DataFileError(file, f"the images are {array.dtype}", EXPECTED + " (quantise first, e.g. "
                            "np.rint(x * (levels - 1)).astype(np.uint8) for x in [0, 1])", SOURCE)
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise DataFileError(file, f"shape {array.shape}", EXPECTED + " with N >= 1", SOURCE)
    return array
