"""Public Diagonal BiLSTM scan op: validates, then runs the chosen backend (see fastpixel.dispatch)."""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import implementation
from fastpixel.ops._checks import check_float_tensor, check_same_device_dtype


def diagonal_bilstm_scan(
    input_gates_lr: torch.Tensor,
    state_weight_lr: torch.Tensor,
    input_gates_rl: torch.Tensor,
    state_weight_rl: torch.Tensor,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Both directions of the Diagonal BiLSTM; the right-to-left map shifted down one row and added.

    input_gates_*: (B, 4h, H, W); state_weight_*: (4h, h, 2, 1) -> (B, h, H, W).
    See :func:`fastpixel.reference.diagonal_bilstm_scan`.
    """
    tensors = [input_gates_lr, state_weight_lr, input_gates_rl, state_weight_rl]
    for name, t in zip(("input_gates_lr", "state_weight_lr", "input_gates_rl", "state_weight_rl"), tensors):
        check_float_tensor("diagonal_bilstm_scan", name, t, ndim=4)
    four_h = input_gates_lr.shape[1]
    want_w = (four_h, four_h // 4, 2, 1)
    if (
        four_h % 4
        or input_gates_rl.shape != input_gates_lr.shape
        or tuple(state_weight_lr.shape) != want_w
        or tuple(state_weight_rl.shape) != want_w
    ):
        raise ValueError(
            "diagonal_bilstm_scan: expected input gates (B, 4h, H, W) of equal shape and state weights "
            f"(4h, h, 2, 1), got {[tuple(t.shape) for t in tensors]}"
        )
    check_same_device_dtype("diagonal_bilstm_scan", tensors)
    return implementation("diagonal_bilstm", resolve_backend(backend, *tensors, op="diagonal_bilstm"))(*tensors)
