"""The parity gate: a backend is timed only if its outputs and gradients match the reference.

For a function ``f(*inputs) -> y`` run in the benchmark dtype, the ground truth is the reference
path run on the same inputs cast to float64. Each compared tensor k (the output, then the gradient
of every floating input under one fixed random cotangent) passes when

    max |backend_k - truth_k|  <=  2 * max |torch_k - truth_k|  +  atol(dtype) * (1 + max |truth_k|)

where ``torch_k`` is the reference path run in the benchmark dtype: the backend may be at most twice
as wrong as PyTorch itself in that dtype, plus a small atol scaled to the magnitudes (the rule of
flash-attention's tests). In float64, ``torch_k`` is the truth, so only the atol remains.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from fastpixel.backend import BackendUnavailableError

ATOL = {torch.float64: 1e-10, torch.float32: 1e-6, torch.float16: 1e-4, torch.bfloat16: 1e-3}


@dataclasses.dataclass
class GateResult:
    """``status`` is "pass", "fail" or "unavailable"; errors/tolerances per compared tensor."""

    status: str
    reason: str | None = None
    errors: dict[str, float] = dataclasses.field(default_factory=dict)
    tolerances: dict[str, float] = dataclasses.field(default_factory=dict)
    shape: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cast(inputs: Sequence[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    out = []
    for t in inputs:
        if t.is_floating_point():
            out.append(t.detach().to(dtype).requires_grad_(True))
        else:
            out.append(t)
    return out


def _outputs_and_grads(fn: Callable, inputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    """[y, dL/dx for each floating input], with L = sum(y * cotangent) for a seeded cotangent."""
    y = fn(*inputs)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    cotangent = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device=y.device, dtype=y.dtype)
    leaves = [t for t in inputs if t.requires_grad]
    grads = torch.autograd.grad(y, leaves, cotangent, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)]
    return [y.detach()] + [g.detach() for g in grads]


def parity_gate(
    backend_fn: Callable,
    reference_fn: Callable,
    inputs: Sequence[torch.Tensor],
    dtype: torch.dtype,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> GateResult:
    """Compare ``backend_fn`` with ``reference_fn`` (both ``f(*inputs) -> tensor``) in ``dtype``.

    ``inputs``: the call's tensors; floating ones are cast to ``dtype`` (float64 for the truth) and
    differentiated. ``names`` labels the floating inputs in the result (default ``grad[i]``).
    A :class:`BackendUnavailableError` gives status "unavailable"; any other exception "fail".
    """
    shape = ", ".join(str(tuple(t.shape)) for t in inputs if t.is_floating_point())
    truth = _outputs_and_grads(reference_fn, _cast(inputs, torch.float64), seed)
    torch_own = truth if dtype == torch.float64 else _outputs_and_grads(reference_fn, _cast(inputs, dtype), seed)
    try:
        got = _outputs_and_grads(backend_fn, _cast(inputs, dtype), seed)
    except BackendUnavailableError as e:
        return GateResult("unavailable", str(e), shape=shape)
    except Exception as e:  # a backend that crashes fails the gate; the reason is reported
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return GateResult("fail", f"raised {type(e).__name__}: {first[:300]}", shape=shape)
    float_names = list(names) if names is not None else [f"grad[{i}]" for i in range(len(truth) - 1)]
    labels = ["output"] + [f"d/{n}" for n in float_names]
    result = GateResult("pass", shape=shape)
    for label, t, own, g in zip(labels, truth, torch_own, got):
        if g.shape != t.shape:
            return GateResult("fail", f"{label}: shape {tuple(g.shape)} != reference {tuple(t.shape)}", shape=shape)
        err = float((g.double() - t).abs().max()) if t.numel() else 0.0
        own_err = float((own.double() - t).abs().max()) if t.numel() else 0.0
        scale = float(t.abs().max()) if t.numel() else 0.0
        tol = 2 * own_err + ATOL[dtype] * (1 + scale)
        result.errors[label], result.tolerances[label] = err, tol
        if not err <= tol:  # also catches NaN
            result.status = "fail"
            result.reason = result.reason or f"{label}: max error {err:.3g} > tolerance {tol:.3g}"
    return result
