"""Checkpoints: weights_only loading, atomic replacement, RNG round trip, errors naming the file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fastpixel import checkpoint as ckpt_module
from fastpixel.checkpoint import FORMAT, read_checkpoint, rng_state, save_checkpoint, set_rng_state


def state(value: float) -> dict:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {"format": FORMAT, "step": 7, "value": value, "config": {"name": "pixelcnn", "skip": False, "x": None},
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state()}


def test_roundtrip_loads_with_weights_only(tmp_path):
    saved = state(1.5)
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", saved)
    raw = torch.load(path, weights_only=True)  # only tensors and plain types
    assert raw["step"] == 7 and raw["config"] == saved["config"]
    loaded = read_checkpoint(path)
    assert torch.equal(loaded["model"]["weight"], saved["model"]["weight"])
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], saved["optimizer"]["state"][0]["exp_avg"])
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary file left


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", state(1.0))

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, state(2.0))
    assert read_checkpoint(path)["value"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_rng_round_trip():
    torch.manual_seed(3), np.random.seed(4), random.seed(5)
    saved = rng_state()
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    torch.rand(10), np.random.rand(10), random.random()
    set_rng_state(saved)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and first[3] == again[3]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        read_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="bad.pt: cannot read"):
        read_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(1)}, other)
    with pytest.raises(RuntimeError, match="not a fastpixel checkpoint"):
        read_checkpoint(other)


class Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil()}, path)
    with pytest.raises(RuntimeError, match="cannot read") as err:
        read_checkpoint(path)
    # the refusal says why, and does not relay torch's advice to load it with weights_only=False
    assert "would run code" in str(err.value) and "weights_only" not in str(err.value)
    assert "evil.pt" in str(err.value)
