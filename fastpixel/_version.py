"""fastpixel's version: the one source (``fastpixel.__version__``, pyproject's dynamic version, saved files)."""

__version__ = "0.1.0"
