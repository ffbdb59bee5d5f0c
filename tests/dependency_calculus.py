"""Derive, by set propagation, exactly which input sub-pixels each prediction of a model can see.

A feature map is described by ``D[g, r, j, n]`` (bool): do the units of colour group ``g`` at pixel
(r, j) depend on input sub-pixel ``n``? Sub-pixels are numbered in generation order,
``n = (r * W + j) * C + c``. All units of one group at one pixel share their dependency structure
(same mask row, same recurrence), so groups suffice. The rules mirror the paper, not the code:

* masked conv: an open tap (above, or left in the row; mask V: above only; no mask: every tap)
  reads every group of the shifted pixel; the centre tap reads groups ``< g`` (mask A) or ``<= g``
  (mask B); closed taps read nothing;
* elementwise ops and residual sums: union;
* Row LSTM: h(r, j, g) = is(r, j, g) | all groups of h(r-1, j-1 .. j+1)  (c is carried per unit,
  and c(r-1, j) is contained in h(r-1, j));
* Diagonal LSTM, left to right: h(r, j, g) = is(r, j, g) | all of h(r, j-1) | all of h(r-1, j);
  right to left mirrored, and its output shifted down one row before the sum;
* Gated PixelCNN layer: v' = V(v), h' = [h |] O(H(h) | U(V(v))) (the gate pairs units of one group).

With generic (random) weights the true Jacobian pattern equals this derivation; the tests check that.
"""

from __future__ import annotations

import contextlib

import torch
from einops import rearrange

from fastpixel.layers import DiagonalBiLSTM, MaskedConv2d, ResidualConvBlock, ResidualLSTMBlock, RowLSTM
from fastpixel.layers.gated import GatedBlock


def input_dependencies(channels: int, height: int, width: int) -> torch.Tensor:
    """D for the embedded image: channel c at (r, j) depends on sub-pixel (r, j, c) only."""
    n = channels * height * width
    d = torch.zeros(channels, height, width, n, dtype=torch.bool)
    for r in range(height):
        for j in range(width):
            for c in range(channels):
                d[c, r, j, (r * width + j) * channels + c] = True
    return d


