"""Integer images -> viewable PNG grids (the sample command and the training run's sample grids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

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
    """Write uint8 (H, W, 3) as a PNG, each pixel drawn as a ``scale`` x ``scale`` block."""
    from PIL import Image

    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(image).save(path, format="PNG")
