"""FLOP and byte accounting of every op (and of PyTorch's own convolutions, for a model step), and the roofline they are judged against.

Conventions (the numbers in the tables and the JSON follow them):
  * a multiply-add counts as 2 FLOPs; every other elementwise op (add, multiply, sigmoid, tanh,
    exp, log, max) counts as 1;
  * *useful* FLOPs skip the work a mask zeroes (masked conv taps) or that lies outside the image
    (the padding cells of the Diagonal LSTM's skewed map); *dense* FLOPs are what a plain kernel
    of the same shape computes;
  * *minimum bytes* read every input once and write every output once (forward), and for the
    backward pass read the output cotangent, the inputs and the parameters once and write every
    gradient once. Nothing that a fused kernel could keep on chip is counted;
  * forward+backward FLOPs are 3x the forward FLOPs (the backward pass of a product needs two
    products: one for the input gradient, one for the weight gradient).

A :class:`Cost` holds one pass; ``roofline_time`` is the least time the machine can take for it.
"""

from __future__ import annotations

import dataclasses

from fastpixel.masks import MaskSpec

BACKWARD_FLOP_FACTOR = 2  # backward = 2x forward, so forward+backward = 3x forward


@dataclasses.dataclass(frozen=True)
class Cost:
    """Work of one pass of one op: useful and dense FLOPs, minimum bytes moved."""

    flops: float
    dense_flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: useful FLOPs per minimum byte."""
        return self.flops / self.bytes if self.bytes else float("inf")

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.flops + other.flops, self.dense_flops + other.dense_flops, self.bytes + other.bytes)

    def __mul__(self, k: float) -> "Cost":
        return Cost(self.flops * k, self.dense_flops * k, self.bytes * k)

    __rmul__ = __mul__


@dataclasses.dataclass(frozen=True)
class OpCost:
    """Forward and forward+backward cost of one op call."""

    forward: Cost
    forward_backward: Cost

    def __getitem__(self, mode: str) -> Cost:
        return {"fwd": self.forward, "fwd_bwd": self.forward_backward}[mode]

    def __mul__(self, k: float) -> "OpCost":
        return OpCost(self.forward * k, self.forward_backward * k)

    def __add__(self, other: "OpCost") -> "OpCost":
        return OpCost(self.forward + other.forward, self.forward_backward + other.forward_backward)


def _with_backward(forward: Cost, backward_bytes: float) -> OpCost:
    k = 1 + BACKWARD_FLOP_FACTOR
    return OpCost(forward, Cost(forward.flops * k, forward.dense_flops * k, forward.bytes + backward_bytes))


def roofline_time(cost: Cost, peak_flops: float, peak_bytes_per_s: float) -> float:
    """Least time for ``cost``: the larger of its compute time and its memory time (seconds)."""
    return max(cost.flops / peak_flops, cost.bytes / peak_bytes_per_s)


def roofline_fraction(cost: Cost, seconds: float, peak_flops: float, peak_bytes_per_s: float) -> float:
    """Roofline time over measured time: 1.0 means the op ran at the machine's limit."""
    return roofline_time(cost, peak_flops, peak_bytes_per_s) / seconds


# -- the four ops ------------------------------------------------------------------------------


def masked_conv_cost(spec: MaskSpec, batch: int, height: int, width: int, itemsize: int, bias: bool = True) -> OpCost:
    """masked_conv2d: x (B, in, H, W), weight (out, in, kh, kw), bias (out,) -> y (B, out, H, W).

    Useful FLOPs: 2 per open tap of the mask per output pixel (``spec.mask().sum()`` taps), plus
    the bias add. Dense: every tap of the (out, in, kh, kw) kernel.
    """
    kh, kw = spec.kernel_size
    pixels = batch * height * width
    open_taps = float(spec.mask().sum())
    dense_taps = spec.out_channels * spec.in_channels * kh * kw
    bias_flops = pixels * spec.out_channels if bias else 0
    x = pixels * spec.in_channels
    y = pixels * spec.out_channels
    params = dense_taps + (spec.out_channels if bias else 0)
    forward = Cost(2 * pixels * open_taps + bias_flops, 2 * pixels * dense_taps + bias_flops, (x + y + params) * itemsize)
    backward_bytes = (y + x + params) * itemsize + (x + params) * itemsize  # read dy, x, w; write dx, dw
    return _with_backward(forward, backward_bytes)


def lstm_cell_flops(hidden: int) -> int:
    """Elementwise FLOPs of one LSTM cell given its pre-activation gates (4h values).

    3 sigmoids + 2 tanh (5h), c = f*c + i*g (3h), h = o*tanh(c) (1h).
    """
    return 9 * hidden


def row_lstm_cost(batch: int, hidden: int, height: int, width: int, itemsize: int) -> OpCost:
    """row_lstm_scan: gates (B, 4h, H, W), state weight (4h, h, 1, 3) -> h (B, h, H, W).

    Per pixel: the 1x3 state-to-state conv (4h x 3h multiply-adds), the add of the input gates (4h)
    and the cell. Every pixel is useful, so dense = useful.
    """
    pixels = batch * height * width
    per_pixel = 2 * 4 * hidden * 3 * hidden + 4 * hidden + lstm_cell_flops(hidden)
    gates, h_out, weight = pixels * 4 * hidden, pixels * hidden, 4 * hidden * hidden * 3
    forward = Cost(pixels * per_pixel, pixels * per_pixel, (gates + weight + h_out) * itemsize)
    backward_bytes = (h_out + gates + weight) * itemsize + (gates + weight) * itemsize
    return _with_backward(forward, backward_bytes)


