"""The built-in digits, the seeded binarizations and the (seed, step) -> batch order."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpixel.data import (
    DataFileError, batch_indices, binarize_fixed, load_builtin_mnist, load_dataset, steps_per_epoch, training_batch,
)
from fastpixel.data.builtin import PATH

#: sha256 over the four arrays' bytes (train_images, train_labels, test_images, test_labels) as
#: written by scripts/make_builtin_mnist.py.
ARRAYS_SHA256 = "c0161c512b037e1404d275cd8041554839d736276451893183207e2f16b4725e"


def test_builtin_file_is_the_recorded_one():
    assert PATH.stat().st_size < 1.7e6
    with np.load(PATH) as npz:
        digest = hashlib.sha256()
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            assert npz[key].dtype == np.uint8
            digest.update(npz[key].tobytes())
        assert np.bincount(np.concatenate([npz["train_labels"], npz["test_labels"]])).tolist() == [
            1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert digest.hexdigest() == ARRAYS_SHA256
    assert (PATH.parent / "CREDITS.txt").is_file()


def test_builtin_splits():
    train, test = load_builtin_mnist("train"), load_builtin_mnist("test")
    assert train.shape == (9000, 28, 28) and test.shape == (1000, 28, 28)
    assert not {row.tobytes() for row in train} & {row.tobytes() for row in test}  # disjoint
    data = load_dataset("builtin_mnist", "test")
    assert data.levels == 256 and int(data.images.max()) == 255 and "NOT the paper's protocol" in data.protocol


def test_builtin_corrupt_file(tmp_path):
    bad = tmp_path / "builtin_mnist.npz"
    bad.write_bytes(PATH.read_bytes()[:5000])
    with pytest.raises(DataFileError) as err:
        load_builtin_mnist("train", path=bad)
    assert str(bad) in str(err.value) and "make_builtin_mnist.py" in str(err.value)
    with pytest.raises(DataFileError, match="file not found"):
        load_builtin_mnist("train", path=tmp_path / "absent.npz")


def test_fixed_binarization_is_seeded_and_unbiased():
    grey = load_builtin_mnist("test")
    a = load_dataset("builtin_mnist", "test", binarize="fixed")
    b = load_dataset("builtin_mnist", "test", binarize="fixed")
    c = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=1)
    assert a.levels == 2 and torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert set(a.images.unique().tolist()) == {0, 1}
    assert (a.images[:, 0].numpy()[grey == 0] == 0).all() and (a.images[:, 0].numpy()[grey == 255] == 1).all()
    assert abs(a.images.float().mean().item() - grey.mean() / 255) < 2e-3  # E[bit] = value / 255
    assert "fixed, seed 0" in a.protocol
    # train and test are drawn from different streams of the same seed
    x = np.full((2, 28, 28), 128, np.uint8)
    assert not np.array_equal(binarize_fixed(x, seed=0, split="train"), binarize_fixed(x, seed=0, split="test"))


def test_dynamic_binarization():
    train = load_dataset("builtin_mnist", "train", binarize="dynamic", limit=64)
    test = load_dataset("builtin_mnist", "test", binarize="dynamic")
    assert train.dynamic and train.levels == 2 and not test.dynamic
    assert torch.equal(test.images, load_dataset("builtin_mnist", "test", binarize="fixed").images)
    b1 = training_batch(train, 64, seed=0, step=0)
    assert torch.equal(b1, training_batch(train, 64, seed=0, step=0))
    assert set(b1.unique().tolist()) <= {0, 1}
    assert not torch.equal(b1, training_batch(train, 64, seed=0, step=1))  # same images, a fresh draw


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 40), per_rank=st.integers(1, 4), world=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2**31), epoch=st.integers(0, 3))
def test_batch_order_is_a_function_of_seed_and_step(n, per_rank, world, seed, epoch):
    batch = min(per_rank, n // world) * world  # n >= 4 >= world, so at least one image per rank
    per_epoch = steps_per_epoch(n, batch)
    steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
    epoch_batches = [batch_indices(n, batch, seed=seed, step=s) for s in steps]
    seen = torch.cat(epoch_batches)
    assert len(set(seen.tolist())) == per_epoch * batch  # no image twice within an epoch
    for s, full in zip(steps, epoch_batches):
        assert torch.equal(full, batch_indices(n, batch, seed=seed, step=s))  # deterministic
        shards = [batch_indices(n, batch, seed=seed, step=s, rank=r, world=world) for r in range(world)]
        assert sorted(torch.cat(shards).tolist()) == sorted(full.tolist())  # ranks partition the batch


def test_batch_order_errors():
    with pytest.raises(ValueError, match="divisible"):
        batch_indices(10, 3, seed=0, step=0, world=2)
    with pytest.raises(ValueError, match="batch_size must be in"):
        batch_indices(10, 11, seed=0, step=0)
