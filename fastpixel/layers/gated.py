"""The Gated PixelCNN layer (van den Oord et al. 2016, *Conditional Image Generation with PixelCNN
Decoders*, Figure 2), and its incremental step.

Two stacks. With ``k = n // 2`` for an n x n kernel:

* vertical: a (k + 1) x n conv whose output at (r, c) reads rows r - k .. r of its input, columns
  c - k .. c + k. The first layer reads the image with mask "V" (rows r - k .. r - 1 only: the
  centre row is closed), so every vertical feature at row r depends on rows < r only; later
  layers read the previous vertical features, unmasked, the centre row included (those already
  depend on rows above only). No blind spot: the stack sees whole rows above, widening by k
  columns on each side per layer.
* horizontal: a 1 x (k + 1) conv along the row (columns c - k .. c), mask A in the first layer (it
  reads the image, so the pixel's own colour group is closed), mask B after, with the R, G, B
  colour groups of the paper's masks.

One layer, both stacks' pre-activations 2p wide ([f | g], each grouped like the p features):

    v_pre = W_v * v + b_v                                   b_v, b_h: the conditioning V^T h
    h_pre = W_h * h + U v_pre + b_h                         U: unmasked 1x1, 2p -> 2p (the link)
    v'    = tanh(v_pre_f) * sigmoid(v_pre_g)
    h'    = [h +] O tanh(h_pre_f) * sigmoid(h_pre_g)        O: 1x1 mask B, p -> p; no residual in the
                                                            first layer (its input is the image)

The vertical stack joins the horizontal one through ``U`` *before* the gate, from the vertical
features of the same row (which see rows above only, so no shift is needed and no row is cut).
``[b_v | b_h]`` (B, 4p) is the optional per-image conditioning bias ``E[label] + W cond``
(:mod:`fastpixel.layers.conditioning`; ``cond_channels`` = 4p).

Cached sampling (:class:`GatedBlockCache`): the vertical stack at row r depends on rows above only,
so it is computed for the whole row when the row starts -- each layer keeps a buffer of the k + 1
input rows its vertical conv reads, and the layers run in order, each passing its new row of v' to
the next (``start_rows``) -- and folded, with U (folded into the conv's weights), both biases and
the conditioning, into one (W, B, 2p) row of additive terms. A pixel then costs the horizontal
1 x (k + 1) conv over a one-row window (one ``addmm`` with that row's term as its bias), the gate
and the output 1x1 conv: six small ops.
"""

from __future__ import annotations

import torch
from torch import nn

from fastpixel.layers.conv_step import masked_weight
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.step import InferenceCache
from fastpixel.masks import color_groups, gate_groups


def gate(pre: torch.Tensor) -> torch.Tensor:
    """tanh(f) * sigmoid(g) of pre-activations [f | g] split along dim 1."""
    f, g = pre.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedBlock(nn.Module):
    """One Gated PixelCNN layer on (v, h): see the module docstring.

    Args:
      in_channels: features of v and h entering the layer (the image's C for the first layer, else p).
      hidden: p, the features of each stack.
      kernel_size: n (odd, >= 3 for the first layer, >= 1 after): a (n//2 + 1) x n vertical and a
        1 x (n//2 + 1) horizontal conv.
      first: the first layer (reads the image: vertical mask V, horizontal mask A, no residual).
      num_colors: 3 for RGB, 1 for grey/binary.
    Shapes: v, h (B, in_channels, H, W) -> v', h' (B, p, H, W).
    """

    def __init__(
        self, in_channels: int, hidden: int, *, kernel_size: int, first: bool, num_colors: int = 1,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        smallest = 3 if first else 1
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < smallest or kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be an odd int >= {smallest} ({'first' if first else 'later'} Gated PixelCNN layer), "
                f"got {kernel_size!r}"
            )
        k = kernel_size // 2
        self.hidden, self.first, self.half = hidden, first, k
        kw = dict(backend=backend)
        in_groups = color_groups(in_channels, num_colors)
        pre_groups = gate_groups(hidden, num_colors, num_gates=2)  # [f | g], unit j of each in group(j)
        self.vertical = MaskedConv2d(in_channels, 2 * hidden, (k + 1, kernel_size), "V" if first else None,
                                     center=(k, k), in_groups=in_groups, out_groups=pre_groups, **kw)
        self.horizontal = MaskedConv2d(in_channels, 2 * hidden, (1, k + 1), "A" if first else "B", center=(0, k),
                                       in_groups=in_groups, out_groups=pre_groups, **kw)
        self.link = MaskedConv2d(2 * hidden, 2 * hidden, 1, None, **kw)  # unmasked: v_pre sees rows above only
        self.out = MaskedConv2d(hidden, hidden, 1, "B", num_colors=num_colors, **kw)

    @property
    def cond_channels(self) -> int:
        """Width of the conditioning bias: [b_v | b_h], 2p each."""
        return 4 * self.hidden

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, cond_bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v, h (B, in, H, W) -> v', h' (B, p, H, W); cond_bias: optional (B, 4p) = [b_v | b_h]."""
        v_pre = self.vertical(v)
        if cond_bias is not None:
            b_v, b_h = cond_bias[:, :, None, None].chunk(2, dim=1)
            v_pre = v_pre + b_v
        h_pre = self.horizontal(h) + self.link(v_pre)
        if cond_bias is not None:
            h_pre = h_pre + b_h
        h_out = self.out(gate(h_pre))
        return gate(v_pre), h_out if self.first else h + h_out

    # -- incremental step (cached sampling; protocol in fastpixel.layers.step) -----------------
    def allocate_inference_cache(
        self, batch: int, width: int, gate_bias: torch.Tensor | None = None, cond_bias: torch.Tensor | None = None
    ) -> GatedBlockCache:
        if gate_bias is not None:
            raise TypeError("GatedBlock takes no gate_bias map (its vertical stack is its own; use cond_bias)")
        return GatedBlockCache(self, batch, width, cond_bias)

    def step(self, cache: GatedBlockCache, j: int, x: torch.Tensor) -> torch.Tensor:
        """x: h at (r, j) (B, p) (the first layer reads the image from its cache) -> h' there (B, p)."""
        return cache.step(j, x)


