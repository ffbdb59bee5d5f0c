"""The dispatch table: which function implements each op on each backend.

    implementation("row_lstm", "triton")  ->  fastpixel.kernels.row_lstm.row_lstm_scan

Every op has one stem, used in every folder: ``fastpixel/reference/<stem>.py`` (the readable
ground truth), ``fastpixel/fast/<stem>.py`` (backend ``"torch"``), ``kernels/<stem>.py``
(backend ``"triton"``, imported as ``fastpixel.kernels.<stem>``), ``fastpixel/ops/<stem>.py``
(the public op that validates and dispatches) and the tests. Each backend's module of a stem
exports the same function with the reference's signature, named in :data:`FUNCTIONS`.

The pure-PyTorch backends ("reference", "torch") are entered when :mod:`fastpixel.ops` is
imported; the triton one the first time one of its ops runs (it imports triton and registers the
``fastpixel::`` custom ops), then cached. The imports are plain ``import`` statements, which
``torch.compile`` follows, so even that first call may happen inside a compiled region without a
graph break (the table filling up there costs one recompile on the next call, nothing more).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

#: op stem -> the name of the function every backend module of that stem exports.
FUNCTIONS: dict[str, str] = {
    "masked_conv": "masked_conv2d",
    "cross_entropy": "pixel_cross_entropy",
    "row_lstm": "row_lstm_scan",
    "diagonal_bilstm": "diagonal_bilstm_scan",
    "diagonal_bilstm_layer": "conv_diagonal_bilstm",
    "dmol": "dmol_nll",
}

#: backend -> the op stems it implements.
IMPLEMENTED: dict[str, tuple[str, ...]] = {
    "reference": tuple(FUNCTIONS),
    "torch": tuple(FUNCTIONS),
    "triton": tuple(FUNCTIONS),
}


def _reference_modules() -> dict[str, ModuleType]:
    from fastpixel.reference import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, dmol, masked_conv, row_lstm

    return dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
                diagonal_bilstm_layer=diagonal_bilstm_layer, dmol=dmol)


def _torch_modules() -> dict[str, ModuleType]:
    from fastpixel.fast import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, dmol, masked_conv, row_lstm

    return dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
                diagonal_bilstm_layer=diagonal_bilstm_layer, dmol=dmol)


def _triton_modules() -> dict[str, ModuleType]:
    from fastpixel.kernels import cross_entropy, diagonal_bilstm, diagonal_bilstm_layer, dmol, masked_conv, row_lstm

    return dict(masked_conv=masked_conv, cross_entropy=cross_entropy, row_lstm=row_lstm, diagonal_bilstm=diagonal_bilstm,
                diagonal_bilstm_layer=diagonal_bilstm_layer, dmol=dmol)


_MODULE_LOADERS: dict[str, Callable[[], dict[str, ModuleType]]] = {
    "reference": _reference_modules,
    "torch": _torch_modules,
    "triton": _triton_modules,
}

#: The table itself, filled one backend at a time: {op stem: {backend: implementation}}.
TABLE: dict[str, dict[str, Callable]] = {op: {} for op in FUNCTIONS}


def has_implementation(op: str, backend: str) -> bool:
    """Whether ``backend`` implements the op ``op`` (without importing anything)."""
    return op in IMPLEMENTED.get(backend, ())


def load(backend: str) -> None:
    """Import ``backend``'s modules and enter its functions in :data:`TABLE` (once; cheap after)."""
    if any(backend not in TABLE[op] for op in IMPLEMENTED[backend]):
        for stem, module in _MODULE_LOADERS[backend]().items():
            TABLE[stem][backend] = getattr(module, FUNCTIONS[stem])


def implementation(op: str, backend: str) -> Callable:
    """The function that runs op ``op`` on ``backend`` ("reference", "torch" or "triton")."""
    fn = TABLE.get(op, {}).get(backend)
    if fn is not None:
        return fn
    if not has_implementation(op, backend):
        raise KeyError(f"no implementation of op {op!r} on backend {backend!r}; have {IMPLEMENTED}")
    load(backend)
    return TABLE[op][backend]
