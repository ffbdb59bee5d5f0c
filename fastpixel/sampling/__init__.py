"""Sampling and image completion: ``sample(model, num, height=, width=)``, ``complete(model, images, known)``.

method="cached" keeps every layer's state and costs one layer step per generated pixel;
method="naive" reruns the whole network per sub-pixel (the reference). With the same generator
both return the same images. See docs/sampling.md.
"""

from fastpixel.sampling.engines import METHODS
from fastpixel.sampling.generate import cached_logits, complete, generate, sample

__all__ = ["METHODS", "cached_logits", "complete", "generate", "sample"]
