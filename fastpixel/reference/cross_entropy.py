"""Reference per-sub-pixel softmax cross-entropy: the exact NLL of the paper's discrete model.

Each sub-pixel value x in [0, L) gets a categorical distribution over the L levels (L = 256 for
natural images, 2 for binarized MNIST, where the 2-way softmax equals the paper's sigmoid):

    loss[b, c, r, j] = -log softmax(logits[b, :, c, r, j])[x[b, c, r, j]]
                     = logsumexp_l logits[b, l, c, r, j] - logits[b, x, c, r, j]

in nats, computed in float32 at least (float64 stays float64).
"""

from __future__ import annotations

import torch

REDUCTIONS = ("none", "sum", "mean")


def pixel_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """logits: (B, L, C, H, W); targets: (B, C, H, W) integers in [0, L).

    Returns (B, C, H, W) for reduction="none", else the sum or mean over every sub-pixel, in the
    logits' dtype promoted to at least float32.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    log_probs = torch.log_softmax(logits.to(compute_dtype), dim=1)
    loss = -log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss
