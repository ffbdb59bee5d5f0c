"""Public Row LSTM scan op: validates, then runs the chosen backend (see fastpixel.dispatch)."""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import implementation
from fastpixel.ops._checks import check_float_tensor, check_same_device_dtype


def row_lstm_scan(input_gates: torch.Tensor, state_weight: torch.Tensor, *, backend: str | None = None) -> torch.Tensor:
    """input_gates: (B, 4h, H, W); state_weight: (4h, h, 1, 3) -> h: (B, h, H, W).

    See :func:`fastpixel.reference.row_lstm_scan` for the recurrence.
    """
    check_float_tensor("row_lstm_scan", "input_gates", input_gates, ndim=4)
    check_float_tensor("row_lstm_scan", "state_weight", state_weight, ndim=4)
    four_h = input_gates.shape[1]
    if four_h % 4 or tuple(state_weight.shape) != (four_h, four_h // 4, 1, 3):
        raise ValueError(
            "row_lstm_scan: expected input_gates (B, 4h, H, W) and state_weight (4h, h, 1, 3), got "
            f"{tuple(input_gates.shape)} and {tuple(state_weight.shape)}"
        )
    check_same_device_dtype("row_lstm_scan", [input_gates, state_weight])
    chosen = resolve_backend(backend, input_gates, state_weight, op="row_lstm")
    return implementation("row_lstm", chosen)(input_gates, state_weight)
