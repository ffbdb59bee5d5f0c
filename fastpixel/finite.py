"""Non-finite weights: found before anything is sampled, scored or saved from them.

A model whose weights hold NaN or inf samples all-zero images and scores NaN without any error;
:func:`check_finite_weights` turns that into one :class:`NonFiniteWeightsError` naming the first bad
tensor, raised by sampling, evaluation and saving alike (and by the training loop before every save).
"""

from __future__ import annotations

from typing import Any

import torch


class NonFiniteWeightsError(ValueError):
    """A model (or a state dict) holds NaN or inf where a finite weight was needed."""


def first_non_finite(named: dict[str, Any]) -> str | None:
    """The name of the first floating tensor holding a NaN or an infinity in nested state dicts."""
    stack = list(named.items())
    while stack:
        name, value = stack.pop(0)
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return name
        elif isinstance(value, dict):
            stack.extend((f"{name}.{k}", v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
    return None


def check_finite_weights(model: torch.nn.Module | dict[str, Any], doing: str) -> None:
    """NonFiniteWeightsError ("refusing to <doing>: weight <name> holds NaN or inf ...") unless every
    floating weight of ``model`` (a module or a state dict) is finite."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    bad = first_non_finite(dict(state))
    if bad is not None:
        raise NonFiniteWeightsError(f"refusing to {doing}: weight {bad!r} holds NaN or inf (a diverged or "
                                    f"corrupted model); load a checkpoint written before it diverged")
