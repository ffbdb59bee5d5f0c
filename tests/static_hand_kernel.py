"""A small kernel with the scans' launch protocol and loop shapes, for tests/test_bench_static.py's
hand counts: a step loop over [T_BEGIN, T_END) that ends with a group barrier, and inside it, as in
the Row LSTM's tiled kernels, a loop over the columns (trip count W / BLOCK_J from the arguments)
around a loop over this CTA's chunks (NCG trips; a launch with NCG == 1 lets the compiler fold it
away), each iteration a small fp16 dot (whose loops the compiler does not unroll)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastpixel.kernels._group_sync import group_barrier


@triton.jit
def hand_count_kernel(p_x, p_w, p_y, p_count, W, NCG, NCH, T_BEGIN, T_END,
                      BLOCK_J: tl.constexpr, GRID_SYNC: tl.constexpr):
    i_g = tl.program_id(0)
    ch_begin = i_g * NCG
    ch_end = tl.minimum(ch_begin + NCG, NCH)
    o_j = tl.arange(0, BLOCK_J)
    o_k = tl.arange(0, 32)
    for t in range(T_BEGIN, T_END):
        for j0 in range(0, W, BLOCK_J):
            b_x = tl.load(p_x + ((t * W + j0 + o_j) * 32)[:, None] + o_k[None, :])  # [BJ, 32] fp16
            acc = tl.zeros([BLOCK_J, 32], dtype=tl.float32)
            for ch in range(ch_begin, ch_end):
                b_w = tl.load(p_w + (ch * 32 + o_k)[:, None] * 32 + o_k[None, :])  # [32, 32] fp16
                acc = tl.dot(b_x, b_w, acc)
            tl.store(p_y + ((t % 2) * W + j0 + o_j)[:, None] * 32 + o_k[None, :], acc)
        group_barrier(p_count, (t + 1) * 2, GRID_SYNC)


def launch_args(ncg: int, w: int = 128, steps: int = 8):
    """(grid, args, kwargs) of a launch on meta tensors: 2 CTAs of 4 warps, BLOCK_J 32 (W / 32 = 4)."""
    x = torch.empty(steps * w * 32, device="meta", dtype=torch.float16)
    wt = torch.empty(4 * 32 * 32, device="meta", dtype=torch.float16)
    y = torch.empty(2 * w * 32, device="meta", dtype=torch.float32)
    count = torch.empty(1, device="meta", dtype=torch.int32)
    return (2,), (x, wt, y, count, w, ncg, 4, 0, steps), dict(BLOCK_J=32, GRID_SYNC=True, num_warps=4)
