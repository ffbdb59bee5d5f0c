"""Reference Diagonal BiLSTM layer (paper section 3.2): the input-to-state conv, then both scans.

    gates = K^is * x  (+ gate_bias)                (1x1 mask-B conv to 8h maps)
    [gates_lr | gates_rl] = gates                  (4h each, [o | f | i | g])
    h = diagonal_bilstm_scan(gates_lr, K^ss_lr, gates_rl, K^ss_rl)

the composition :class:`fastpixel.layers.DiagonalBiLSTM` computes. It is an op of its own so that a
backend may compute it as one piece (the "torch" backend folds the conv into the scan's column
products, see :mod:`fastpixel.fast.diagonal_bilstm_layer`); here it is the two ops, as written.
"""

from __future__ import annotations

from typing import Callable

import torch

from fastpixel.masks import MaskSpec
from fastpixel.reference.diagonal_bilstm import diagonal_bilstm_scan
from fastpixel.reference.masked_conv import masked_conv2d


def conv_then_scan(
    conv: Callable[..., torch.Tensor],
    scan: Callable[..., torch.Tensor],
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
    gate_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The layer as one backend's two ops: ``conv`` (a ``masked_conv2d``), then ``scan`` (a ``diagonal_bilstm_scan``)."""
    gates = conv(x, input_weight, input_bias, spec)
    if gate_bias is not None:
        gates = gates + gate_bias
    gates_lr, gates_rl = gates.chunk(2, dim=1)
    return scan(gates_lr, state_weight_lr, gates_rl, state_weight_rl)


def conv_diagonal_bilstm(
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
    gate_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, Cin, H, W) -> (B, h, H, W).

    input_weight: (8h, Cin, 1, 1) masked by ``spec``; input_bias: (8h,) or None; state_weight_*:
    (4h, h, 2, 1); gate_bias: optional (B, 8h, H, W) added to the conv's output (conditioning).
    """
    return conv_then_scan(masked_conv2d, diagonal_bilstm_scan, x, input_weight, input_bias, spec,
                          state_weight_lr, state_weight_rl, gate_bias)
