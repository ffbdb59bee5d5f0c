"""Any folder of PNG images -> one uint8 array (decoded with Pillow, a dependency of matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

SOURCE = "your own PNG files (all the same size; grey or RGB)"


def read_png(path: str | os.PathLike, *, channels: int, source: str = SOURCE) -> np.ndarray:
    """One PNG file -> uint8 (channels, H, W); colour images are converted to grey or RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    expected = "a readable PNG image"
    if not path.is_file():
        raise DataFileError(path, "file not found", expected, source)
    try:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataFileError(path, f"cannot decode ({type(err).__name__}: {err})", expected, source) from None
    return pixels[None] if channels == 1 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def read_png_folder(
    folder: str | os.PathLike, *, channels: int | None = None, limit: int | None = None, source: str = SOURCE
) -> np.ndarray:
    """Every ``*.png`` under ``folder`` (recursively, sorted by path) -> uint8 (N, C, H, W).

    channels: 1 or 3; None takes it from the first image (grey modes -> 1, anything else -> 3).
    limit: read only the first ``limit`` files (in sorted order).
    """
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(folder, "folder not found", "a folder of .png files", source)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png")[:limit]
    if not files:
        raise DataFileError(folder, "no .png files in the folder", "a folder of .png files", source)
    if channels is None:
        try:
            with Image.open(files[0]) as first:
                channels = 1 if first.mode in ("1", "L", "I", "I;16", "LA") else 3
        except Exception as err:
            raise DataFileError(files[0], f"cannot decode ({err})", "a readable PNG image", source) from None
    images = [read_png(p, channels=channels, source=source) for p in files]
    for p, image in zip(files, images):
        if image.shape != images[0].shape:
            raise DataFileError(
                p, f"size {image.shape[1:]} differs from {files[0].name}'s {images[0].shape[1:]}",
                "images all of one size", source,
            )
    return np.stack(images)
