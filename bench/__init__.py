"""Benchmarks of fastpixel (run from the repository root, never installed): ``python -m bench.compare``."""
