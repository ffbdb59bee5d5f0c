"""Integer images -> viewable PNG grids (the sample command, the training run's sample grids, and
:func:`save_image_grid`, public as ``fastpixel.save_image_grid``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from fastpixel.atomic import write_bytes_atomically

#: Colour of sub-pixels a completion grid hides from the model.
HIDDEN_RGB = (90, 90, 140)


def to_rgb8(images: torch.Tensor, levels: int, known: torch.Tensor | None = None) -> np.ndarray:
    """int (N, C, H, W) in [0, levels) -> uint8 (N, H, W, 3); unknown sub-pixels drawn mid-grey-blue."""
    x = images.detach().cpu().double() * (255.0 / (levels - 1))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x.round().clamp(0, 255).to(torch.uint8)
    if known is not None:
        hidden = ~torch.broadcast_to(known.cpu(), images.shape).all(dim=1)  # (N, H, W)
        x = x.permute(0, 2, 3, 1).clone()
        x[hidden] = torch.tensor(HIDDEN_RGB, dtype=torch.uint8)
        return x.numpy()
    return x.permute(0, 2, 3, 1).numpy()


def grid_shape(num: int, height: int, width: int, columns: int, pad: int = 1) -> tuple[int, int]:
    """(rows, cols) in pixels of the grid :func:`grid` draws for ``num`` tiles of height x width."""
    rows = -(-num // columns)
    return rows * (height + pad) + pad, columns * (width + pad) + pad


def grid(tiles: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """uint8 (N, H, W, 3) -> one uint8 image of the tiles in rows of ``columns``, ``pad`` px apart."""
    n, h, w, _ = tiles.shape
    out = np.full((*grid_shape(n, h, w, columns, pad), 3), 255, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tiles[k]
    return out


def default_columns(num: int) -> int:
    """About sqrt(num) columns: a roughly square grid."""
    return max(1, int(round(num**0.5)))


def save_png(path: str | Path, image: np.ndarray, scale: int = 1) -> None:
    """Write uint8 (H, W, 3) as a PNG, each pixel drawn as a ``scale`` x ``scale`` block; atomically
    (encoded in memory, then a temporary file renamed: a full disk is a DiskFullError, no torn PNG)."""
    from PIL import Image

    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    write_bytes_atomically(path, buffer.getbuffer())


def save_image_grid(images: torch.Tensor | np.ndarray, path: str | os.PathLike, *, levels: int | None = None,
                    columns: int | None = None, scale: int = 4, overwrite: bool = False) -> Path:
    """Write integer images as one PNG grid (what ``fastpixel-sample`` draws); return the path.

    images: integers (N, C, H, W) or (N, H, W), C = 1 (grey) or 3 (RGB), in [0, levels) -- e.g.
      ``fastpixel.sample(...)``'s output. levels: values per sub-pixel (default: 2 when every
      value is 0 or 1, else 256). columns: tiles per row (default about sqrt(N)). scale: each
      pixel drawn as a scale x scale block (1..64).
    overwrite: replace an existing file at ``path`` (refused otherwise). Written atomically.

    >>> images = fastpixel.sample(model, 16, height=28, width=28)
    >>> fastpixel.save_image_grid(images, "samples.png", levels=model.levels)
    """
    from fastpixel.output_paths import check_output_file
    from fastpixel.training.rules import check_option
    from fastpixel.validation import check_images, check_levels

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images[:, None]
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"save_image_grid: expected integer images (N, C, H, W) with C = 1 or 3, or (N, H, W); "
                         f"got {getattr(images, 'shape', type(images).__name__)}")
    if images.shape[0] == 0:
        raise ValueError("save_image_grid: no images (N = 0)")
    if levels is None:
        levels = 2 if images.numel() and int(images.max()) <= 1 else 256
    check_levels(levels)
    check_images(images, channels=images.shape[1], levels=levels)
    check_option("columns", columns)
    check_option("scale", scale)
    check_option("overwrite", overwrite)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_image_grid: {path} must end in .png (the grid is written as a PNG)")
    check_output_file(path, overwrite=overwrite, label="save_image_grid")
    save_png(path, grid(to_rgb8(images, levels), columns=columns or default_columns(images.shape[0])), scale)
    return path
