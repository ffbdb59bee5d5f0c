"""Clear errors where the fast ops' hand-written passes cannot follow PyTorch.

The backward passes write into preallocated buffers in place, which ``vmap`` over batched
cotangents (``torch.autograd.grad(..., is_grads_batched=True)``,
``torch.autograd.functional.jacobian(..., vectorize=True)``, ``torch.func`` transforms) cannot
batch. Rather than failing deep inside an in-place copy, they say so and name the way out.
"""

from __future__ import annotations

import torch


def reject_batched_gradients(op: str, grad: torch.Tensor) -> None:
    """Raise if ``grad`` is a vmap-batched tensor (see the module docstring)."""
    # "Batched": the legacy vmap of is_grads_batched; "FuncTorchBatched": torch.func.vmap
    if "Batched" in str(torch._C._dispatch_keys(grad)):
        raise RuntimeError(
            f"{op} (fastpixel backend 'torch'): the hand-written backward does not support vmap over "
            "batched gradients (is_grads_batched=True, jacobian(vectorize=True), torch.func); use "
            "backend='reference' for those, or vectorize=False"
        )
