"""Kernel tests: every torch.empty is filled with NaN, so an output element a kernel forgets to
write cannot pass a parity test by being accidentally right (flash-linear-attention does the same)."""

from __future__ import annotations

import pytest
import torch

_real_empty = torch.empty
_real_empty_like = torch.empty_like


def _nan_empty(*args, **kwargs):
    t = _real_empty(*args, **kwargs)
    if t.is_floating_point():
        t.fill_(float("nan"))
    return t


def _nan_empty_like(*args, **kwargs):
    t = _real_empty_like(*args, **kwargs)
    if t.is_floating_point():
        t.fill_(float("nan"))
    return t


@pytest.fixture(autouse=True)
def nan_poisoned_outputs(monkeypatch):
    monkeypatch.setattr(torch, "empty", _nan_empty)
    monkeypatch.setattr(torch, "empty_like", _nan_empty_like)
    yield


@pytest.fixture(autouse=True)
def _skip_without_triton():
    pytest.importorskip("triton")
