"""Layout changes between the ops' NCHW tensors and the scans' pixel-major buffers.

The scans keep one row of channels per (pixel, image): ``(..., B, C)`` with C contiguous, so that
a step is one matrix product over all the pixels it touches. Converting an NCHW map to that
layout is a transpose of each image's (C, H*W) matrix. PyTorch copies a strided 4-D permutation
element by element in the destination's order, which on a CPU reads C values one page apart per
row written (10-40x slower than memory bandwidth at these sizes); a plain 2-D transpose of a
contiguous matrix has a blocked kernel. So every conversion here is one 2-D transpose per image
into a (B, H*W, C) buffer, and the rest are copies of whole C-long rows.
"""

from __future__ import annotations

import torch


def nchw_to_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> contiguous (B, H, W, C) (the same values, channels last)."""
    batch, channels, height, width = x.shape
    out = torch.empty(batch, height * width, channels, dtype=x.dtype, device=x.device)
    flat = x.reshape(batch, channels, height * width)
    for b in range(batch):
        out[b].copy_(flat[b].t())
    return out.view(batch, height, width, channels)


def rows_to_nchw(rows: torch.Tensor) -> torch.Tensor:
    """Contiguous (B, H, W, C) -> contiguous (B, C, H, W)."""
    batch, height, width, channels = rows.shape
    out = torch.empty(batch, channels, height, width, dtype=rows.dtype, device=rows.device)
    flat_out = out.view(batch, channels, height * width)
    flat_rows = rows.reshape(batch, height * width, channels)
    for b in range(batch):
        flat_out[b].copy_(flat_rows[b].t())
    return out
