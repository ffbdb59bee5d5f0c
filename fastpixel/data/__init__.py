"""Data for training and evaluation, read without torchvision.

    from fastpixel.data import load_dataset
    train = load_dataset("builtin_mnist", "train", binarize="fixed")   # no download needed
    train.images   # uint8 (9000, 1, 28, 28) of 0/1; train.levels == 2; print(train.protocol)

Readers (each raises DataFileError naming the file, what was expected and where to get it):
read_idx / read_mnist_images (MNIST, Fashion-MNIST; Debian's /usr/share/datasets/fashion-mnist
is found automatically), read_amat (binarized MNIST), read_cifar10 (binary; pickle on opt-in),
read_imagenet (32/64, PNG folders or npz; read_imagenet_labels: the npz
labels 0-based), read_png_folder (any folder of PNGs),
load_builtin_mnist. See docs/data.md for the protocols.
"""

from fastpixel.data.amat import read_amat
from fastpixel.data.binarize import binarize_dynamic, binarize_fixed
from fastpixel.data.builtin import load_builtin_mnist, load_builtin_mnist_labels
from fastpixel.data.cifar import read_cifar10, read_cifar10_labels, read_cifar_binary, read_cifar_pickle
from fastpixel.data.datasets import BINARIZE, DATASETS, ImageSet, load_dataset
from fastpixel.data.errors import DataFileError
from fastpixel.data.idx import DEBIAN_FASHION_MNIST_DIR, read_idx, read_mnist_images, read_mnist_labels
from fastpixel.data.imagenet import read_imagenet, read_imagenet_labels, read_imagenet_npz, read_imagenet_npz_labels
from fastpixel.data.loader import batch_indices, batch_labels, steps_per_epoch, training_batch
from fastpixel.data.png import png_folder_labels, read_png, read_png_folder

__all__ = [
    "BINARIZE",
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "DataFileError",
    "ImageSet",
    "batch_indices",
    "batch_labels",
    "binarize_dynamic",
    "binarize_fixed",
    "load_builtin_mnist",
    "load_builtin_mnist_labels",
    "png_folder_labels",
    "load_dataset",
    "read_amat",
    "read_cifar10",
    "read_cifar10_labels",
    "read_cifar_binary",
    "read_cifar_pickle",
    "read_idx",
    "read_imagenet",
    "read_imagenet_labels",
    "read_imagenet_npz",
    "read_imagenet_npz_labels",
    "read_mnist_images",
    "read_mnist_labels",
    "read_png",
    "read_png_folder",
    "steps_per_epoch",
    "training_batch",
]
