"""Every reader on tiny files written here in its exact format, and on missing/corrupt ones."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from fastpixel.data import (
    DataFileError, load_dataset, read_amat, read_cifar10, read_idx, read_imagenet, read_mnist_images,
    read_png_folder,
)
from fastpixel.data import idx as idx_module

RNG = np.random.default_rng(0)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist_folder(folder, n=(3, 2), gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, stem, count in (("train", "train-images-idx3-ubyte", n[0]), ("test", "t10k-images-idx3-ubyte", n[1])):
        arrays[split] = RNG.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        data = idx_bytes(arrays[split])
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return arrays


# -- idx (MNIST, Fashion-MNIST) --------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    arrays = write_mnist_folder(tmp_path, gz=gz)
    for split in ("train", "test"):
        np.testing.assert_array_equal(read_mnist_images(tmp_path, split), arrays[split])
    data = load_dataset("mnist", "test", data_dir=tmp_path)
    assert tuple(data.images.shape) == (2, 1, 28, 28) and data.levels == 256
    np.testing.assert_array_equal(data.images[:, 0].numpy(), arrays["test"])


def test_idx_torchvision_raw_layout(tmp_path):
    arrays = write_mnist_folder(tmp_path / "raw", gz=False)
    np.testing.assert_array_equal(read_mnist_images(tmp_path, "train"), arrays["train"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "bad idx header"),
        (idx_bytes(np.zeros((2, 28, 28)))[:-5], "the header promises 1568"),
        (idx_bytes(np.zeros((2, 28, 28))) + b"\x00", "the header promises 1568"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated idx header"),
        (b"", "(empty file)"),
        (gzip.compress(idx_bytes(np.zeros((2, 28, 28))))[:-9], "corrupt or truncated gzip"),
    ],
)
def test_idx_corrupt(tmp_path, content, message):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as err:
        read_idx(path)
    text = str(err.value)
    assert str(path) in text and message in text and "expected an idx file" in text and "yann.lecun.com" in text


def test_idx_images_must_be_3d(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(5)))
    with pytest.raises(DataFileError, match="idx3"):
        read_mnist_images(tmp_path, "test")


def test_mnist_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_dataset("mnist", "train", data_dir=tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(err.value) and "file not found" in str(err.value)
    with pytest.raises(DataFileError, match="needs data_dir"):
        load_dataset("mnist", "train")


def test_fashion_mnist_found_in_debian_location(tmp_path, monkeypatch):
    assert str(idx_module.DEBIAN_FASHION_MNIST_DIR) == "/usr/share/datasets/fashion-mnist"
    monkeypatch.setattr(idx_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    arrays = write_mnist_folder(tmp_path)
    data = load_dataset("fashion_mnist", "train")  # no data_dir: the Debian location
    np.testing.assert_array_equal(data.images[:, 0].numpy(), arrays["train"])
    assert "Fashion-MNIST" in data.protocol


def test_fashion_mnist_missing_mentions_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataFileError) as err:
        load_dataset("fashion_mnist", "test")
    assert "apt install dataset-fashion-mnist" in str(err.value) and str(tmp_path / "absent") in str(err.value)


# -- binarized MNIST (.amat) -------------------------------------------------------------------
def write_amat(path, images):
    path.write_text("".join(" ".join(str(v) for v in im.ravel()) + "\n" for im in images))


def test_amat_roundtrip(tmp_path):
    images = RNG.integers(0, 2, (3, 28, 28), dtype=np.uint8)
    write_amat(tmp_path / "binarized_mnist_valid.amat", images)
    np.testing.assert_array_equal(read_amat(tmp_path / "binarized_mnist_valid.amat"), images)
    data = load_dataset("binarized_mnist", "valid", data_dir=tmp_path)
    assert data.levels == 2 and tuple(data.images.shape) == (3, 1, 28, 28)
    assert "fixed binarization" in data.protocol and "the paper's protocol" in data.protocol


@pytest.mark.parametrize(
    "line, message",
    [("0 1 " * 50, "line 2 has 100 values"), ("2 " * 784, "values other than 0 and 1"), ("x " * 784, "non-numeric")],
)
def test_amat_corrupt(tmp_path, line, message):
    path = tmp_path / "binarized_mnist_test.amat"
    path.write_text(" ".join(["1"] * 784) + "\n" + line + "\n")
    with pytest.raises(DataFileError) as err:
        read_amat(path)
    assert str(path) in str(err.value) and message in str(err.value) and "784 space-separated" in str(err.value)


def test_amat_missing(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_dataset("binarized_mnist", "train", data_dir=tmp_path)
    assert "binarized_mnist_train.amat" in str(err.value) and "larocheh" in str(err.value)


# -- CIFAR-10 ----------------------------------------------------------------------------------
def write_cifar_bin(folder, counts=(2, 1, 1, 1, 1, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    images = {}
    for name, count in zip(names, counts):
        images[name] = RNG.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
        labels = RNG.integers(0, 10, (count, 1), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, images[name].reshape(count, -1)], axis=1).tobytes())
    return images


def test_cifar_binary_roundtrip(tmp_path):
    images = write_cifar_bin(tmp_path / "cifar-10-batches-bin")
    test = read_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(test, images["test_batch.bin"])
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert tuple(train.images.shape) == (6, 3, 32, 32) and train.levels == 256 and train.dims == 3072
    np.testing.assert_array_equal(train.images[:2].numpy(), images["data_batch_1.bin"])


def test_cifar_record_layout_is_label_then_rgb_planes(tmp_path):
    record = np.zeros(3073, np.uint8)
    record[0], record[1 + 0 * 1024 + 5 * 32 + 7], record[1 + 2 * 1024 + 31] = 3, 200, 9
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(record.tobytes())
    image = read_cifar10(tmp_path, "test")[0]
    assert image[0, 5, 7] == 200 and image[2, 0, 31] == 9 and image.sum() == 209


@pytest.mark.parametrize("cut, message", [(1, "not a whole number of records"), (3073, "not a whole number")])
def test_cifar_truncated(tmp_path, cut, message):
    write_cifar_bin(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-cut] if cut < 3073 else b"")
    with pytest.raises(DataFileError) as err:
        read_cifar10(tmp_path, "test")
    assert str(path) in str(err.value) and message in str(err.value) and "cifar-10-binary.tar.gz" in str(err.value)


def test_cifar_bad_label(tmp_path):
    write_cifar_bin(tmp_path)
    raw = bytearray((tmp_path / "test_batch.bin").read_bytes())
    raw[0] = 17
    (tmp_path / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="label byte 17"):
        read_cifar10(tmp_path, "test")


def test_cifar_pickle_only_on_opt_in(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [1, 2]}, f)
    with pytest.raises(PermissionError, match="allow_pickle=True"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    test = load_dataset("cifar10", "test", data_dir=tmp_path, allow_pickle=True)
    np.testing.assert_array_equal(test.images.numpy(), data.reshape(2, 3, 32, 32))
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataFileError, match="cannot unpickle"):
        read_cifar10(tmp_path, "test", allow_pickle=True)


def test_cifar_missing(tmp_path):
    with pytest.raises(DataFileError) as err:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert "test_batch.bin" in str(err.value) and "file not found" in str(err.value)


# -- PNG folders and downsampled ImageNet -------------------------------------------------------
def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_png_folder_grey_and_rgb(tmp_path):
    grey = RNG.integers(0, 256, (2, 5, 7), dtype=np.uint8)
    write_png(tmp_path / "g" / "b.png", grey[1])
    write_png(tmp_path / "g" / "sub" / "c.png", grey[0])  # sorted by path: b.png, sub/c.png
    np.testing.assert_array_equal(read_png_folder(tmp_path / "g"), grey[[1, 0], None])
    rgb = RNG.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    for i in range(2):
        write_png(tmp_path / "c" / f"{i}.png", rgb[i])
    np.testing.assert_array_equal(read_png_folder(tmp_path / "c"), rgb.transpose(0, 3, 1, 2))
    assert read_png_folder(tmp_path / "c", channels=1, convert=True).shape == (2, 1, 5, 7)
    assert read_png_folder(tmp_path / "c", limit=1).shape == (1, 3, 5, 7)


def test_png_dataset_uses_split_folders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            write_png(tmp_path / split / f"{i}.png", RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    data = load_dataset("png", "test", data_dir=tmp_path)
    assert tuple(data.images.shape) == (2, 3, 4, 4) and data.levels == 256 and "NOT the paper" in data.protocol


def test_png_corrupt_and_mismatched(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataFileError) as err:
        read_png_folder(tmp_path)
    assert str(tmp_path / "b.png") in str(err.value) and "cannot decode" in str(err.value)
    write_png(tmp_path / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DataFileError, match="differs from a.png"):
        read_png_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match="no .png files"):
        read_png_folder(tmp_path / "empty")


@pytest.mark.parametrize("size", [32, 64])
def test_imagenet_png_folders(tmp_path, size):
    images = RNG.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    for i in range(2):
        write_png(tmp_path / f"valid_{size}x{size}" / f"{i:05d}.png", images[i])
    data = load_dataset(f"imagenet{size}", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(data.images.numpy(), images.transpose(0, 3, 1, 2))
    assert "van den Oord" in data.protocol and "the paper's protocol" in data.protocol


def test_imagenet_npz(tmp_path):
    data = RNG.integers(0, 256, (3, 3072), dtype=np.uint8)
    np.savez(tmp_path / "train_data_batch_1.npz", data=data[:2], labels=np.ones(2, np.int64))
    np.savez(tmp_path / "train_data_batch_2.npz", data=data[2:], labels=np.ones(1, np.int64))
    images, version = read_imagenet(tmp_path, "train", 32)
    np.testing.assert_array_equal(images, data.reshape(3, 3, 32, 32))
    assert "Chrabaszcz" in version
    assert "NOT the paper's protocol" in load_dataset("imagenet32", "train", data_dir=tmp_path).protocol


def test_imagenet_errors(tmp_path):
    with pytest.raises(DataFileError) as err:
        read_imagenet(tmp_path, "test", 32)
    assert "valid_32x32" in str(err.value) and "val_data.npz" in str(err.value) and "image-net.org" in str(err.value)
    np.savez(tmp_path / "val_data.npz", data=np.zeros((2, 100), np.uint8))
    with pytest.raises(DataFileError, match=r"'data' is uint8 \(2, 100\)"):
        read_imagenet(tmp_path, "test", 32)
    (tmp_path / "val_data.npz").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(DataFileError, match="cannot read"):
        read_imagenet(tmp_path, "test", 32)
    write_png(tmp_path / "valid_64x64" / "0.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataFileError, match="64x64 images"):
        read_imagenet(tmp_path, "test", 64)


# -- load_dataset arguments --------------------------------------------------------------------
def test_load_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("svhn", "train")
    with pytest.raises(ValueError, match="applies only to"):
        load_dataset("cifar10", "train", data_dir=tmp_path, binarize="fixed")
    with pytest.raises(ValueError, match="binarize must be one of"):
        load_dataset("builtin_mnist", "train", binarize="threshold")
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("builtin_mnist", "valid")
