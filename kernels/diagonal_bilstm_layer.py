"""Diagonal BiLSTM layer on the Triton backend: the masked-conv kernel, then the diagonal scan kernel.

The composition of :func:`fastpixel.reference.conv_diagonal_bilstm`, each op a ``fastpixel::``
custom op (:mod:`fastpixel.kernels.masked_conv`, :mod:`fastpixel.kernels.diagonal_bilstm`).
"""

from __future__ import annotations

import torch

from fastpixel.kernels.diagonal_bilstm import diagonal_bilstm_scan
from fastpixel.kernels.masked_conv import masked_conv2d
from fastpixel.masks import MaskSpec


def conv_diagonal_bilstm(
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
    gate_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, Cin, H, W) -> (B, h, H, W); see :func:`fastpixel.reference.conv_diagonal_bilstm`."""
    gates = masked_conv2d(x, input_weight, input_bias, spec)
    if gate_bias is not None:
        gates = gates + gate_bias
    gates_lr, gates_rl = gates.chunk(2, dim=1)
    return diagonal_bilstm_scan(gates_lr, state_weight_lr, gates_rl, state_weight_rl)
