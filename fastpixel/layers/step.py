"""The incremental-step protocol of a block, what cached sampling drives (after mamba's
``allocate_inference_cache`` / ``step``).

A block (a module on the model's residual stream, (B, C, H, W) -> (B, C', H, W)) that can be
evaluated one pixel at a time, in raster order, provides

    cache = block.allocate_inference_cache(batch, width, gate_bias=None, cond_bias=None)
    y = block.step(cache, j, x)          # x, y: (B, C), the stream at pixel (r, j)

and the cache (an :class:`InferenceCache`) is told when a row starts and ends:
``type(cache).start_rows(caches, r)`` before the first pixel of row r, ``type(cache).end_rows(caches,
r)`` after its last. Caches of one type start and finish a row together, listed in the order of
their blocks in the model, which lets a block kind batch its row work across layers or pass
row-level state from one layer to the next (the Gated PixelCNN's vertical stack); the defaults call
``start_row`` / ``end_row`` of each. ``step`` may be called again for the same pixel (once per
colour); it must then recompute the same state from the same inputs, never accumulate.

Conditioning, given at allocation (a block that takes none raises ``TypeError`` if given one; the
keywords are passed only when not None, so a block that knows neither may omit them):

* ``gate_bias`` (B, G, H, W): a map the block adds to its gates (the Multi-Scale PixelRNN's);
* ``cond_bias`` (B, G'): one vector per image, the same at every pixel (a conditional model's
  ``E[label] + W cond``, :mod:`fastpixel.layers.conditioning`; ``G' = block.cond_channels``).

A block that reads the image itself (the first layer of a model without an input conv: the Gated
PixelCNN's) sets ``reads_image = True`` on its cache; the driver then hands it every embedded
sub-pixel as it is written, ``cache.write_image(j, c, value)`` (B,), the last colour of a pixel
included, which no ``step`` sees.

The driver (:mod:`fastpixel.sampling.cached`) knows nothing else of a block; a block without
``allocate_inference_cache`` is sampled with ``method="naive"``.
"""

from __future__ import annotations


class InferenceCache:
    """Base of a block's sampling state: row hooks that do nothing unless a block needs them."""

    #: Whether the driver must hand this cache the image's sub-pixels (``write_image``).
    reads_image = False

    def start_row(self, r: int) -> None:
        """Row r is about to be generated."""

    def end_row(self, r: int) -> None:
        """Every pixel of row r has been stepped."""

    @classmethod
    def start_rows(cls, caches: list[InferenceCache], r: int) -> None:
        """Start row r for several caches of this type, in block order (override to batch or chain)."""
        for cache in caches:
            cache.start_row(r)

    @classmethod
    def end_rows(cls, caches: list[InferenceCache], r: int) -> None:
        """End row r for several caches of this type, in block order (override to batch the work)."""
        for cache in caches:
            cache.end_row(r)
