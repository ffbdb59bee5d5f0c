"""The backends a case is run on, each behind the parity gate.

  * ``eager``          -- the reference path, eager PyTorch: the baseline every speed-up is measured against;
  * ``compile``        -- ``torch.compile`` as a user calls it (default options, inductor) on the
    reference path: the op call compiled, or for the model ``torch.compile(model)`` of a model built
    with ``backend="reference"`` (bench/cases.py: nothing is rewritten inside the modules);
  * ``compile+triton`` -- the same with ``backend="triton"``: the compiled graph calls the kernels
    (registered ``fastpixel::`` ops, opaque to inductor) and inductor compiles what lies between them;
  * ``triton``         -- fastpixel's Triton kernels, eager. On a machine without CUDA the triton columns
    run only under Triton's CPU interpreter: the gate runs (on a tiny case), timing never does;
  * ``torch``          -- fastpixel's hand-written pure-PyTorch ops (:mod:`fastpixel.fast`), eager.

:func:`run_backend` gates a backend, then times its forward pass (autograd recording, as in
training) and its forward+backward pass (``torch.autograd.grad`` of the output under a fixed random cotangent).
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from fastpixel.backend import triton_installed, triton_interpreter_enabled

from bench.accounting import roofline_fraction
from bench.cases import Case
from bench.parity import GateResult, parity_gate
from bench.timing import Timing, time_fn

BACKENDS = ("eager", "compile", "compile+triton", "triton", "torch")
MODES = ("fwd", "fwd_bwd")


def _configure_dynamo() -> None:
    """Every case compiles its own graphs; raise the recompile limit so none silently falls back to eager."""
    import torch._dynamo

    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 1024))


def backend_fn(name: str, case: Case) -> Callable[..., torch.Tensor]:
    """The callable that runs ``case`` on backend ``name``."""
    if name == "eager":
        return case.fn("reference")
    if name in ("compile", "compile+triton"):
        _configure_dynamo()
        return case.compiled("triton" if name == "compile+triton" else "reference")
    if name == "triton":
        return case.fn("triton")
    if name == "torch":
        return case.fn("torch")
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def triton_timing_note(device: torch.device) -> str | None:
    """Why triton is gated but not timed here (None when it is timed: CUDA)."""
    if device.type == "cuda":
        return None
    if not triton_installed():
        return "triton is not installed"
    if not triton_interpreter_enabled():
        return "no CUDA device and TRITON_INTERPRET is off: triton cannot run here"
    return "no CUDA device: triton runs under the interpreter, parity gate only (tiny shape), never timed"


def _leaves(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().requires_grad_(True) if t.is_floating_point() else t for t in inputs]


def make_step(fn: Callable, inputs: list[torch.Tensor], mode: str) -> Callable[[], object]:
    """A no-argument closure running one forward (``fwd``) or forward+backward (``fwd_bwd``) pass.

    Both run with autograd recording (the forward pass of a training step), so a compiled
    function serves both passes with the graphs the parity gate already compiled.
    """
    tensors = _leaves(inputs)
    leaves = [t for t in tensors if t.is_floating_point()]
    if mode == "fwd":
        return lambda: fn(*tensors)
    shape_probe = fn(*tensors).detach()  # in grad mode, like the timed calls: no extra compile
    gen = torch.Generator().manual_seed(1)
    cotangent = torch.randn(shape_probe.shape, generator=gen).to(shape_probe.device, shape_probe.dtype)

    def forward_backward():
        return torch.autograd.grad(fn(*tensors), leaves, cotangent, allow_unused=True)

    return forward_backward


def figures(case: Case, mode: str, timing: Timing, ceilings: dict) -> dict:
    """Timing plus achieved FLOP/s, bytes/s and the fraction of the roofline, for one pass."""
    cost = case.cost[mode]
    out = timing.as_dict()
    out.update(
        flops_per_s=cost.flops / timing.median,
        bytes_per_s=cost.bytes / timing.median,
        roofline_fraction=roofline_fraction(cost, timing.median, ceilings["flops_per_s"], ceilings["bytes_per_s"]),
    )
    if case.images:
        out["images_per_s"] = case.images / timing.median
    return out


def run_backend(
    name: str,
    case: Case,
    *,
    device: torch.device,
    dtype: torch.dtype,
    ceilings: dict,
    gate_case: Case | None = None,
    budget_s: float = 2.0,
) -> dict:
    """Gate ``case`` on backend ``name``, then time it if it passed and may be timed here.

    ``gate_case``: a tiny twin of ``case`` for the triton gate under the interpreter (CPU).
    Returns {"status": "reference"|"pass"|"fail"|"unavailable"|"gated-only", "reason", "parity",
    "first_call_s", "fwd": {...}, "fwd_bwd": {...}} (timings only for timed backends).
    """
    result: dict = {"status": None, "reason": None, "parity": None}
    untimed = triton_timing_note(device) if "triton" in name else None
    if name == "eager":
        result["status"] = "reference"
    else:
        target = gate_case if (untimed and gate_case is not None) else case
        t0 = time.perf_counter()
        try:
            fn = backend_fn(name, target)
            gate: GateResult = parity_gate(fn, target.fn("reference"), target.inputs, dtype, names=target.names)
        except Exception as e:  # e.g. torch.compile unable to start at all
            gate = GateResult("fail", f"raised {type(e).__name__}: {str(e).strip()[:300]}")
        result["first_call_s"] = time.perf_counter() - t0
        result["parity"] = gate.as_dict()
        result["status"], result["reason"] = gate.status, gate.reason
        if not gate.passed:
            return result
        if untimed:
            result["status"], result["reason"] = "gated-only", untimed
            return result
    if name == "eager":
        fn = backend_fn(name, case)  # other backends reuse the gated (and, for compile, compiled) function
    for mode in MODES:
        try:
            step = make_step(fn, case.inputs, mode)
            timing = time_fn(step, device, budget_s=budget_s)
        except Exception as e:
            for timed in MODES:
                result.pop(timed, None)  # a backend that breaks while timed shows no speed at all
            result["status"], result["reason"] = "fail", f"{mode} raised {type(e).__name__}: {str(e).strip()[:300]}"
            return result
        result[mode] = figures(case, mode, timing, ceilings)
    return result


def add_speedups(results: dict[str, dict]) -> None:
    """Add ``speedup_vs_eager`` to every timed pass of every backend (eager median / backend median)."""
    eager = results.get("eager", {})
    for res in results.values():
        for mode in MODES:
            if mode in res and mode in eager:
                res[mode]["speedup_vs_eager"] = eager[mode]["median_s"] / res[mode]["median_s"]
