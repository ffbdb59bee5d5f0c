"""Public per-sub-pixel softmax cross-entropy op (the models' NLL in nats)."""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import implementation
from fastpixel.ops._checks import check_float_tensor
from fastpixel.reference.cross_entropy import REDUCTIONS

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def pixel_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "sum",
    *,
    validate: bool = True,
    backend: str | None = None,
    inplace_backward: bool = False,
) -> torch.Tensor:
    """-log p(targets) under a softmax over dim 1 of ``logits``, in nats.

    logits: (B, L, C, H, W); targets: (B, C, H, W) integers in [0, L).
    reduction: "none" -> (B, C, H, W); "sum" or "mean" -> scalar.
    validate: check that targets lie in [0, L) and raise ValueError otherwise, at the cost of one
      device sync: before the reference runs (host min/max), or after the Triton kernel, which
      counts bad targets on the device. validate=False: no sync at all (CUDA-graph safe); the
      Triton kernel then gives a bad target a NaN loss, the reference fails inside ``gather``.
      Inside ``torch.compile`` the check is skipped (as with validate=False): a graph has no syncs.
    inplace_backward: Triton only (the reference ignores it): write the gradient over ``logits``
      in the forward, saving an L*N buffer; the logits' values are lost and the graph can be
      back-propagated once.
    """
    check_float_tensor("pixel_cross_entropy", "logits", logits, ndim=5)
    if not isinstance(targets, torch.Tensor) or targets.dtype not in INTEGER_DTYPES:
        got = targets.dtype if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise TypeError(f"pixel_cross_entropy: targets must be an integer tensor, got {got}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"pixel_cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    b, levels, c, h, w = logits.shape
    if tuple(targets.shape) != (b, c, h, w):
        raise ValueError(
            f"pixel_cross_entropy: targets must have shape (B, C, H, W) = {(b, c, h, w)} to match logits "
            f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    if targets.device != logits.device:
        raise ValueError(f"pixel_cross_entropy: targets on {targets.device} but logits on {logits.device}")
    chosen = resolve_backend(backend, logits, op="cross_entropy")
    validate = validate and not torch.compiler.is_compiling()  # a sync has no place in a graph
    if chosen == "triton":
        kernel = implementation("cross_entropy", "triton")
        return kernel(logits, targets, reduction, validate=validate, inplace_backward=inplace_backward)
    if validate and targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= levels):
        raise ValueError(
            f"pixel_cross_entropy: targets must lie in [0, {levels}), got values in "
            f"[{int(targets.min())}, {int(targets.max())}]"
        )
    return implementation("cross_entropy", chosen)(logits, targets, reduction)
