"""Held-out likelihood of a whole split: per-image NLLs summed in float64."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm

from fastpixel.data.datasets import ImageSet
from fastpixel.distributed import DistInfo, all_reduce_sum
from fastpixel.finite import check_finite_weights
from fastpixel.metrics import bits_per_dim


@torch.no_grad()
def evaluate_nll(
    model: torch.nn.Module, data: ImageSet, *, batch_size: int = 256, device: str | torch.device = "cpu",
    info: DistInfo | None = None, progress: bool = False,
) -> dict:
    """NLL of every image of ``data`` -> {"nats_per_image", "bits_per_dim", "images"}.

    Weights holding NaN or inf are refused (NonFiniteWeightsError): their NLL would be NaN.
    Under data parallelism (``info.world > 1``) rank r scores images r, r + w, ... and the sums
    are all-reduced, so every rank returns the whole split's figure.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if len(data) == 0:
        raise ValueError(f"{data.name} {data.split!r}: no images to evaluate")
    check_finite_weights(model, "evaluate")
    was_training = model.training
    model.eval()
    rank, world = (info.rank, info.world) if info is not None else (0, 1)
    index = torch.arange(rank, len(data), world)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of nats, images]
    batches = range(0, len(index), batch_size)
    try:
        for start in tqdm(batches, desc=f"eval {data.split}",
                          disable=not (progress and rank == 0 and sys.stderr.isatty())):
            rows = index[start:start + batch_size]
            x = data.images[rows].to(device=device, dtype=torch.long)
            if getattr(model, "conditional", False):  # -log p(x | y) under each image's own label
                if data.labels is None:
                    raise ValueError(f"{data.name} {data.split!r} has no labels: a class-conditional model "
                                     "needs them to be evaluated")
                nll = model.nll(x, labels=data.labels[rows].to(device), validate=False)
            else:
                nll = model.nll(x, validate=False)  # (B,) float32
            total[0] += nll.double().sum()
            total[1] += x.shape[0]
    finally:
        model.train(was_training)
    if info is not None:
        all_reduce_sum(total, info)
    nats = float(total[0] / total[1])
    return {"nats_per_image": nats, "bits_per_dim": float(bits_per_dim(nats, data.dims)), "images": int(total[1])}
