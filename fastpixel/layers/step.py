"""The incremental-step protocol of a block, what cached sampling drives (after mamba's
``allocate_inference_cache`` / ``step``).

A block (a module on the model's residual stream, (B, C, H, W) -> (B, C, H, W)) that can be
evaluated one pixel at a time, in raster order, provides

    cache = block.allocate_inference_cache(batch, width, gate_bias=None)
    y = block.step(cache, j, x)          # x, y: (B, C), the stream at pixel (r, j)

and the cache (an :class:`InferenceCache`) is told when a row starts and ends:
``cache.start_row(r)`` before the first pixel of row r, ``type(cache).end_rows(caches, r)`` after
its last (caches of one type finish a row together, which lets a block kind batch its end-of-row
work across layers; the default calls ``end_row`` of each). ``step`` may be called again for the
same pixel (once per colour); it must then recompute the same state from the same inputs, never
accumulate. ``gate_bias`` (B, G, H, W): an optional conditioning map the block adds to its gates
(the Multi-Scale PixelRNN's; a block that takes none raises ``TypeError`` if given one).

The driver (:mod:`fastpixel.sampling.cached`) knows nothing else of a block; a block without
``allocate_inference_cache`` is sampled with ``method="naive"``.
"""

from __future__ import annotations


class InferenceCache:
    """Base of a block's sampling state: row hooks that do nothing unless a block needs them."""

    def start_row(self, r: int) -> None:
        """Row r is about to be generated."""

    def end_row(self, r: int) -> None:
        """Every pixel of row r has been stepped."""

    @classmethod
    def end_rows(cls, caches: list[InferenceCache], r: int) -> None:
        """End row r for several caches of this type (override to batch the work)."""
        for cache in caches:
            cache.end_row(r)
