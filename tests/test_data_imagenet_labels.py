"""Downsampled ImageNet's npz labels (Chrabaszcz et al. 2017: 1-based, 1..1000) read 0-based, in
image order, validated; the PNG-folder version has none; a tiny conditional training run on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fastpixel.cli import train as train_cli
from fastpixel.data import DataFileError, load_dataset, read_imagenet, read_imagenet_labels, read_imagenet_npz_labels

RNG = np.random.default_rng(0)
S = 32


def write_npz(folder, *, train=((3, 1), (3, 1)), test=(2, 1), size=S):
    """Train batches (n, first label) and val_data (n, first label), labels 1-based counting up from
    the first; returns {split: (images (N, 3, S, S), labels as in the files)}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, batches in (("train", train), ("test", (test,))):
        images, labels = [], []
        for i, (n, first) in enumerate(batches, start=1):
            data = RNG.integers(0, 256, (n, 3 * size * size), dtype=np.uint8)
            ids = np.arange(first, first + n, dtype=np.int64)
            name = f"train_data_batch_{i}.npz" if split == "train" else "val_data.npz"
            np.savez(folder / name, data=data, labels=ids, mean=np.zeros(3 * size * size))
            images.append(data.reshape(n, 3, size, size))
            labels.append(ids)
        out[split] = (np.concatenate(images), np.concatenate(labels))
    return out


def test_labels_are_the_files_minus_one_in_image_order(tmp_path):
    files = write_npz(tmp_path, train=((3, 1), (3, 998)))  # ids 1,2,3 and 998,999,1000
    images, _ = read_imagenet(tmp_path, "train", S)
    labels = read_imagenet_labels(tmp_path, "train", S)
    np.testing.assert_array_equal(images, files["train"][0])
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 997, 998, 999]
    assert read_imagenet_npz_labels(tmp_path / "val_data.npz", S).tolist() == [0, 1]


def test_load_dataset_returns_them_with_1000_classes(tmp_path):
    files = write_npz(tmp_path, train=((3, 5), (3, 700)), test=(2, 1000 - 1))
    for split in ("train", "test"):
        data = load_dataset("imagenet32", split, data_dir=tmp_path)
        np.testing.assert_array_equal(data.images.numpy(), files[split][0])
        assert data.num_classes == 1000 and data.labels.dtype.is_floating_point is False
        assert data.labels.tolist() == (files[split][1] - 1).tolist()
        assert "class ids = the npz 'labels' minus 1 (0..999" in data.protocol
    limited = load_dataset("imagenet32", "train", data_dir=tmp_path, limit=4)  # across the two batches
    np.testing.assert_array_equal(limited.images.numpy(), files["train"][0][:4])
    assert limited.labels.tolist() == [4, 5, 6, 699] and "(first 4 only)" in limited.protocol
    with pytest.raises(ValueError, match="limit 7 exceeds the 6 images"):
        load_dataset("imagenet32", "train", data_dir=tmp_path, limit=7)


def test_imagenet64_npz_labels(tmp_path):
    write_npz(tmp_path, train=((2, 10),), size=64)
    data = load_dataset("imagenet64", "train", data_dir=tmp_path)
    assert data.images.shape == (2, 3, 64, 64) and data.labels.tolist() == [9, 10] and data.num_classes == 1000


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, 2]), r"label 0 \(row 0; the labels span 0\.\.2\)"),
    (np.array([1, 1001, 2]), r"label 1001 \(row 1; the labels span 1\.\.1001\)"),
    (np.array([1.0, 2.0, 3.0]), r"'labels' is float64, not integers"),
    (np.array([True, True, False]), r"'labels' is bool, not integers"),
    (np.array([1, 2]), r"2 labels for the 3 rows of 'data'"),
    (np.array([[1, 2, 3]]), r"'labels' has shape \(1, 3\)"),
])
def test_bad_labels_give_one_clear_error(tmp_path, labels, match):
    write_npz(tmp_path)
    np.savez(tmp_path / "train_data_batch_2.npz", data=np.zeros((3, 3 * S * S), np.uint8), labels=labels)
    for read in (lambda: read_imagenet_labels(tmp_path, "train", S),
                 lambda: load_dataset("imagenet32", "train", data_dir=tmp_path)):
        with pytest.raises(DataFileError, match=match) as err:
            read()
        text = str(err.value)
        assert "train_data_batch_2.npz" in text and "integer class ids 1..1000 (1-based" in text
        assert "image-net.org" in text


