"""The dispatch table: which function implements each op on each backend.

    implementation("row_lstm", "triton")  ->  fastpixel.kernels.row_lstm.row_lstm_scan

Every op has one stem, used in every folder: ``fastpixel/reference/<stem>.py`` (the readable
ground truth), ``fastpixel/fast/<stem>.py`` (backend ``"torch"``), ``kernels/<stem>.py``
(backend ``"triton"``, imported as ``fastpixel.kernels.<stem>``), ``fastpixel/ops/<stem>.py``
(the public op that validates and dispatches) and the tests. Each backend's module of a stem
exports the function named in :data:`OPS`, with the reference's signature. Every backend
implements every op.

A **fusion** is a composition of ops that :mod:`fastpixel.ops` computes op by op on every backend,
and that a backend *may* compute as one piece (:data:`FUSIONS`): today the ``torch`` backend's
Diagonal BiLSTM layer, its 1x1 input-to-state conv folded into the scan
(:mod:`fastpixel.fast.diagonal_bilstm_layer`). A fusion takes the composition's arguments less its
optional extras (the layer's gate bias): the op calls it only without them, and composes otherwise.
:func:`fused` returns a backend's fused function, or None where the backend has none (the op then
composes).

The pure-PyTorch backends are entered when :mod:`fastpixel.ops` is imported; the triton one the
first time one of its ops runs (it imports triton and registers the ``fastpixel::`` custom ops),
then cached. The imports are plain ``import`` statements, which ``torch.compile`` follows.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

#: op stem -> the name of the function every backend's module of that stem exports.
OPS: dict[str, str] = {
    "masked_conv": "masked_conv2d",
    "cross_entropy": "pixel_cross_entropy",
    "row_lstm": "row_lstm_scan",
    "diagonal_bilstm": "diagonal_bilstm_scan",
    "dmol": "dmol_nll",  # the discretized logistic mixture likelihood (PixelCNN++)
}

#: fusion stem -> the name of the function a backend's module of that stem exports, where it has one
#: (``conv_diagonal_bilstm``: the layer without a gate bias).
FUSIONS: dict[str, str] = {
    "diagonal_bilstm_layer": "conv_diagonal_bilstm",
}


def _reference_modules() -> tuple[dict[str, ModuleType], dict[str, ModuleType]]:
    from fastpixel.reference import cross_entropy, diagonal_bilstm, dmol, masked_conv, row_lstm

    ops = dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
               dmol=dmol)
    return ops, {}


def _torch_modules() -> tuple[dict[str, ModuleType], dict[str, ModuleType]]:
    from fastpixel.fast import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, dmol, masked_conv, row_lstm

    ops = dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
               dmol=dmol)
    return ops, dict(diagonal_bilstm_layer=diagonal_bilstm_layer)


def _triton_modules() -> tuple[dict[str, ModuleType], dict[str, ModuleType]]:
    from fastpixel.kernels import cross_entropy, diagonal_bilstm, dmol, masked_conv, row_lstm

    ops = dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
               dmol=dmol)
    return ops, {}


#: backend -> its modules: (one per op stem, one per fusion it provides). Plain imports, which
#: ``torch.compile`` follows when the first call of a backend happens inside a compiled region.
MODULES: dict[str, Callable[[], tuple[dict[str, ModuleType], dict[str, ModuleType]]]] = {
    "reference": _reference_modules,
    "torch": _torch_modules,
    "triton": _triton_modules,
}

#: The table itself, filled one backend at a time: {op stem: {backend: implementation}}.
TABLE: dict[str, dict[str, Callable]] = {op: {} for op in OPS}
#: Fused implementations: {fusion stem: {backend: implementation}}; a backend without one is absent.
FUSED: dict[str, dict[str, Callable]] = {name: {} for name in FUSIONS}
_LOADED: set[str] = set()


def load(backend: str) -> None:
    """Import ``backend``'s modules and enter its functions (once; cheap after)."""
    if backend in _LOADED:
        return
    if backend not in MODULES:
        raise KeyError(f"unknown backend {backend!r}; have {sorted(MODULES)}")
    ops, fusions = MODULES[backend]()
    missing = set(OPS) - set(ops)
    if missing:
        raise RuntimeError(f"backend {backend!r} lacks the op(s) {sorted(missing)}: every backend implements every op")
    for stem, module in ops.items():
        TABLE[stem][backend] = getattr(module, OPS[stem])
    for stem, module in fusions.items():
        FUSED[stem][backend] = getattr(module, FUSIONS[stem])
    _LOADED.add(backend)


def implementation(op: str, backend: str) -> Callable:
    """The function that runs op ``op`` on ``backend`` ("reference", "torch" or "triton")."""
    fn = TABLE.get(op, {}).get(backend)
    if fn is not None:
        return fn
    if op not in OPS:
        raise KeyError(f"no op {op!r}; the ops are {sorted(OPS)}")
    load(backend)
    return TABLE[op][backend]


def fused(name: str, backend: str) -> Callable | None:
    """``backend``'s one-piece implementation of the composition ``name``, or None if it has none."""
    if name not in FUSIONS:
        raise KeyError(f"no fusion {name!r}; the fusions are {sorted(FUSIONS)}")
    load(backend)
    return FUSED[name].get(backend)
