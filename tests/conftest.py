"""Test-wide settings.

* Without CUDA, Triton kernels run through Triton's CPU interpreter (TRITON_INTERPRET=1); this must
  be set before triton is first imported, hence here.
* The default backend for tests is the reference: a test that wants the kernels asks for
  backend="triton" explicitly (otherwise "auto" would send every model test through the slow
  interpreter).
* Tests marked ``gpu`` are skipped cleanly when CUDA is absent.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("FASTPIXEL_BACKEND", "reference")
# Test shapes are tiny: one thread is fastest, and two threads on a busy 2-core machine can be
# many times slower (OpenMP workers spin waiting for a core).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


_SESSION_INTERPRET = os.environ.get("TRITON_INTERPRET")


@pytest.fixture(autouse=True)
def _keep_the_interpreter_setting():
    """A test that imports ``bench.static`` in-process (it drops TRITON_INTERPRET at import, so that the
    kernels it compiles are real JIT functions) must not turn the interpreter off for the tests after it."""
    yield
    if os.environ.get("TRITON_INTERPRET") != _SESSION_INTERPRET:
        if _SESSION_INTERPRET is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = _SESSION_INTERPRET


@pytest.fixture
def device() -> str:
    """Where kernel tests run: CUDA when present, else CPU (through Triton's interpreter)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def one_thread():
    """torch on one thread for the test (restored after): tiny matmuls run faster on one, and two
    threads on this shared 2-core machine ran ~5x slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