def test_unlabelled_npz_has_no_labels_and_a_mixed_split_is_refused(tmp_path):
    write_npz(tmp_path)
    np.savez(tmp_path / "val_data.npz", data=np.zeros((2, 3 * S * S), np.uint8))  # no 'labels'
    assert read_imagenet_labels(tmp_path, "test", S) is None
    test = load_dataset("imagenet32", "test", data_dir=tmp_path)  # still usable unconditionally
    assert len(test) == 2 and test.labels is None and test.num_classes is None and "class ids" not in test.protocol
    np.savez(tmp_path / "train_data_batch_2.npz", data=np.zeros((3, 3 * S * S), np.uint8))
    with pytest.raises(DataFileError) as err:
        load_dataset("imagenet32", "train", data_dir=tmp_path)
    text = str(err.value)
    assert "no 'labels' in train_data_batch_2.npz, while train_data_batch_1.npz of the same split have them" in text
    assert "or in none" in text
    np.savez(tmp_path / "train_data_batch_1.npz", data=np.zeros((3, 3 * S * S), np.uint8))
    assert load_dataset("imagenet32", "train", data_dir=tmp_path).labels is None  # none labelled: fine


def test_png_folder_version_has_no_labels(tmp_path):
    for split in ("train_32x32", "valid_32x32"):
        (tmp_path / split).mkdir()
        for i in range(2):
            Image.fromarray(RNG.integers(0, 256, (S, S, 3), dtype=np.uint8)).save(tmp_path / split / f"{i}.png")
    write_npz(tmp_path)  # npz beside them: the PNG folders are what is read, images and labels alike
    assert read_imagenet_labels(tmp_path, "train", S) is None
    data = load_dataset("imagenet32", "train", data_dir=tmp_path)
    assert len(data) == 2 and data.labels is None and data.num_classes is None and "van den Oord" in data.protocol
    with pytest.raises(ValueError, match="--conditional needs labels, and --dataset imagenet32 has none"):
        train_cli.run(["--preset", "cpu_tiny", "--dataset", "imagenet32", "--data-dir", str(tmp_path),
                       "--binarize", "none", "--conditional", "--steps", "1", "--batch-size", "2",
                       "--run-dir", str(tmp_path / "run"), "--quiet", "--no-progress"])


def test_train_conditional_on_imagenet32_npz(tmp_path):
    write_npz(tmp_path / "data", train=((3, 1), (3, 998)), test=(2, 500))
    run = tmp_path / "run"
    train_cli.run(["--preset", "cpu_tiny", "--dataset", "imagenet32", "--data-dir", str(tmp_path / "data"),
                   "--binarize", "none", "--model", "gated_pixelcnn", "--hidden", "4", "--layers", "1",
                   "--conditional", "--steps", "2", "--batch-size", "2", "--eval-every", "2", "--sample-grid", "0",
                   "--backend", "torch", "--run-dir", str(run), "--quiet", "--no-progress"])
    config = json.loads((run / "config.json").read_text())
    assert config["conditional"] is True and config["model_config"]["num_classes"] == 1000
    assert config["classes"] == [0, 1, 2, 997, 998, 999]
    assert "class ids = the npz 'labels' minus 1" in config["data"]["train"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("split") == "test" and np.isfinite(r["bits_per_dim"]) for r in records)


def test_batches_are_read_in_batch_number_order_from_the_folder_or_its_part_subfolders(tmp_path):
    """train_data_batch_2 before _10; the 64x64 training batches live in Imagenet64_train_part1/ and _part2/;
    a batch found twice is refused rather than read twice."""
    size = 32
    for number, sub in ((10, "Imagenet32_train_part2"), (2, "Imagenet32_train_part1"), (1, "")):
        folder = tmp_path / sub
        folder.mkdir(exist_ok=True)
        data = np.full((1, 3 * size * size), number, dtype=np.uint8)
        np.savez(folder / f"train_data_batch_{number}.npz", data=data, labels=np.array([number]))
    images, _ = read_imagenet(tmp_path, "train", size)
    assert images[:, 0, 0, 0].tolist() == [1, 2, 10]
    assert read_imagenet_labels(tmp_path, "train", size).tolist() == [0, 1, 9]
    np.savez(tmp_path / "train_data_batch_2.npz", data=np.zeros((1, 3 * size * size), np.uint8), labels=np.array([2]))
    with pytest.raises(DataFileError, match="train_data_batch_2.npz found more than once"):
        read_imagenet(tmp_path, "train", size)
