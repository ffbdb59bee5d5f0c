"""``fastpixel.fit``: train any model on images held in Python (issue 13, item 8), with the same loop
as ``fastpixel-train`` (one loop: the same data and settings give the same weights bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastpixel
from fastpixel.data import load_dataset
from fastpixel.training import train
from tests.cli_helpers import tiny_config


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_and_the_command_share_one_loop(tmp_path):
    config = tiny_config(tmp_path / "cmd", steps=4, eval_every=2, checkpoint_every=4, ema=0.5)
    by_command = train(config)
    data = dict(binarize="fixed")
    train_images = load_dataset("builtin_mnist", "train", limit=32, **data).images
    test_images = load_dataset("builtin_mnist", "test", limit=16, **data).images
    torch.manual_seed(config["seed"])
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, output_hidden=8)
    result = fastpixel.fit(model, train_images, test_data=test_images, steps=4, batch_size=8, lr=1e-2, clip_grad=0.5,
                           ema=0.5, eval_every=2, log_every=1, sample_grid=0, backend="reference")
    ckpt = torch.load(tmp_path / "cmd" / "checkpoint.pt", weights_only=True)
    assert state_equal(model.state_dict(), ckpt["model"])
    assert result["test"]["nats_per_image"] == by_command["test"]["nats_per_image"]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in result["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in by_command["history"]]


class Digits(torch.utils.data.Dataset):
    """A map-style Dataset yielding (image (1, H, W) uint8, label)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], i % 10


def test_fit_on_a_dataset_matches_the_tensor(tmp_path):
    images = torch.randint(0, 4, (12, 1, 5, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    results = []
    for data in (images, Digits(images), images.numpy(), images[:, 0].long()):
        torch.manual_seed(0)
        model = fastpixel.create_model("row_lstm", channels=1, levels=4, hidden=2, layers=1)
        history = fastpixel.fit(model, data, steps=3, batch_size=4, lr=1e-2, log_every=1)["history"]
        results.append((model.state_dict(), [r["nats_per_image"] for r in history]))
    for state, nats in results[1:]:
        assert state_equal(state, results[0][0]) and nats == results[0][1]
    assert len(results[0][1]) == 3 and all(np.isfinite(results[0][1]))


def test_fit_writes_a_run_dir_the_commands_read(tmp_path):
    images = torch.randint(0, 2, (16, 1, 6, 6), generator=torch.Generator().manual_seed(1))
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    result = fastpixel.fit(model, images, test_data=images[:4], steps=4, batch_size=4, run_dir=tmp_path / "run",
                           checkpoint_every=2, keep=2, sample_grid=2)
    run = tmp_path / "run"
    assert result["step"] == 4 and result["test"]["images"] == 4
    assert {"checkpoint.pt", "checkpoint-00000002.pt", "checkpoint-00000004.pt", "metrics.jsonl", "loss.png",
            "config.json"} <= {p.name for p in run.iterdir()}
    loaded = fastpixel.from_pretrained(run / "checkpoint.pt")
    assert state_equal(loaded.state_dict(), model.state_dict())
    from fastpixel.cli.sample import run as sample

    drawn = sample(["--checkpoint", str(run / "checkpoint.pt"), "--num", "2", "--out", str(tmp_path / "s.png")])
    assert tuple(drawn["images"].shape) == (2, 1, 6, 6)  # the size of the data fit was given
    with pytest.raises(FileExistsError, match="--resume"):
        fastpixel.fit(model, images, steps=4, batch_size=4, run_dir=run)
    again = fastpixel.fit(model, images, steps=6, batch_size=4, run_dir=run, resume=True, checkpoint_every=2, keep=2)
    assert again["step"] == 6


@pytest.mark.parametrize("data, error, match", [
    (torch.rand(4, 1, 3, 3), TypeError, "integer images"),
    (torch.zeros(4, 3, 3, 3, dtype=torch.long), ValueError, "3 channel"),
    (torch.full((4, 1, 3, 3), 2), ValueError, r"values in \[2, 2\].*\[0, 1\]"),
    (torch.zeros(0, 1, 3, 3, dtype=torch.long), ValueError, "no images"),
    (torch.zeros(4, 1, 1, 3, 3, dtype=torch.long), ValueError, r"\(N, C, H, W\)"),
    ([1, 2, 3], TypeError, "integer image tensor"),
    ("images", TypeError, "integer tensor"),
])
def test_fit_refuses_bad_data(data, error, match):
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=0)
    with pytest.raises(error, match=match):
        fastpixel.fit(model, data, steps=1, batch_size=1)


def test_fit_refuses_bad_settings():
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=0)
    images = torch.zeros(4, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="batch_size 8 exceeds the 4 training images"):
        fastpixel.fit(model, images, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        fastpixel.fit(model, images, steps=0)
    with pytest.raises(TypeError, match="channels and .levels"):
        fastpixel.fit(torch.nn.Linear(2, 2), images, steps=1)


def test_fit_moves_every_layer_to_the_backend_and_they_stay_there():
    """fit(backend=) switches the model's layers (the model owns its backend; issue 17), for a
    fastpixel model and for a user's own module holding fastpixel layers; no process-wide state."""
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=0, backend="torch")
    fastpixel.fit(model, torch.zeros(4, 1, 3, 3, dtype=torch.long), steps=1, batch_size=2, backend="reference")
    assert {m.backend for m in model.modules() if hasattr(m, "requested_backend")} == {"reference"}
    assert fastpixel.backend.requested_backend() == fastpixel.backend.requested_backend(None)  # nothing global set
