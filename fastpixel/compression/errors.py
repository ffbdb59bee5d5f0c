"""The errors of fastpixel.compression: each says what is wrong with a compressed stream and what to do.

All derive from :class:`CompressedDataError`, a ``ValueError`` (so the commands report them as one
line and exit 2). None is ever swallowed: a stream that cannot be decoded exactly is refused, never
turned into an image.
"""

from __future__ import annotations


class CompressedDataError(ValueError):
    """A compressed stream that cannot be decoded exactly (the base class of every error here)."""


class FormatError(CompressedDataError):
    """Not a fastpixel stream, a format version this fastpixel does not read, or a malformed record."""


class CorruptDataError(CompressedDataError):
    """A stream whose bytes changed after it was written: a checksum differs, or it is truncated."""


class ModelMismatchError(CompressedDataError):
    """The model given to decode is not the one that encoded (config, weights or dtype differ)."""


class MachineMismatchError(CompressedDataError):
    """The stream was encoded where float arithmetic may differ from here (torch, CPU, GPU, ...)."""


class MissingCoderError(ImportError):
    """The entropy coder (constriction) is not installed."""
