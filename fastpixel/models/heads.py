"""The two likelihood heads a model's output layer can feed, and the one predictive interface.

* ``"softmax"`` (the PixelRNN paper's, section 5.1): ``levels * C`` logits per pixel, viewed as
  (B, levels, C, H, W); log p(x) = -sum of the per-sub-pixel cross-entropies.
* ``"dmol"`` (PixelCNN++'s discretized mixture of logistics, docs/dmol.md): P = 10K maps per pixel
  for RGB (3K for grey), the layout of :mod:`fastpixel.reference.dmol`; log p(x) = -sum of
  ``ops.dmol_nll`` over the pixels.

Both give ``categorical_log_probs(out, x)``: (B, levels, C, H, W), for every sub-pixel the
log-probability of each of its values given the sub-pixels before it in ``x`` (softmax: the
log-softmax of the logits; DMoL: ``ops.dmol_log_probs``, G given x's R, B given x's R and G). The
samplers turn a head's output at one pixel into such a row (``sampling_logits``) and draw each
sub-pixel from it by the inverse CDF of one uniform (fastpixel.sampling.categorical), so a DMoL
model is sampled exactly on the grid, sub-pixel by sub-pixel, like a softmax model.

**The DMoL head of a masked model** (``head="dmol"`` on PixelCNN, Row LSTM, Diagonal BiLSTM, Gated
PixelCNN): its last 1x1 mask-B conv emits the P maps, each in the colour group of what it may see
of the current pixel (:func:`dmol_groups`): the mixture logits and R's mean and log-scale in group 0
(nothing of the pixel: the component is shared by the three channels, so its weights may not
depend on any of them), G's mean and log-scale in group 1 (R), B's in group 2 (R, G); the coupling
coefficients in the group of the colour whose mean they move: alpha (G on R, stored in R's block)
in group 1, beta (B on R, in G's block) and gamma (B on G, in B's block) in group 2. Then
p(x) = sum_k pi_k P_Rk(R) P_Gk(G; R) P_Bk(B; R, G) sums to 1 over B, then G, then R, then k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.ops.cross_entropy import pixel_cross_entropy
from fastpixel.ops.dmol import dmol_log_probs, dmol_nll
from fastpixel.reference.dmol import PARAMS_PER_MIXTURE

HEADS = ("softmax", "dmol")


def check_head(head: object, nr_logistic_mix: object) -> None:
    """head in HEADS; nr_logistic_mix a positive int."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if isinstance(nr_logistic_mix, bool) or not isinstance(nr_logistic_mix, int) or nr_logistic_mix < 1:
        raise ValueError(f"nr_logistic_mix must be an int >= 1, got {nr_logistic_mix!r}")


def dmol_channels(channels: int, nr_logistic_mix: int) -> int:
    """P, the maps of a DMoL head: 10K for RGB, 3K for grey."""
    return PARAMS_PER_MIXTURE[channels] * nr_logistic_mix


def dmol_groups(channels: int, nr_logistic_mix: int) -> tuple[int, ...]:
    """The colour group of each of the P maps (see the module docstring)."""
    k = nr_logistic_mix
    if channels == 1:
        return (0,) * (3 * k)
    coefficient_group = (1, 2, 2)  # alpha (G on R), beta (B on R), gamma (B on G)
    groups = [0] * k
    for c in range(3):
        groups += [c] * (2 * k) + [coefficient_group[c]] * k
    return tuple(groups)


def head_nll(head: str, out: torch.Tensor, x: torch.Tensor, *, levels: int, nr_logistic_mix: int,
             backend: str) -> torch.Tensor:
    """-log p(x) in nats per image, (B,), from the head's output ``out`` (the model's forward)."""
    if head == "dmol":
        return dmol_nll(out, x, levels=levels, num_mixtures=nr_logistic_mix, reduction="none", validate=False,
                        backend=backend).sum(dim=(1, 2))
    return pixel_cross_entropy(out, x, reduction="none", validate=False, backend=backend).sum(dim=(1, 2, 3))


def head_log_probs(head: str, out: torch.Tensor, x: torch.Tensor, *, levels: int,
                   nr_logistic_mix: int) -> torch.Tensor:
    """(B, levels, C, H, W) log-probabilities of every value of every sub-pixel given those before it in x."""
    if head == "dmol":
        return dmol_log_probs(out, x, levels=levels, num_mixtures=nr_logistic_mix, validate=False)
    return F.log_softmax(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out, dim=1)


def head_sampling_logits(head: str, out: torch.Tensor, x: torch.Tensor, channel: int, *, levels: int,
                         nr_logistic_mix: int) -> torch.Tensor:
    """What the samplers draw sub-pixel ``channel`` from at the pixels of ``out`` (the model's forward
    there, a softmax head's (B, levels, C, h, w)): (B, levels, h, w) logits.

    Softmax: the head's logits themselves (unchanged, so existing samples stay bit for bit what they
    were); DMoL: the log-probabilities given the pixel's channels before ``channel`` in ``x`` (the
    only ones read).
    """
    if head == "dmol":
        return dmol_log_probs(out, x, levels=levels, num_mixtures=nr_logistic_mix, channel=channel, validate=False)
    return out[:, :, channel]  # (B, levels, C, h, w) -> (B, levels, h, w)