def diagonal_bilstm_cost(batch: int, hidden: int, height: int, width: int, itemsize: int) -> OpCost:
    """diagonal_bilstm_scan: two gate maps (B, 4h, H, W) and state weights (4h, h, 2, 1) -> (B, h, H, W).

    Per cell and direction: the 2x1 state-to-state conv (4h x 2h multiply-adds), the gate add and the
    cell; plus the final add of the two directions. Useful cells are the H*W image pixels; dense
    cells are the H*(W+H-1) cells of the skewed map the scan walks.
    """
    per_cell = 2 * 4 * hidden * 2 * hidden + 4 * hidden + lstm_cell_flops(hidden)
    pixels = batch * height * width
    cells = batch * height * (width + height - 1)
    combine = pixels * hidden
    gates, h_out, weight = pixels * 4 * hidden, pixels * hidden, 4 * hidden * hidden * 2
    forward = Cost(
        2 * pixels * per_cell + combine, 2 * cells * per_cell + combine, (2 * gates + 2 * weight + h_out) * itemsize
    )
    backward_bytes = (h_out + 2 * gates + 2 * weight) * itemsize + (2 * gates + 2 * weight) * itemsize
    return _with_backward(forward, backward_bytes)


def cross_entropy_cost(
    batch: int, levels: int, channels: int, height: int, width: int, itemsize: int, target_itemsize: int = 8
) -> OpCost:
    """pixel_cross_entropy(reduction="none"): logits (B, L, C, H, W), targets (B, C, H, W) -> (B, C, H, W).

    Per sub-pixel: max (L), subtract (L), exp (L), sum (L), log (1), subtract the target's logit (1).
    The loss is written in float32 at least.
    """
    sub_pixels = batch * channels * height * width
    flops = sub_pixels * (4 * levels + 2)
    loss_itemsize = max(itemsize, 4)
    logits, loss = sub_pixels * levels * itemsize, sub_pixels * loss_itemsize
    targets = sub_pixels * target_itemsize
    forward = Cost(flops, flops, logits + targets + loss)
    backward_bytes = loss + logits + targets + logits  # read dloss, logits, targets; write dlogits
    return _with_backward(forward, backward_bytes)


def dmol_cost(batch: int, channels: int, height: int, width: int, k: int, itemsize: int, x_itemsize: int = 8) -> OpCost:
    """dmol_nll(reduction="none"): params (B, P, H, W) (P = 10K RGB, 3K grey), x (B, C, H, W) -> (B, H, W).

    Memory-bound. Minimum bytes: forward reads params and x and writes the loss (float32 at least);
    backward reads the loss's cotangent, params and x and writes d params. FLOPs per pixel, counting
    each exp/log/sigmoid as 1: about 40 per colour and component (clamp, exp(-s), centring and
    coupling, the two standardised edges, two logsigmoids of ~8 each, the width term
    log(2d) - s + log f, sums) plus ~11 per component (log-softmax, logsumexp).
    """
    pixels = batch * height * width
    p = (10 if channels == 3 else 3) * k
    flops = pixels * (channels * k * 40 + k * 11)
    params_b, x_b, loss_b = pixels * p * itemsize, pixels * channels * x_itemsize, pixels * max(itemsize, 4)
    forward = Cost(flops, flops, params_b + x_b + loss_b)
    backward_bytes = loss_b + params_b + x_b + params_b  # read dloss, params, x; write dparams
    return _with_backward(forward, backward_bytes)


def conv_cost(batch: int, in_channels: int, out_channels: int, kernel: tuple[int, int], groups: int,
              in_hw: tuple[int, int], out_hw: tuple[int, int], itemsize: int, *, bias: bool,
              transposed: bool = False) -> OpCost:
    """A plain (unmasked) ``nn.Conv2d`` / ``nn.ConvTranspose2d``: x (B, in, *in_hw) -> y (B, out, *out_hw).

    FLOPs: 2 per tap per multiply-add, every tap useful (dense = useful); a convolution has one per
    (output pixel, output channel, input channel of its group, tap), a transposed one per (input
    pixel, input channel, output channel of its group, tap); plus the bias add. Bytes as
    :func:`masked_conv_cost`.
    """
    kh, kw = kernel
    taps = in_channels * out_channels // groups * kh * kw
    x, y = batch * in_channels * in_hw[0] * in_hw[1], batch * out_channels * out_hw[0] * out_hw[1]
    macs = batch * (in_hw if transposed else out_hw)[0] * (in_hw if transposed else out_hw)[1] * taps
    flops = 2 * macs + (y if bias else 0)
    params = taps + (out_channels if bias else 0)
    forward = Cost(flops, flops, (x + y + params) * itemsize)
    return _with_backward(forward, (y + x + params) * itemsize + (x + params) * itemsize)
