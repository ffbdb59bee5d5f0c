"""Whether Triton's CPU interpreter is on (``TRITON_INTERPRET=1``): a triton-free module.

It lives in the kernels package, which imports nothing else of fastpixel; ``fastpixel.backend``
reads it from here without importing triton.
"""

from __future__ import annotations

import os


def triton_interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on CPU tensors (slowly)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0", "false", "False")
