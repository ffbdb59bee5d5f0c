"""Triton kernels of fastpixel, installed as ``fastpixel.kernels``.

This folder sits at the repository's top level but is never importable as a top-level ``kernels``
module (an unrelated PyPI package has that name). Packaging alone makes it ``fastpixel.kernels``:
setuptools maps it there (``package-dir`` in pyproject.toml) for wheels and editable installs, and
in a source checkout ``fastpixel/kernels`` is a relative symbolic link to this folder, so Python,
IDEs and type checkers follow ``fastpixel.ops`` into the kernels with no import hook.

One module per op, named by the op's stem (``masked_conv``, ``cross_entropy``, ``row_lstm``,
``diagonal_bilstm``); each holds the kernels, their host launchers and their registration as
``fastpixel::`` custom ops (fake implementation, autograd, autocast; docs/architecture.md, "Kernels
as PyTorch ops") and exports a function with the signature of its twin in ``fastpixel.reference``.
``_common`` holds what they share. Importing this package imports nothing heavy: triton is imported
by the op modules only, when first used.
"""
