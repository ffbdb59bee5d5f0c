"""Diagonal BiLSTM layer on the Triton backend: the masked-conv kernel, then the diagonal scan kernel.

The composition of :func:`fastpixel.reference.conv_diagonal_bilstm`, each op a ``fastpixel::``
custom op (:mod:`fastpixel.kernels.masked_conv`, :mod:`fastpixel.kernels.diagonal_bilstm`).
"""

from __future__ import annotations

import torch

from fastpixel.kernels.diagonal_bilstm import diagonal_bilstm_scan
from fastpixel.kernels.masked_conv import masked_conv2d
from fastpixel.masks import MaskSpec
from fastpixel.reference.diagonal_bilstm_layer import conv_then_scan


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
    return conv_then_scan(masked_conv2d, diagonal_bilstm_scan, x, input_weight, input_bias, spec,
                          state_weight_lr, state_weight_rl, gate_bias)
