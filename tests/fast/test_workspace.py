"""The scans' scratch-buffer pool: a buffer is handed out again only once nothing references it."""

from __future__ import annotations

import torch

from fastpixel.fast import workspace


def test_a_buffer_in_use_is_not_handed_out_twice():
    workspace.clear()
    a = workspace.scratch((3, 4), torch.float32, "cpu")
    b = workspace.scratch((3, 4), torch.float32, "cpu")
    assert a.data_ptr() != b.data_ptr()


def test_a_released_buffer_is_reused():
    workspace.clear()
    a = workspace.scratch((5, 6), torch.float64, "cpu")
    ptr = a.data_ptr()
    del a
    assert workspace.scratch((5, 6), torch.float64, "cpu").data_ptr() == ptr


def test_a_live_view_keeps_the_buffer_in_use():
    workspace.clear()
    a = workspace.scratch((4, 4), torch.float32, "cpu")
    view = a[1:3]
    ptr = a.data_ptr()
    del a
    assert workspace.scratch((4, 4), torch.float32, "cpu").data_ptr() != ptr
    del view


def test_a_buffer_saved_for_backward_stays_in_use():
    workspace.clear()

    class Saves(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            buf = workspace.scratch((2, 2), torch.float32, "cpu")
            buf.fill_(2.0)
            ctx.save_for_backward(buf)
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            (buf,) = ctx.saved_tensors
            return grad * buf.sum() / 4

    x = torch.ones(2, 2, requires_grad=True)
    y = Saves.apply(x)
    other = workspace.scratch((2, 2), torch.float32, "cpu")
    other.fill_(100.0)  # must not be the saved buffer
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad, torch.full((2, 2), 2.0))


def test_pool_is_bounded(monkeypatch):
    workspace.clear()
    monkeypatch.setattr(workspace, "MAX_POOLED_BYTES", 100)
    big = workspace.scratch((1000,), torch.float32, "cpu")
    assert workspace._pooled_bytes == 0  # too big to pool: an ordinary allocation
    del big