def shifted(d: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[..., r, j, :] = d[..., r + dy, j + dx, :], False outside the image."""
    out = torch.zeros_like(d)
    _, h, w, _ = d.shape
    r0, r1 = max(0, -dy), min(h, h - dy)
    j0, j1 = max(0, -dx), min(w, w - dx)
    if r0 < r1 and j0 < j1:
        out[:, r0:r1, j0:j1] = d[:, r0 + dy : r1 + dy, j0 + dx : j1 + dx]
    return out


def all_groups(d: torch.Tensor) -> torch.Tensor:
    """Union over groups, broadcast back to every group."""
    return d.any(dim=0, keepdim=True).expand_as(d)


def masked_conv(d: torch.Tensor, layer: MaskedConv2d) -> torch.Tensor:
    spec = layer.spec
    kh, kw = spec.kernel_size
    cy, cx = spec.center
    groups = d.shape[0]
    out = torch.zeros_like(d)
    for y in range(kh):
        for x in range(kw):
            if (y, x) == (cy, cx) and spec.center_by_group:
                for g in range(groups):
                    limit = g if spec.mask_type == "A" else g + 1
                    if limit:
                        out[g] |= d[:limit].any(dim=0)
            elif spec.tap_is_open(y, x):
                out |= all_groups(shifted(d, y - cy, x - cx))
    return out


def row_lstm(d_in: torch.Tensor, layer: RowLSTM) -> torch.Tensor:
    is_dep = masked_conv(d_in, layer.input_to_state)
    _, h, w, _ = d_in.shape
    out = is_dep.clone()
    for r in range(1, h):
        prev = out[:, r - 1].any(dim=0)  # (W, N): all groups of the previous row
        for j in range(w):
            out[:, r, j] |= prev[max(0, j - 1) : j + 2].any(dim=0)
    return out


def _diagonal_direction(is_dep: torch.Tensor, step: int) -> torch.Tensor:
    """One direction: step=+1 reads the left neighbour, step=-1 the right one."""
    _, h, w, _ = is_dep.shape
    out = is_dep.clone()
    columns = range(w) if step == 1 else range(w - 1, -1, -1)
    for r in range(h):
        for j in columns:
            if 0 <= j - step < w:
                out[:, r, j] |= out[:, r, j - step].any(dim=0)
            if r > 0:
                out[:, r, j] |= out[:, r - 1, j].any(dim=0)
    return out


def diagonal_bilstm(d_in: torch.Tensor, layer: DiagonalBiLSTM) -> torch.Tensor:
    is_dep = masked_conv(d_in, layer.input_to_state)  # both directions' gates share the pattern
    left_to_right = _diagonal_direction(is_dep, +1)
    right_to_left = _diagonal_direction(is_dep, -1)
    return left_to_right | shifted(right_to_left, -1, 0)


def block(d: torch.Tensor, module) -> torch.Tensor:
    if isinstance(module, ResidualConvBlock):
        y = masked_conv(masked_conv(masked_conv(d, module.reduce), module.conv), module.expand)
        return d | y
    if isinstance(module, ResidualLSTMBlock):
        lstm = module.lstm
        h = row_lstm(d, lstm) if isinstance(lstm, RowLSTM) else diagonal_bilstm(d, lstm)
        return d | masked_conv(h, module.expand)
    raise TypeError(f"no rule for {type(module).__name__}")


def gated_block(v: torch.Tensor, h: torch.Tensor, module: GatedBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """(v', h') of one Gated PixelCNN layer."""
    v_pre = masked_conv(v, module.vertical)
    h_pre = masked_conv(h, module.horizontal) | masked_conv(v_pre, module.link)
    h_out = masked_conv(h_pre, module.out)
    return v_pre, h_out if module.first else h | h_out


def model_dependencies(model, height: int, width: int) -> torch.Tensor:
    """(C, H, W, N) bool: logits of colour c at (r, j) can depend on sub-pixel n."""
    if model.input_conv is None:  # the Gated PixelCNN: both stacks read the image
        v = h = input_dependencies(model.channels, height, width)
        d = torch.zeros_like(h)
        for module, i in zip(model.blocks, range(len(model.blocks))):
            v, h = gated_block(v, h, module)
            if model.skip:
                d |= masked_conv(h, model.skip_convs[i])
        return masked_conv(masked_conv(d if model.skip else h, model.output_conv1), model.output_conv2)
    d = masked_conv(input_dependencies(model.channels, height, width), model.input_conv)
    streams = [d]
    for module in model.blocks:
        d = block(d, module)
        streams.append(d)
    if model.skip:
        d = torch.zeros_like(d)
        for stream, conv in zip(streams, model.skip_convs):
            d |= masked_conv(stream, conv)
    return masked_conv(masked_conv(d, model.output_conv1), model.output_conv2)


def jacobian_dependencies(model, height: int, width: int, samples: int = 2, seed: int = 0) -> torch.Tensor:
    """(C, H, W, N) bool: observed nonzero d logits[:, c, r, j] / d input sub-pixel n.

    Structure, not one input's activity: ReLUs are swapped for leaky ReLUs while the Jacobian is taken
    (a ReLU that is off would hide a real connection), and the pattern is the union over a few random
    inputs. The model should be float64.
    """
    with leaky_relus():
        return _union_of_jacobians(model, height, width, samples, seed)


@contextlib.contextmanager
def leaky_relus():
    """Swap torch.relu for a leaky ReLU: every connection then carries a nonzero derivative."""
    real_relu = torch.relu
    torch.relu = lambda t: torch.nn.functional.leaky_relu(t, 0.1)
    try:
        yield
    finally:
        torch.relu = real_relu


def _union_of_jacobians(model, height: int, width: int, samples: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    c = model.channels
    n = c * height * width
    seen = torch.zeros(c, height, width, n, dtype=torch.bool)
    for _ in range(samples):
        u = torch.rand(1, c, height, width, generator=gen, dtype=torch.float64) * 2 - 1
        # A random mix of the levels is zero only where every level's derivative is (generically).
        mix = torch.rand(model.levels, 1, 1, 1, generator=gen, dtype=torch.float64) + 0.5
        jac = torch.autograd.functional.jacobian(
            lambda v: (model.forward_float(v)[0] * mix).sum(0), u, vectorize=True
        )  # (C, H, W, 1, C_in, H_in, W_in)
        jac = rearrange(jac, "c h w 1 ci hi wi -> c h w (hi wi ci)")  # inputs in generation order
        seen |= jac != 0
    return seen


def generation_order_mask(channels: int, height: int, width: int) -> torch.Tensor:
    """(C, H, W, N) bool: sub-pixel n comes strictly before the predicted sub-pixel (r, j, c)."""
    n = channels * height * width
    index = torch.arange(n).reshape(height, width, channels).permute(2, 0, 1)  # (C, H, W)
    return torch.arange(n)[None, None, None, :] < index[..., None]
