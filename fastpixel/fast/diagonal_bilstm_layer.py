"""Fast pure-PyTorch Diagonal BiLSTM layer: the 1x1 input-to-state conv fused into the column scan.

The torch backend's fused implementation of the composition :func:`fastpixel.ops.conv_diagonal_bilstm`
without a gate bias (the masked 1x1 conv to 8h gates, then the diagonal scans; ``dispatch.FUSIONS``;
with a gate bias the op composes), equal to the reference's conv then scan up to float rounding.
The column scan is :mod:`fastpixel.fast.column_scan`'s, shared with :mod:`fastpixel.fast.diagonal_bilstm`
(read its docstring first); what changes is where the input-to-state gates come from:

* **The conv is part of each column's product.** The buffer ``feed`` holds, for every cell of the
  skewed map, ``[x | 1 | h(t-1, r-1) | h(t-1, r)]`` (the layer's input, mirrored for the
  right-to-left direction, a constant 1 when the conv has a bias, then the two state taps), so
  column t's gates are one ``bmm`` of the weights ``[W_in | b | K_above | K_same]``
  (D, 4h, Cin + 1 + 2h) with that column's cells. The (B, 8h, H, W) gate maps are never formed: no
  conv output, no transposes of it into the scan's batch-innermost layout and back, no split into
  directions (whose backward is a concatenation into fresh memory), no mirrored copy of the
  right-to-left gates; only the input (Cin = 2h channels, a quarter of the gates) is transposed
  and skewed.
* **Backward.** The reverse scan is the fast scan's, except that each column's product with the
  transposed weights gives the gradient of everything the column read, ``[x | 1 | both taps]``,
  and the same column adds its share of the weight gradient, ``d_gates @ feed^T``, into one
  (D, 4h, K) accumulator (the bias gradient is its constant-1 column). No gate gradient is
  unskewed and no (4h x pixels) GEMM runs after the scan; the input gradient is read out of the
  skewed ``[x]`` gradients, the right-to-left one mirrored back while it is summed.

Measured against the separate conv + scan of the same backend (one thread, B=16, Cin=32, h=16,
28x28, the MNIST layer; interleaved, median of 25): forward 15.1 vs 22.7 ms, forward + backward
38.7-40.3 vs 53.3 ms (``bench.fast_targets`` has the model-level figures).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.column_scan import scan_backward_, scan_forward_
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.skew import skew_both_directions_, sum_of_directions
from fastpixel.fast.workspace import scratch
from fastpixel.masks import MaskSpec


def _layer_weights(w_in: torch.Tensor, b_in: torch.Tensor | None, w_lr: torch.Tensor, w_rl: torch.Tensor) -> torch.Tensor:
    """(D, 4h, K): [W_in | bias | K_above | K_same] of each direction (no bias column without a bias).

    w_in: (8h, Cin), masked; b_in: (8h,) or None; w_*: (4h, h, 2, 1).
    """
    four_h = w_lr.shape[0]
    rows = []
    for d, w in enumerate((w_lr, w_rl)):
        part = slice(d * four_h, (d + 1) * four_h)
        bias = [] if b_in is None else [b_in[part].unsqueeze(1)]
        rows.append(torch.cat((w_in[part], *bias, w[:, :, 0, 0], w[:, :, 1, 0]), dim=1))
    return torch.stack(rows)


class DiagonalBiLSTMLayer(torch.autograd.Function):
    """autograd.Function of :func:`conv_diagonal_bilstm`; use that function."""

    @staticmethod
    def forward(ctx, x, w_in, b_in, w_lr, w_rl):
        batch, cin, height, width = x.shape
        four_h = w_lr.shape[0]
        hidden = four_h // 4
        columns = width + height - 1
        ones = 0 if b_in is None else 1
        k = cin + ones + 2 * hidden
        dtype, device = x.dtype, x.device
        # feed[:, t, :, r] = [x_d(r, t - r) | 1 | h(t-1, r-1) | h(t-1, r)]: what row r of column t reads.
        feed = scratch((2, columns + 1, k, height + 1, batch), dtype, device)
        skew_both_directions_(feed[:, :, :cin], x, 0, 0)  # the right-to-left direction scans the mirrored map
        if ones:
            feed[:, :, cin].fill_(1.0)  # the bias is the weight of a constant input
        c = scratch((2, columns + 1, hidden, height + 1, batch), dtype, device)  # c(t-1, r-1) at [t, :, r]
        m = scratch((2, columns, hidden, height, batch), dtype, device)  # sigmoid(-2c), see lstm_cell
        acts = scratch((2, columns, four_h, height, batch), dtype, device)
        weights = _layer_weights(w_in, b_in, w_lr, w_rl)
        weights[:, 3 * hidden :].mul_(2.0)  # g pre-activations doubled: tanh(x) = 2 sigmoid(2x) - 1
        scan_forward_(feed, acts, c, m, weights, hidden, width, accumulate=False)
        ctx.save_for_backward(acts, c, m, feed, w_in, b_in, w_lr, w_rl)
        return sum_of_directions(feed[:, :, k - hidden :], height, width, 1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("conv_diagonal_bilstm", grad_out)
        acts, c, m, feed, w_in, b_in, w_lr, w_rl = ctx.saved_tensors
        _, columns, four_h, height, batch = acts.shape
        hidden = four_h // 4
        width = columns - height + 1
        k = feed.shape[2]
        cin = w_in.shape[1]
        dtype, device = acts.dtype, acts.device
        # d_out[:, t + 1, :, r] = dL/dh(t, r) from the layer's output (the right-to-left map was
        # shifted down a row and mirrored); the scan adds what the next column sends back.
        d_out = scratch((2, columns + 1, hidden, height + 1, batch), dtype, device)
        skew_both_directions_(d_out, grad_out, 1, 1)
        d_feed = scratch(tuple(feed.shape), dtype, device)
        d_acts = scratch(tuple(acts.shape), dtype, device)
        d_weights = torch.zeros(2, four_h, k, dtype=dtype, device=device)
        weights_t = _layer_weights(w_in, b_in, w_lr, w_rl).transpose(1, 2)  # (D, K, 4h)
        scan_backward_(acts, c, m, feed, weights_t, d_out, d_feed, d_acts, d_weights, hidden)
        grad_x = grad_b = None
        if ctx.needs_input_grad[0]:  # both directions read x; the right-to-left one mirrored
            grad_x = sum_of_directions(d_feed[:, :, :cin], height, width, 0, 0)
        grad_w_in = d_weights[:, :, :cin].reshape(2 * four_h, cin)
        if b_in is not None:
            grad_b = d_weights[:, :, cin].reshape(2 * four_h)
        grad_lr, grad_rl = (d_weights[d, :, k - 2 * hidden :].view(four_h, 2, hidden).transpose(1, 2).unsqueeze(-1).contiguous()
                            for d in range(2))
        return grad_x, grad_w_in, grad_b, grad_lr, grad_rl


@autocast_boundary("autocast")
def conv_diagonal_bilstm(
    x: torch.Tensor,
    input_weight: torch.Tensor,
    input_bias: torch.Tensor | None,
    spec: MaskSpec,
    state_weight_lr: torch.Tensor,
    state_weight_rl: torch.Tensor,
) -> torch.Tensor:
    """(B, Cin, H, W) -> (B, h, H, W): masked 1x1 conv to [lr gates | rl gates], then both scans.

    input_weight: (8h, Cin, 1, 1), masked by ``spec``; input_bias: (8h,) or None;
    state_weight_*: (4h, h, 2, 1). The layer without a gate bias (the fusion's contract: with one,
    :func:`fastpixel.ops.conv_diagonal_bilstm` composes this backend's conv, the sum and its scan).
    Equal to the reference up to rounding.
    """
    mask = spec.mask(input_weight.dtype, input_weight.device)
    w_in = (input_weight * mask).view(input_weight.shape[0], input_weight.shape[1])
    return DiagonalBiLSTMLayer.apply(x, w_in, input_bias, state_weight_lr, state_weight_rl)
