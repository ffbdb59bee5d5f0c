"""Public Diagonal BiLSTM layer op: the input-to-state conv, then both scans, on one backend.

    gates = K^is * x  (+ gate_bias)                (1x1 mask-B conv to 8h maps)
    [gates_lr | gates_rl] = gates                  (4h each, [o | f | i | g])
    h = diagonal_bilstm_scan(gates_lr, K^ss_lr, gates_rl, K^ss_rl)

composed here from the backend's ``masked_conv2d`` and ``diagonal_bilstm_scan`` for every backend,
unless the backend registered a fused implementation of the composition (``dispatch.FUSIONS``:
the ``torch`` backend folds the conv into its scan's column products,
:mod:`fastpixel.fast.diagonal_bilstm_layer`). A fusion computes the layer without a gate bias;
with one (the Multi-Scale model's conditioning) the op always composes.
"""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import fused, implementation
from fastpixel.masks import MaskSpec
from fastpixel.ops._checks import check_float_tensor, check_same_device_dtype

_OP = "conv_diagonal_bilstm"


def conv_diagonal_bilstm(
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
    gate_bias: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """One Diagonal BiLSTM: masked 1x1 input-to-state conv to 8h gates, then both diagonal scans.

    x: (B, Cin, H, W); input_weight: (8h, Cin, 1, 1) masked by ``spec``; input_bias: (8h,) or None;
    state_weight_*: (4h, h, 2, 1); gate_bias: optional (B, 8h, H, W) added to the gates
    -> (B, h, H, W).
    """
    check_float_tensor(_OP, "x", x, ndim=4)
    check_float_tensor(_OP, "input_weight", input_weight, ndim=4)
    check_float_tensor(_OP, "state_weight_lr", state_weight_lr, ndim=4)
    check_float_tensor(_OP, "state_weight_rl", state_weight_rl, ndim=4)
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{_OP}: x must have H >= 1 and W >= 1 (its 1x1 conv has no output otherwise), got shape {tuple(x.shape)}")
    four_h = state_weight_lr.shape[0]
    hidden = four_h // 4
    cin = x.shape[1]
    want = {
        "input_weight": (2 * four_h, cin, 1, 1),
        "state_weight_lr": (four_h, hidden, 2, 1),
        "state_weight_rl": (four_h, hidden, 2, 1),
    }
    got = {"input_weight": input_weight, "state_weight_lr": state_weight_lr, "state_weight_rl": state_weight_rl}
    if four_h % 4 or hidden == 0 or any(tuple(got[k].shape) != v for k, v in want.items()):
        raise ValueError(
            f"{_OP}: expected input_weight (8h, Cin, 1, 1) = {want['input_weight']} and state weights "
            f"(4h, h, 2, 1) = {want['state_weight_lr']} for x of shape {tuple(x.shape)}, got "
            f"{ {k: tuple(v.shape) for k, v in got.items()} }"
        )
    if spec.kernel_size != (1, 1) or (spec.out_channels, spec.in_channels) != (2 * four_h, cin):
        raise ValueError(f"{_OP}: spec must describe a 1x1 conv {cin} -> {2 * four_h}, got {spec}")
    tensors = [x, input_weight, state_weight_lr, state_weight_rl]
    if input_bias is not None:
        check_float_tensor(_OP, "input_bias", input_bias, ndim=1)
        if tuple(input_bias.shape) != (2 * four_h,):
            raise ValueError(f"{_OP}: input_bias must have shape ({2 * four_h},), got {tuple(input_bias.shape)}")
        tensors.append(input_bias)
    if gate_bias is not None:
        check_float_tensor(_OP, "gate_bias", gate_bias, ndim=4)
        expected = (x.shape[0], 2 * four_h, *x.shape[2:])
        if tuple(gate_bias.shape) != expected:
            raise ValueError(f"{_OP}: gate_bias must have shape {expected}, got {tuple(gate_bias.shape)}")
        tensors.append(gate_bias)
    check_same_device_dtype(_OP, tensors)
    chosen = resolve_backend(backend, *tensors, op=_OP)
    one_piece = fused("diagonal_bilstm_layer", chosen) if gate_bias is None else None
    if one_piece is not None:
        return one_piece(x, input_weight, input_bias, spec, state_weight_lr, state_weight_rl)
    return conv_then_scan(chosen, x, input_weight, input_bias, spec, state_weight_lr, state_weight_rl, gate_bias)


def conv_then_scan(
    backend: str,
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
    gate_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The layer as ``backend``'s two ops (arguments already checked): the conv, then the scan."""
    gates = implementation("masked_conv", backend)(x, input_weight, input_bias, spec)
    if gate_bias is not None:
        gates = gates + gate_bias
    gates_lr, gates_rl = gates.chunk(2, dim=1)
    return implementation("diagonal_bilstm", backend)(gates_lr, state_weight_lr, gates_rl, state_weight_rl)
