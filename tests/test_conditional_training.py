"""Labels from the readers (the data sets' own class ids), fit(..., labels=), fastpixel-train
--conditional and fastpixel-sample --label / --labels."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

import fastpixel
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.cli.args import CommandError
from fastpixel.data import batch_indices, batch_labels, load_dataset, png_folder_labels, training_batch

RNG = np.random.default_rng(0)


# -- readers ----------------------------------------------------------------------------------------
def test_builtin_digits_carry_their_mnist_labels():
    test = load_dataset("builtin_mnist", "test", binarize="fixed")
    assert test.num_classes == 10 and test.labels.dtype == torch.int64 and test.labels.shape == (1000,)
    assert set(test.labels.tolist()) == set(range(10))
    with np.load(fastpixel.data.builtin.PATH) as npz:
        assert np.array_equal(test.labels.numpy(), npz["test_labels"])
    train = load_dataset("builtin_mnist", "train", binarize="dynamic", limit=50)
    assert train.labels.shape == (50,)
    index = batch_indices(50, 16, seed=3, step=5)
    assert torch.equal(batch_labels(train, 16, seed=3, step=5), train.labels[index])
    assert training_batch(train, 16, seed=3, step=5).shape == (16, 1, 28, 28)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape) + array.tobytes()


def test_idx_labels_are_the_files_own(tmp_path):
    images = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    labels = np.array([7, 3, 3, 9], dtype=np.uint8)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels))
    train = load_dataset("mnist", "train", data_dir=tmp_path)
    assert train.labels.tolist() == [7, 3, 3, 9] and train.num_classes == 10
    assert load_dataset("mnist", "test", data_dir=tmp_path).labels is None  # no t10k label file: unlabelled


def test_cifar_labels_are_the_label_bytes(tmp_path):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    expected = []
    for k, name in enumerate(names):
        label = np.array([[k % 10], [(k + 4) % 10]], dtype=np.uint8)
        pixels = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)
        (tmp_path / name).write_bytes(np.concatenate([label, pixels], axis=1).tobytes())
        if name != "test_batch.bin":
            expected += label[:, 0].tolist()
    assert load_dataset("cifar10", "train", data_dir=tmp_path).labels.tolist() == expected
    assert load_dataset("cifar10", "test", data_dir=tmp_path).labels.tolist() == [5, 9]


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)


def test_png_class_folders_keep_their_integer_names(tmp_path):
    """Folders 3/ and 12/: ids 3 and 12 (not 0 and 1 by sorted position), num_classes 13."""
    for cls, count in ((12, 2), (3, 1)):
        for k in range(count):
            _png(tmp_path / "train" / str(cls) / f"{k}.png", cls)
    train = load_dataset("png", "train", data_dir=tmp_path)
    assert sorted(train.labels.tolist()) == [3, 12, 12] and train.num_classes == 13
    for image, label in zip(train.images, train.labels):  # each image's label is its own folder's id
        assert int(image.max()) == int(label)
    _png(tmp_path / "flat" / "a.png", 0)
    assert png_folder_labels(tmp_path / "flat") is None
    _png(tmp_path / "named" / "cat" / "a.png", 0)
    assert png_folder_labels(tmp_path / "named") is None


# -- fit --------------------------------------------------------------------------------------------
def _model(num_classes=3, seed=0):
    torch.manual_seed(seed)
    return fastpixel.create_model("gated_pixelcnn", channels=1, levels=2, hidden=4, layers=1, num_classes=num_classes,
                                  backend="torch")


def test_fit_trains_on_the_labels_it_is_given():
    x = torch.cat([torch.zeros(8, 1, 3, 3), torch.ones(8, 1, 3, 3)]).long()
    y = torch.tensor([0] * 8 + [2] * 8)
    model = _model()
    out = fastpixel.fit(model, x, labels=y, test_data=x, test_labels=y, steps=40, batch_size=8, lr=0.05)
    assert out["test"]["nats_per_image"] < 1.0  # each label's images are near certain
    with torch.no_grad():
        swapped = model.nll(x, labels=2 - y).mean().item()
    assert swapped > 3.0  # the other label makes them unlikely: the model uses the label


def test_fit_label_errors():
    x = torch.zeros(4, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="class-conditional .*pass labels="):
        fastpixel.fit(_model(), x, steps=1, batch_size=2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        fastpixel.fit(_model(), x, labels=torch.tensor([0, 1, 2, 3]), steps=1, batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        fastpixel.fit(_model(), x, labels=torch.tensor([0, 1]), steps=1, batch_size=2)
    with pytest.raises(ValueError, match="not class-conditional"):
        fastpixel.fit(_model(num_classes=None), x, labels=torch.tensor([0, 1, 2, 0]), steps=1, batch_size=2)


# -- the commands -----------------------------------------------------------------------------------
def test_train_conditional_records_the_class_ids_and_samples_by_label(tmp_path):
    run = tmp_path / "run"
    train_cli.run(["--preset", "cpu_tiny", "--model", "gated_pixelcnn", "--hidden", "4", "--layers", "1",
                   "--conditional", "--steps", "2", "--eval-every", "2", "--train-limit", "64", "--test-limit", "16",
                   "--sample-grid", "4", "--backend", "torch", "--run-dir", str(run), "--quiet", "--no-progress"])
    config = json.loads((run / "config.json").read_text())
    assert config["conditional"] is True and config["model_config"]["num_classes"] == 10
    assert config["classes"] == list(range(10))
    out = sample_cli.run(["--checkpoint", str(run / "checkpoint.pt"), "--labels", "1,7", "--out",
                          str(tmp_path / "s.png"), "--no-progress"])
    assert out["images"].shape == (20, 1, 28, 28)  # 10 per class id by default
    assert np.load(tmp_path / "s.npz")["labels"].tolist() == [1] * 10 + [7] * 10
    one = sample_cli.run(["--checkpoint", str(run / "checkpoint.pt"), "--label", "4", "--num", "3", "--height", "5",
                          "--out", str(tmp_path / "one.png"), "--no-progress"])
    assert one["images"].shape == (3, 1, 5, 5)  # --height alone: square
    for argv, match in ((["--num", "2"], r"class-conditional \(10 classes, ids 0..9\): pass --label"),
                        (["--label", "10"], r"class id\(s\) \[10\] out of range"),
                        (["--label", "1", "--labels", "1,2"], "not both")):
        with pytest.raises(CommandError, match=match):
            sample_cli.run(["--checkpoint", str(run / "checkpoint.pt"), *argv, "--out", str(tmp_path / "x.png")])


def test_train_conditional_refuses_unlabelled_data(tmp_path):
    for k in range(3):
        for split in ("train", "test"):
            _png(tmp_path / "data" / split / f"{k}.png", k)  # no class folders: no labels
    with pytest.raises(ValueError, match="--conditional needs labels"):
        train_cli.run(["--preset", "cpu_tiny", "--dataset", "png", "--data-dir", str(tmp_path / "data"),
                       "--binarize", "none", "--conditional", "--steps", "1", "--batch-size", "2",
                       "--run-dir", str(tmp_path / "run"), "--quiet", "--no-progress"])


def test_sample_refuses_labels_for_an_unconditional_model(tmp_path):
    with pytest.raises(CommandError, match="not class-conditional"):
        sample_cli.run(["--pretrained", "digits", "--label", "3", "--num", "1", "--out", str(tmp_path / "x.png")])
