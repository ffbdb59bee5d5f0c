"""Fast masked convolution: per-image GEMMs for 1x1 kernels, ``F.conv2d`` for the others.

    y[b, o, r, c] = bias[o] + sum_{i, dy, dx} (W * M)[o, i, dy, dx] * x_pad[b, i, r + dy, c + dx]

(see :mod:`fastpixel.reference.masked_conv`; M = ``spec.mask()``, cached per (spec, dtype, device)
by :meth:`MaskSpec.mask`). Most of a PixelRNN's convolutions are 1x1 (input-to-state, the
residual expansion, the output layers). A 1x1 conv is, per image, the GEMM
``y_b = (W * M) @ x_b + bias`` over its H*W pixels; on a CPU, one ``addmm`` per image written into
a reused buffer (:mod:`fastpixel.fast.workspace`) beats ``F.conv2d`` (oneDNN), most of whose time
at these sizes goes to first-touch page faults of its fresh output (measured: 128 -> 512 channels,
16 images of 32x32: 50.7 ms conv2d, 26.6 ms per-image addmm). The backward is the same GEMMs
transposed: dx_b = (W * M)^T dy_b, d(W * M) = sum_b dy_b x_b^T (accumulated in place), then the
mask, and d bias = sum of dy. Other kernels (7x7 mask A, 3x3, 1x3) run ``F.conv2d`` with the
masked weight, as the reference does, and so do small 1x1 convs (below
:data:`POINTWISE_MIN_OUTPUT`), where a loop of tiny GEMMs costs more than it saves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.workspace import scratch
from fastpixel.masks import MaskSpec


#: Smallest output (elements) for which the per-image GEMMs beat F.conv2d here (measured: 16 x 32 x
#: 28 x 28 = 0.4 M elements was slower with GEMMs, 16 x 128 x 28 x 28 = 1.6 M three times faster).
POINTWISE_MIN_OUTPUT = 1 << 20


class PointwiseConv(torch.autograd.Function):
    """A 1x1 conv as per-image GEMMs; use :func:`masked_conv2d`."""

    @staticmethod
    def forward(ctx, x, weight, bias, mask):
        batch, cin, height, width = x.shape
        cout = weight.shape[0]
        w = (weight * mask).view(cout, cin)
        xs = x.reshape(batch, cin, height * width)
        out = scratch((batch, cout, height, width), x.dtype, x.device)
        outs = out.view(batch, cout, height * width)
        for b in range(batch):
            if bias is None:
                torch.mm(w, xs[b], out=outs[b])
            else:
                torch.addmm(bias.unsqueeze(1), w, xs[b], out=outs[b])
        ctx.save_for_backward(xs, w, mask)
        ctx.has_bias = bias is not None
        ctx.shape = x.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("masked_conv2d", grad_out)
        xs, w, mask = ctx.saved_tensors
        batch, cin, height, width = ctx.shape
        cout = w.shape[0]
        grads = grad_out.reshape(batch, cout, height * width)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = scratch((batch, cin, height, width), xs.dtype, xs.device)
            gxs = grad_x.view(batch, cin, height * width)
            wt = w.t()
            for b in range(batch):
                torch.mm(wt, grads[b], out=gxs[b])
        if ctx.needs_input_grad[1]:
            gw = torch.zeros(cout, cin, dtype=w.dtype, device=w.device)
            for b in range(batch):
                gw.addmm_(grads[b], xs[b].t())
            grad_w = gw.view(cout, cin, 1, 1).mul_(mask)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grads.sum(dim=(0, 2))
        return grad_x, grad_w, grad_b, None


@autocast_boundary("autocast")
def masked_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec
) -> torch.Tensor:
    """x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W)."""
    mask = spec.mask(weight.dtype, weight.device)
    large = x.shape[0] * spec.out_channels * x.shape[2] * x.shape[3] >= POINTWISE_MIN_OUTPUT
    if spec.kernel_size == (1, 1) and x.device.type == "cpu" and large:
        return PointwiseConv.apply(x, weight, bias, mask)
    masked_weight = weight * mask
    left, right, top, bottom = spec.padding
    if left == right and top == bottom:
        return F.conv2d(x, masked_weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), masked_weight, bias)
