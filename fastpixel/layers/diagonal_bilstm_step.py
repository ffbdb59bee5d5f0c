"""The residual Diagonal BiLSTM block one pixel at a time (paper section 3.2): its incremental step.

Unskewed, the reference's left-to-right scan gives pixel (r, j) from its left neighbour and the
pixel above (zero outside the image):

    gates_lr(r, j) = (K^is_lr * x)(r, j) + K^ss_lr[:, :, 0] h_lr(r - 1, j) + K^ss_lr[:, :, 1] h_lr(r, j - 1)
    c_lr(r, j), h_lr(r, j) = lstm_cell(gates_lr(r, j), c_lr(r, j - 1))

and the right-to-left scan the same with j + 1 for j - 1. The block's output is
x + expand(h_lr(r, j) + h_rl(r - 1, j)): the right-to-left map is shifted down one row.

So while row r is generated, each pixel advances the left-to-right state by one step (the terms
that depend only on row r - 1 -- the state from above, the bias, the expanded right-to-left output
-- are computed for the whole row at ``start_row``), and when row r is complete, ``end_row`` runs
the right-to-left direction over it, W steps from the right, ready to be read one row down;
:meth:`DiagonalBiLSTMBlockCache.end_rows` runs those scans of every block of a model together
(they are independent: each reads only its own block's row r).

A pixel step is a handful of small ops (the per-pixel cost of sampling is op overhead): the input
and the left state sit side by side in one buffer row ``[x(r, j) | h_lr(r, j - 1)]``, so the gates
are one ``addmm`` with the stacked kernel, and the cell runs in place
(:func:`fastpixel.lstm_cell.lstm_cell_step_`). A step reads only column j and writes only column
j + 1, so calling it again for the same pixel (once per colour) recomputes the same states.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fastpixel.layers.conv_step import masked_weight
from fastpixel.layers.step import InferenceCache
from fastpixel.lstm_cell import gate_views, lstm_cell_step_

if TYPE_CHECKING:
    from fastpixel.layers.residual import ResidualLSTMBlock


class DiagonalBiLSTMBlockCache(InferenceCache):
    """x + expand(DiagonalBiLSTM(x)) evaluated pixel by pixel; step(j, x (B, 2h)) -> (B, 2h)."""

    def __init__(
        self, block: ResidualLSTMBlock, batch: int, width: int, gate_bias: torch.Tensor | None = None,
        cond_bias: torch.Tensor | None = None,
    ) -> None:
        """gate_bias: optional (B, 8h, H, W) conditioning added to both directions' gates; cond_bias:
        optional (B, 8h), the same at every pixel (folded into the input-to-state bias)."""
        lstm = block.lstm
        self.gate_bias = gate_bias
        hidden = self.hidden = lstm.hidden
        gates = masked_weight(lstm.input_to_state)[:, :, 0, 0]  # (8h, in): [left-to-right | right-to-left]
        stream = gates.shape[1]
        bias = lstm.input_to_state.bias
        if bias is None:
            bias = torch.zeros_like(gates[:, 0])
        if cond_bias is not None:  # (B, 8h), laid out as the (W * B) rows the bias is added to
            bias = (bias + cond_bias).expand(width, -1, -1).reshape(width * batch, -1)
        self.bias_lr, self.bias_rl = bias[..., : 4 * hidden], bias[..., 4 * hidden :]
        # [x | h_left] @ [K^is_lr; K^ss_lr[:, :, 1]]: the pixel's gates in one product
        self.lr_input_left = torch.cat((gates[: 4 * hidden].t(), lstm.state_weight_lr[:, :, 1, 0].t())).contiguous()
        self.lr_above = lstm.state_weight_lr[:, :, 0, 0].t().contiguous()  # (h, 4h)
        self.rl_input = gates[4 * hidden :].t().contiguous()  # (in, 4h)
        self.rl_above = lstm.state_weight_rl[:, :, 0, 0].t().contiguous()
        self.rl_right = lstm.state_weight_rl[:, :, 1, 0].t().contiguous()
        self.expand_weight = masked_weight(block.expand)[:, :, 0, 0].t().contiguous()  # (h, 2h)
        self.expand_bias = block.expand.bias if block.expand.bias is not None else torch.zeros_like(gates[0])
        new = gates.new_zeros
        self.stream = stream
        # row j: [x(r, j) | h_lr(r, j - 1)], (W + 1, B, in + h); h_lr(r, j) is written into row j + 1
        self.row = new(width + 1, batch, stream + hidden)
        self.c_row = new(width + 1, batch, hidden)  # c_lr(r, j) at index j + 1; index 0: left of the image
        self.tanh_c = new(batch, hidden)
        self.h_lr_above = new(width, batch, hidden)  # h_lr(r - 1, :)
        self.h_rl_above = new(width, batch, hidden)  # h_rl(r - 1, :), the shifted-down right-to-left output
        self.lr_from_above = new(width, batch, 4 * hidden)  # bias + K^ss_lr[:, :, 0] h_lr(r - 1, j) (+ gate bias)
        self.out_from_above = new(width, batch, stream)  # expand bias + expand(h_rl(r - 1, j))
        self.gates = new(batch, 4 * hidden)
        self.gate_views = gate_views(self.gates, hidden)
        # Views made once: indexing costs as much as a tiny op.
        self._columns = [
            (self.row[j], self.row[j, :, :stream], self.row[j + 1, :, stream:], self.c_row[j], self.c_row[j + 1],
             self.lr_from_above[j], self.out_from_above[j])
            for j in range(width)
        ]

    def start_row(self, r: int) -> None:
        width, batch, _ = self.h_lr_above.shape
        flat = lambda t: t.view(width * batch, -1)  # noqa: E731
        torch.addmm(self.bias_lr, flat(self.h_lr_above), self.lr_above, out=flat(self.lr_from_above))
        if self.gate_bias is not None:
            self.lr_from_above += self.gate_bias[:, : 4 * self.hidden, r].permute(2, 0, 1)
        torch.addmm(self.expand_bias, flat(self.h_rl_above), self.expand_weight, out=flat(self.out_from_above))
        self.row[0, :, self.stream :].zero_()  # h_lr left of the image
        self.c_row[0].zero_()

    def step(self, j: int, x: torch.Tensor) -> torch.Tensor:
        here, x_here, h, c_left, c, from_above, out_from_above = self._columns[j]
        x_here.copy_(x)
        gates = torch.addmm(from_above, here, self.lr_input_left, out=self.gates)  # [B, 4h]
        lstm_cell_step_(gates, c_left, c, self.tanh_c, h, self.hidden, self.gate_views)
        return torch.addmm(out_from_above, h, self.expand_weight).add_(x)

    def right_to_left_gates(self, r: int) -> torch.Tensor:
        """(W, B, 4h): the right-to-left gates of row r without the right-neighbour term."""
        width, batch, _ = self.h_rl_above.shape
        x_row = self.row[:width, :, : self.stream].reshape(width * batch, self.stream)
        gates = torch.addmm(self.bias_rl, x_row, self.rl_input)
        gates.addmm_(self.h_rl_above.view(width * batch, -1), self.rl_above)
        gates = gates.view(width, batch, -1)
        if self.gate_bias is not None:
            gates += self.gate_bias[:, 4 * self.hidden :, r].permute(2, 0, 1)
        return gates

    def end_row(self, r: int) -> None:
        DiagonalBiLSTMBlockCache.end_rows([self], r)

    @classmethod
    def end_rows(cls, caches: list[DiagonalBiLSTMBlockCache], r: int) -> None:
        """Run the right-to-left scan of row r for every cache at once (one bmm per step over the caches
        of one shape: hidden size, batch, width and dtype)."""
        shapes: dict[tuple, list[DiagonalBiLSTMBlockCache]] = {}
        for cache in caches:
            shapes.setdefault((tuple(cache.h_rl_above.shape), cache.h_rl_above.dtype), []).append(cache)
        for group in shapes.values():
            cls._end_rows_of_one_shape(group, r)

    @staticmethod
    def _end_rows_of_one_shape(caches: list[DiagonalBiLSTMBlockCache], r: int) -> None:
        first = caches[0]
        width, batch, hidden = first.h_rl_above.shape
        gates = torch.stack([cache.right_to_left_gates(r) for cache in caches])  # (L, W, B, 4h)
        right = torch.stack([cache.rl_right for cache in caches])  # (L, h, 4h)
        h_rl = gates.new_zeros(len(caches), width + 1, batch, hidden)  # index W: the state right of the image
        c = gates.new_zeros(len(caches), batch, hidden)
        tanh_c = torch.empty_like(c)
        for j in reversed(range(width)):
            g = gates[:, j].baddbmm_(h_rl[:, j + 1], right)  # (L, B, 4h)
            lstm_cell_step_(g, c, c, tanh_c, h_rl[:, j], hidden)
        for i, cache in enumerate(caches):
            cache.h_rl_above = h_rl[i, :width]
            cache.h_lr_above = cache.row[1:, :, cache.stream :].clone()