class GatedBlockCache(InferenceCache):
    """A Gated PixelCNN layer one pixel at a time: the vertical stack row by row, the horizontal
    stack pixel by pixel (see the module docstring).

    Row work, one product: the vertical conv's (k + 1) x n patches of the whole row, (W B,
    (k + 1) n in), times ``[W_v | W_v U^T]`` (the link folded into the conv's weights) gives v_pre
    and U v_pre together. Pixel work, six small ops on buffers and views made once (at this size
    each op's overhead is the cost): the input into the window, ``pre = patch @ W_h + row term``,
    ``sigmoid_``, ``mul_``, the output product, the residual ``add_``. The gate takes no ``tanh``:
    the f half of ``W_h`` and of the row term is doubled, so that with ``s = sigmoid(pre)``

        tanh(f) sigmoid(g) = (2 s_f - 1) s_g = [s_f s_g | s_g] @ [2; -1]

    and the ``[2; -1]`` is folded into the output conv's weights: ``O gate = [s_f s_g | s_g] @ [2 O^T; -O^T]``.
    """

    def __init__(self, block: GatedBlock, batch: int, width: int, cond_bias: torch.Tensor | None = None) -> None:
        p, k = block.hidden, block.half
        self.first, self.hidden, self.k = block.first, p, k
        self.reads_image = block.first
        vertical = block.vertical
        w_v = masked_weight(vertical)  # (2p, in, k + 1, n)
        kh, n = vertical.spec.kernel_size
        w_v = w_v.permute(2, 3, 1, 0).reshape(-1, 2 * p)  # ((k + 1) n in, 2p): patch order (row, column, channel)
        link = masked_weight(block.link)[:, :, 0, 0].t()  # (2p, 2p): v_pre @ link = U v_pre
        zeros = w_v.new_zeros(2 * p)
        b_v = vertical.bias if vertical.bias is not None else zeros
        b_link = block.link.bias if block.link.bias is not None else zeros
        b_h = block.horizontal.bias if block.horizontal.bias is not None else zeros
        if cond_bias is not None:  # (B, 4p) = [b_v | b_h] per image
            c_v, c_h = cond_bias.chunk(2, dim=1)
            b_v, b_h = b_v + c_v, b_h + c_h
        b_v = torch.broadcast_to(b_v, (batch, 2 * p))
        b_h = torch.broadcast_to(b_h, (batch, 2 * p))
        double_f = torch.cat((w_v.new_full((p,), 2.0), w_v.new_ones(p)))  # the f half of the horizontal pre x 2
        # [v_pre | row term] = patches @ [W_v | W_v U^T] + [b_v | U b_v + b_link + b_h]   (row term: f half x 2)
        self.row_weight = torch.cat((w_v, w_v @ link * double_f), dim=1).contiguous()  # ((k + 1) n in, 4p)
        row_bias = torch.cat((b_v, (b_v @ link + b_link + b_h) * double_f), dim=1)  # (B, 4p)
        self.row_bias = row_bias.expand(width, batch, 4 * p).reshape(width * batch, 4 * p)
        cin = vertical.spec.in_channels
        # the k + 1 input rows of the vertical conv, zero-padded by k columns on each side: (k + 1, W + 2k, B, in)
        self.v_rows = w_v.new_zeros(kh, width + 2 * k, batch, cin)
        r_s, c_s, b_s, i_s = self.v_rows.stride()
        self.patch_shape, self.patch_stride = (width, batch, kh, n, cin), (c_s, b_s, r_s, c_s, i_s)
        self.row_out = w_v.new_zeros(width, batch, 4 * p)  # [v_pre | row term] of the current row
        self.v_row = None  # v' of the current row, (W, B, p): the next layer's vertical input
        # the horizontal 1 x (k + 1) window over the row, k zero columns on the left: (B, W + k, in)
        h_weight = masked_weight(block.horizontal)[:, :, 0, :]  # (2p, in, k + 1)
        self.h_weight = (h_weight.permute(2, 1, 0).reshape(-1, 2 * p) * double_f).contiguous()  # ((k + 1) in, 2p)
        self.window = w_v.new_zeros(batch, width + k, cin)
        out_weight = masked_weight(block.out)[:, :, 0, 0].t()  # (p, p)
        self.out_weight = torch.cat((2 * out_weight, -out_weight)).contiguous()  # (2p, p)
        self.out_bias = block.out.bias if block.out.bias is not None else zeros[:p]
        self.pre = w_v.new_zeros(batch, 2 * p)
        self.pre_f, self.pre_g = self.pre[:, :p], self.pre[:, p:]
        # Views made once (indexing costs as much as a tiny op): per column j, the window's input
        # slot, its patch (a view: the window is contiguous per image) and the row term.
        self._columns = [
            (self.window[:, k + j], self.window[:, j : j + k + 1].reshape(batch, -1), self.row_out[j, :, 2 * p :])
            for j in range(width)
        ]

    # row work ------------------------------------------------------------------------------------
    @classmethod
    def start_rows(cls, caches: list[GatedBlockCache], r: int) -> None:
        """The vertical stack of row r, layer after layer (each reads the previous one's new row)."""
        below = None
        for cache in caches:
            if below is None and not cache.first:
                raise RuntimeError("a Gated PixelCNN layer's cache starts a row without the layer below it")
            cache._start_row(None if cache.first else below)
            below = cache.v_row

    def _start_row(self, v_in: torch.Tensor | None) -> None:
        rows, k, p = self.v_rows, self.k, self.hidden
        rows[:-1] = rows[1:].clone()
        if v_in is None:  # the first layer: row r of the image arrives through write_image (mask V never reads it)
            rows[-1].zero_()
        else:
            rows[-1, k : rows.shape[1] - k] = v_in
        width, batch = self.patch_shape[:2]
        patches = rows.as_strided(self.patch_shape, self.patch_stride).reshape(width * batch, -1)
        torch.addmm(self.row_bias, patches, self.row_weight, out=self.row_out.view(width * batch, 4 * p))
        self.v_row = torch.tanh(self.row_out[..., :p]).mul_(torch.sigmoid(self.row_out[..., p : 2 * p]))  # (W, B, p)
        self.window.zero_()

    def start_row(self, r: int) -> None:
        GatedBlockCache.start_rows([self], r)

    # pixel work ----------------------------------------------------------------------------------
    def write_image(self, j: int, c: int, value: torch.Tensor) -> None:
        """The first layer: embedded sub-pixel c of (r, j), (B,)."""
        self.window[:, self.k + j, c] = value
        self.v_rows[-1, self.k + j, :, c] = value

    def step(self, j: int, x: torch.Tensor) -> torch.Tensor:
        slot, patch, row_term = self._columns[j]
        if not self.first:
            slot.copy_(x)
        torch.addmm(row_term, patch, self.h_weight, out=self.pre).sigmoid_()  # [s_f | s_g]
        self.pre_f.mul_(self.pre_g)  # [s_f s_g | s_g]
        out = torch.addmm(self.out_bias, self.pre, self.out_weight)  # O (tanh(f) sigmoid(g))
        return out if self.first else out.add_(x)
