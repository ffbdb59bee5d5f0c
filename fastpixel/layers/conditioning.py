"""Conditioning every layer of a model on a class label and/or a vector (van den Oord et al. 2016,
*Conditional Image Generation with PixelCNN Decoders*, eq. 4: the ``V^T h`` terms).

With ``h = [onehot(label); cond]`` (a class id in [0, K) and/or a vector of D features), block ``l``
of a model receives one bias per image, the same at every pixel:

    b_l = E_l[label] + W_l cond                                     (B, G_l)

``E_l`` (K, G_l) is a learned table (the one-hot product ``V^T onehot(label)``) and ``W_l`` (G_l, D) a
learned matrix without bias; each block adds ``b_l`` where its docstring says (a PixelCNN block to its
3x3 conv's maps, an LSTM block to its input-to-state gates, a Gated PixelCNN layer to both stacks'
pre-activation gates). The tables of all blocks are one ``nn.Embedding(K, sum G_l)`` and one
``nn.Linear(D, sum G_l, bias=False)``, split per block: one lookup and one product per batch.
Both are initialised as ``nn.Linear`` would a layer reading ``h`` (uniform, bound 1/sqrt(K + D)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class ConditionBias(nn.Module):
    """Per-block conditioning biases ``b_l = E_l[label] + W_l cond`` (see the module docstring).

    Args:
      widths: G_l of every block (its ``cond_channels``).
      num_classes: K, or None (no labels).
      cond_features: D, or None (no vector).
    """

    def __init__(self, widths: Sequence[int], *, num_classes: int | None = None, cond_features: int | None = None) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.num_classes, self.cond_features = num_classes, cond_features
        total = sum(self.widths)
        bound = 1 / math.sqrt((num_classes or 0) + (cond_features or 0))
        self.label_bias = nn.Embedding(num_classes, total) if num_classes else None
        self.cond_proj = nn.Linear(cond_features, total, bias=False) if cond_features else None
        with torch.no_grad():
            for table in (self.label_bias, self.cond_proj):
                if table is not None:
                    table.weight.uniform_(-bound, bound)

    def forward(self, labels: torch.Tensor | None, cond: torch.Tensor | None) -> list[torch.Tensor]:
        """labels (B,) int64 and/or cond (B, D) (already checked, see :func:`check_condition`)
        -> one (B, G_l) bias per block."""
        bias = None
        if self.label_bias is not None:
            bias = self.label_bias(labels)
        if self.cond_proj is not None:
            projected = self.cond_proj(cond.to(self.cond_proj.weight.dtype))
            bias = projected if bias is None else bias + projected
        return list(bias.split(self.widths, dim=1))


def check_condition_options(num_classes: object, cond_features: object) -> None:
    """num_classes and cond_features: None, or ints (>= 2 classes, >= 1 feature)."""
    for label, value, low in (("num_classes", num_classes, 2), ("cond_features", cond_features, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{label} must be None or an int >= {low}, got {value!r}")


def check_condition(
    num_classes: int | None,
    cond_features: int | None,
    labels: object,
    cond: object,
    batch: int,
    device: torch.device,
    *,
    validate: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The labels (B,) int64 and cond (B, D) a model with these options needs, on ``device``.

    labels: a (B,) integer tensor, a sequence of B ints, or one int (every image the same class).
    cond: a (B, D) float tensor, or (D,) (every image the same vector).
    An unconditional model takes neither; a conditional one needs what it was built for. With
    ``validate``, the label values are checked against [0, num_classes) (one device sync).
    """
    if num_classes is None and labels is not None:
        raise ValueError("labels given, but this model is not class-conditional (built without num_classes=)")
    if cond_features is None and cond is not None:
        raise ValueError("cond given, but this model takes no conditioning vector (built without cond_features=)")
    if num_classes is not None:
        labels = _check_labels(labels, num_classes, batch, device, validate)
    if cond_features is not None:
        cond = _check_cond(cond, cond_features, batch, device)
    return labels, cond


def _check_labels(labels: object, num_classes: int, batch: int, device: torch.device, validate: bool) -> torch.Tensor:
    expected = f"a ({batch},) integer tensor of class ids in [0, {num_classes}), a list of {batch} ints, or one int"
    if labels is None:
        raise ValueError(f"this model is class-conditional (num_classes={num_classes}): pass labels=, {expected}")
    if isinstance(labels, bool):
        raise TypeError(f"labels must be {expected}, got {labels!r}")
    if isinstance(labels, int):
        labels = torch.full((batch,), labels, dtype=torch.long)
    elif isinstance(labels, Sequence) and not isinstance(labels, str):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
            raise TypeError(f"labels must be {expected}, got a sequence holding non-ints")
        labels = torch.tensor(list(labels), dtype=torch.long)
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be {expected}, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be {expected}, got dtype {labels.dtype}")
    if labels.ndim == 0:
        labels = labels.expand(batch)
    if tuple(labels.shape) != (batch,):
        raise ValueError(f"labels must be {expected}: shape ({batch},), got {tuple(labels.shape)}")
    if validate and batch and not torch.compiler.is_compiling():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}) (num_classes={num_classes}), got values in [{low}, {high}]")
    return labels.to(device=device, dtype=torch.long)


def _check_cond(cond: object, features: int, batch: int, device: torch.device) -> torch.Tensor:
    expected = f"a ({batch}, {features}) float tensor (or ({features},), the same for every image)"
    if cond is None:
        raise ValueError(f"this model is conditioned on a vector (cond_features={features}): pass cond=, {expected}")
    if not isinstance(cond, torch.Tensor) or not cond.dtype.is_floating_point:
        raise TypeError(f"cond must be {expected}, got {type(cond).__name__ if not isinstance(cond, torch.Tensor) else cond.dtype}")
    if cond.ndim == 1:
        cond = cond.expand(batch, -1)
    if tuple(cond.shape) != (batch, features):
        raise ValueError(f"cond must be {expected}, got shape {tuple(cond.shape)}")
    return cond.to(device)
