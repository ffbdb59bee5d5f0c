"""kernels/_common.py as the scans use it: the SM count (fixed off-GPU, overridable for static
analysis) and the host-side int32 guard in both scan launchers (meta tensors: no memory, no GPU)."""

from __future__ import annotations

import pytest
import torch


def test_num_sms_is_fixed_off_gpu_and_assume_num_sms_overrides_every_device():
    from fastpixel.kernels._common import assume_num_sms, num_sms

    assert num_sms(torch.device("cpu")) == 1
    assert num_sms("meta") == 1
    with assume_num_sms(132):
        assert num_sms("cpu") == 132
        assert num_sms(torch.device("cuda", 3)) == 132  # no CUDA query inside the block
        with assume_num_sms(8):
            assert num_sms("meta") == 8
        assert num_sms("meta") == 132
    assert num_sms("cpu") == 1


def test_assume_num_sms_rejects_a_count_below_one():
    from fastpixel.kernels._common import assume_num_sms

    with pytest.raises(ValueError, match="SM count must be >= 1, got 0"):
        with assume_num_sms(0):
            pass


def test_weight_grad_split_follows_the_sm_count(monkeypatch):
    """The split-K weight gradients fill two CTAs per SM of the device (no hard-coded GPU size)."""
    from fastpixel.kernels import _common, diagonal_bilstm, row_lstm

    monkeypatch.setattr(row_lstm, "triton_interpreter_enabled", lambda: False)
    monkeypatch.setattr(diagonal_bilstm, "triton_interpreter_enabled", lambda: False)
    grids = []

    class _Record:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: grids.append(grid)

    monkeypatch.setattr(row_lstm, "_row_lstm_dw_kernel", _Record())
    monkeypatch.setattr(diagonal_bilstm, "_diagonal_bilstm_wgrad_kernel", _Record())
    b, h, s = 16, 128, 32
    meta = dict(device="meta", dtype=torch.bfloat16)
    for sms in (66, 132):
        with _common.assume_num_sms(sms):
            row_lstm._state_weight_grad(torch.empty(b, 4 * h, s, s, **meta), torch.empty(b, h, s, s, **meta),
                                        torch.empty(4 * h, h, 1, 3, **meta))
            diagonal_bilstm._state_weight_grad(torch.empty(2, b, s, s, 4 * h, **meta),
                                               torch.empty(2, b, s, s, h, **meta), torch.bfloat16)
    # (tiles, 3 taps, split), split = ceil(2 SMs / (3 * 16 tiles)); (tiles, 2 directions, split),
    # split = ceil(2 SMs / (16 tiles * 2 directions)); both then rounded to whole pixel blocks
    assert grids == [(16, 3, 3), (16, 2, 5), (16, 3, 6), (16, 2, 9)]


@pytest.mark.parametrize("scan", ["row_lstm", "diagonal_bilstm"])
def test_scan_launchers_reject_an_image_spanning_2_31_elements(scan):
    """Offsets inside one image are int32 (the image's own offset is int64), so the launchers
    refuse an image of >= 2**31 elements, before allocating anything (meta tensors)."""
    from fastpixel.kernels import diagonal_bilstm, row_lstm

    h, s = 2**14, 2**8  # 4h * H * W = 2**32 elements per image
    gates = torch.empty(1, 4 * h, s, s, device="meta", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"one image spans \d+ >= 2\*\*31 elements"):
        if scan == "row_lstm":
            row_lstm.row_lstm_forward(gates, torch.empty(4 * h, h, 1, 3, device="meta", dtype=torch.bfloat16))
        else:
            w = torch.empty(4 * h, h, 2, 1, device="meta", dtype=torch.bfloat16)
            diagonal_bilstm.diagonal_bilstm_forward(gates, w, gates, w)
