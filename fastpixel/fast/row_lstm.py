"""Fast pure-PyTorch Row LSTM scan with a hand-written backward.

Same function and result as :func:`fastpixel.reference.row_lstm_scan` (see its module for the
equations), up to float rounding. Layout: every map is ``(C, H, W, B)``, the images innermost
(:mod:`fastpixel.fast.layout`), so one row of all images is a contiguous run of W*B pixels per
channel. h carries one zero row above row 0 and one zero column on each side, so the 1x3
state-to-state conv of row i is three ``addmm_`` of (4h, h) taps with shifted views of row
i - 1 (all four gates at once) added in place onto the row's input gates, followed by the
in-place cell (:mod:`fastpixel.fast.lstm_cell`). The forward saves the gate activations, c,
tanh(c) and h; the backward is a reverse row scan for the gate gradients, then one GEMM over
all pixels (three taps side by side) for the state-kernel gradient.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.layout import batch_last_to_nchw, nchw_to_batch_last
from fastpixel.fast.lstm_cell import cell_backward_, cell_forward_
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.workspace import scratch


class RowLSTMScan(torch.autograd.Function):
    """autograd.Function of :func:`row_lstm_scan`; use that function."""

    @staticmethod
    def forward(ctx, input_gates, state_weight):
        batch, four_h, height, width = input_gates.shape
        hidden = four_h // 4
        dtype, device = input_gates.dtype, input_gates.device
        n = width * batch
        acts = nchw_to_batch_last(input_gates)  # (4h, H, W, B); becomes the activations in place
        acts[3 * hidden :].mul_(2.0)  # g pre-activations doubled: tanh(x) = 2 sigmoid(2x) - 1
        h = scratch((hidden, height + 1, width + 2, batch), dtype, device)  # row i at index i + 1, col j at j + 1
        h[:, 0].zero_()
        h[:, :, 0].zero_()
        h[:, :, width + 1].zero_()
        c = scratch((hidden, height + 1, width, batch), dtype, device)  # row i at index i + 1
        c[:, 0].zero_()
        tanh_c = scratch((hidden, height, width, batch), dtype, device)
        taps = state_weight[:, :, 0, :].permute(2, 0, 1).contiguous()  # (3, 4h, h): tap k reads column j - 1 + k
        taps[:, 3 * hidden :].mul_(2.0)
        for i in range(height):
            g = acts[:, i].view(four_h, n)
            for k in range(3):
                g.addmm_(taps[k], h[:, i, k : k + width].view(hidden, n))
            cell_forward_(
                g, c[:, i].view(hidden, n), c[:, i + 1].view(hidden, n), tanh_c[:, i].view(hidden, n),
                h[:, i + 1, 1 : width + 1].view(hidden, n), hidden, 0,
            )
        out = scratch((hidden, height, width, batch), dtype, device)
        out.copy_(h[:, 1:, 1 : width + 1])
        ctx.save_for_backward(acts, c, tanh_c, h, state_weight)
        return batch_last_to_nchw(out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("row_lstm_scan", grad_out)
        acts, c, tanh_c, h, state_weight = ctx.saved_tensors
        four_h, height, width, batch = acts.shape
        hidden = four_h // 4
        n = width * batch
        dtype, device = acts.dtype, acts.device
        dh = scratch(tuple(h.shape), dtype, device)  # dL/dh, padded like h
        dh[:, 1:, 1 : width + 1].copy_(nchw_to_batch_last(grad_out))
        dc = scratch(tuple(c.shape), dtype, device)  # dL/dc flowing down; row i at index i + 1
        d_acts = scratch(tuple(acts.shape), dtype, device)
        taps_t = state_weight[:, :, 0, :].permute(2, 1, 0).contiguous()  # (3, h, 4h)
        for i in reversed(range(height)):
            if i == height - 1:
                dc[:, i + 1].zero_()
            d_g = d_acts[:, i].view(four_h, n)
            cell_backward_(
                acts[:, i].view(four_h, n), tanh_c[:, i].view(hidden, n), c[:, i].view(hidden, n),
                dh[:, i + 1, 1 : width + 1].view(hidden, n), dc[:, i + 1].view(hidden, n), d_g,
                dc[:, i].view(hidden, n) if i > 0 else None, hidden, 0,
            )
            if i > 0:
                for k in range(3):
                    dh[:, i, k : k + width].view(hidden, n).addmm_(taps_t[k], d_g)
        # State kernel: one GEMM over every pixel, the three taps of the row above side by side.
        reads = scratch((3, hidden, height, width, batch), dtype, device)
        for k in range(3):
            reads[k].copy_(h[:, :height, k : k + width])
        d_taps = torch.mm(d_acts.view(four_h, -1), reads.view(3 * hidden, -1).t())  # (4h, 3h)
        d_weight = d_taps.view(four_h, 3, hidden).permute(0, 2, 1).unsqueeze(2).contiguous()  # (4h, h, 1, 3)
        return batch_last_to_nchw(d_acts), d_weight


@autocast_boundary("promote")
def row_lstm_scan(input_gates: torch.Tensor, state_weight: torch.Tensor) -> torch.Tensor:
    """Run the Row LSTM over the rows.

    input_gates: (B, 4h, H, W) input-to-state gates [o | f | i | g], bias included;
    state_weight: (4h, h, 1, 3) state-to-state kernel (no bias). Returns h: (B, h, H, W).
    """
    return RowLSTMScan.apply(input_gates, state_weight)
