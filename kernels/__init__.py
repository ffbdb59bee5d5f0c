"""Triton kernels of fastpixel, installed as ``fastpixel.kernels``.

This folder sits at the repository's top level but is never importable as a top-level ``kernels``
module (an unrelated PyPI package has that name): setuptools maps it to ``fastpixel.kernels``, and
a source checkout maps it the same way (see ``fastpixel/_source_tree.py``).

One module per op, named by the op's stem (``masked_conv``, ``cross_entropy``, ``row_lstm``,
``diagonal_lstm``); each holds the kernels, their host launchers and the ``torch.autograd.Function``
and exports a function with the signature of its twin in ``fastpixel.reference``. Importing this
package imports nothing heavy: triton is imported by the op modules only, when first used.
"""
