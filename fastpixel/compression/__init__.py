"""Lossless image compression with any fastpixel model (range coding of its exact likelihood).

    data = fastpixel.compress(model, images)     # ints (N, C, H, W) -> bytes
    images = fastpixel.decompress(model, data)   # -> uint8 (N, C, H, W), bit-exact

Streaming: :class:`CompressedWriter` / :func:`iter_decompress`. The container never lies: wrong
model, changed weights, corrupted or truncated data, a newer format and other arithmetic are errors
(:mod:`fastpixel.compression.errors`). Needs the optional ``constriction`` package
(``pip install 'fastpixel[compress]'``), imported only when something is coded. docs/compression.md.
"""

from fastpixel.compression.api import (
    CHUNK_SIZE, CompressedWriter, CompressionStats, check_header, compress, decompress, iter_decompress, read_header,
)
from fastpixel.compression.errors import (
    CompressedDataError, CorruptDataError, FormatError, MachineMismatchError, MissingCoderError, ModelMismatchError,
)

__all__ = [
    "CHUNK_SIZE",
    "CompressedDataError",
    "CompressedWriter",
    "CompressionStats",
    "CorruptDataError",
    "FormatError",
    "MachineMismatchError",
    "MissingCoderError",
    "ModelMismatchError",
    "check_header",
    "compress",
    "decompress",
    "iter_decompress",
    "read_header",
]
