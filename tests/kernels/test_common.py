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


class _FakeKernel:
    """Stands for a JIT kernel: ``warmup`` 'compiles' and reports the shared memory a config needs."""

    __name__ = "_fake_scan_kernel"

    def __init__(self, shared_by_stages):
        self.shared_by_stages, self.asked = shared_by_stages, []

    def warmup(self, *args, grid, **kwargs):
        import types

        stages = kwargs.get("num_stages", 3)
        self.asked.append(stages)
        return types.SimpleNamespace(metadata=types.SimpleNamespace(shared=self.shared_by_stages[stages]))


@pytest.fixture
def on_a_fake_h100(monkeypatch):
    from fastpixel.kernels import _common

    monkeypatch.setattr(_common, "shared_memory_limit", lambda index: 232_448)
    monkeypatch.setattr(_common, "_fitted", {})
    monkeypatch.setattr("fastpixel.kernels._interpreter.triton_interpreter_enabled", lambda: False)
    return _common


def test_shared_memory_fallback_to_one_stage_before_launch(on_a_fake_h100):
    # the float64 Diagonal BiLSTM forward at h=128 (sm_90 compile): 335,872 B at 3 stages, 196,608 at 1
    kernel = _FakeKernel({3: 335_872, 1: 196_608})
    kwargs = on_a_fake_h100.fit_shared_memory("op", kernel, (1,), (), {"BK": 128}, torch.device("cuda", 0))
    assert kwargs == {"BK": 128, "num_stages": 1} and kernel.asked == [3, 1]
    again = on_a_fake_h100.fit_shared_memory("op", kernel, (1,), (), {"BK": 128}, torch.device("cuda", 0))
    assert again == kwargs and kernel.asked == [3, 1]  # decided once per configuration


def test_shared_memory_that_fits_is_left_alone(on_a_fake_h100):
    kernel = _FakeKernel({2: 204_800})
    kwargs = {"BK": 128, "num_stages": 2}
    assert on_a_fake_h100.fit_shared_memory("op", kernel, (1,), (), kwargs, torch.device("cuda", 0)) == kwargs


def test_shared_memory_that_never_fits_is_refused_with_the_numbers(on_a_fake_h100):
    kernel = _FakeKernel({3: 500_000, 1: 300_000})
    with pytest.raises(ValueError, match=r"diagonal_bilstm_scan \(triton\): _fake_scan_kernel needs 300000 bytes .* "
                                         r"allows 232448"):
        on_a_fake_h100.fit_shared_memory("diagonal_bilstm_scan", kernel, (1,), (), {}, torch.device("cuda", 0))


def test_shared_memory_is_not_checked_off_gpu():
    from fastpixel.kernels import _common

    kernel = _FakeKernel({})
    assert _common.fit_shared_memory("op", kernel, (1,), (), {"X": 1}, torch.device("cpu")) == {"X": 1}
    assert kernel.asked == []
