"""Layout changes between the ops' NCHW tensors and the scans' batch-innermost buffers.

The scans keep every map as ``(channels, ..., B)`` with the batch innermost: the pixels a scan
step touches (all images of some rows) are then one contiguous run per channel, a step's
state-to-state product is one matrix product ``(4h, h) @ (h, pixels)``, and the elementwise
cell runs over long contiguous rows. Converting an NCHW map is one 2-D transpose of the
(B, C*H*W) matrix, which PyTorch copies with a blocked kernel (a 4-D permuted copy is done
element by element in the destination's order and is many times slower on a CPU).
"""

from __future__ import annotations

import torch

from fastpixel.fast.workspace import scratch


def nchw_to_batch_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> contiguous (C, H, W, B), a scratch buffer (see :mod:`fastpixel.fast.workspace`)."""
    batch, channels, height, width = x.shape
    out = scratch((channels, height, width, batch), x.dtype, x.device)
    out.view(channels * height * width, batch).copy_(x.reshape(batch, channels * height * width).t())
    return out


def batch_last_to_nchw(x: torch.Tensor) -> torch.Tensor:
    """Contiguous (C, H, W, B) -> contiguous (B, C, H, W), from the pool (safe to return to a caller:
    the pool reuses a buffer only once nothing references it)."""
    channels, height, width, batch = x.shape
    out = scratch((batch, channels, height, width), x.dtype, x.device)
    out.view(batch, channels * height * width).copy_(x.reshape(channels * height * width, batch).t())
    return out
