"""The entropy coder: logits -> probabilities -> constriction's range coder, the same on both sides.

Probabilities. For the sub-pixel being coded, the model's logits (B, L) (any float dtype) become

    p = softmax(logits.to(float64), dim=1)                                         (B, L) float64

and constriction's categorical model quantises each row to integer frequencies of PRECISION = 24 bits
(``Categorical(perfect=False)``: every level gets at least 1 / 2^24, the rest in proportion, a
deterministic integer/IEEE computation). Encoder and decoder therefore code with identical
frequencies exactly when they see bit-identical logits (see fastpixel.compression.driver for why they
do). Range coding (``constriction.stream.queue``, a queue: symbols decode in the order they were
encoded) fits an autoregressive model, which needs every earlier sub-pixel before the next logits.

Overhead over the ideal code length -sum log2 p(x) (the model's NLL in bits):
* quantisation: frequency_k >= p_k (2^24 - L), so q_k >= p_k (1 - L / 2^24): at most
  -log2(1 - L/2^24) bits per sub-pixel (1.7e-7 for L = 2, 2.2e-5 for L = 256);
* the range coder keeps its range >= 2^32 and scales it by range >> 24, losing less than 2^-8 of it
  per symbol in the worst case and far less on average (measured: docs/compression.md);
* one to two 32-bit words to terminate the stream, per chunk.
"""

from __future__ import annotations

import numpy as np
import torch

from fastpixel.compression.errors import CorruptDataError, MissingCoderError

#: Fixed-point precision of constriction's categorical models in its Python range coder (bits).
PRECISION = 24
CODER = {"library": "constriction", "method": "range coding (constriction.stream.queue)",
         "model": "Categorical(perfect=False)", "precision_bits": PRECISION,
         "probabilities": "softmax(logits.to(float64))"}
INSTALL = "pip install 'fastpixel[compress]' (or pip install constriction)"


def constriction_module():
    """The constriction package, or MissingCoderError saying how to install it."""
    try:
        import constriction
    except ImportError:
        raise MissingCoderError(f"compression needs the constriction package: {INSTALL}") from None
    return constriction


def coder_facts() -> dict:
    """The coder's description and version, as recorded in a stream's header."""
    from importlib.metadata import PackageNotFoundError, version

    constriction_module()
    try:
        release = version("constriction")
    except PackageNotFoundError:
        release = "unknown"
    return {**CODER, "version": release}


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """logits (B, L) -> float64 probabilities (B, L) as a numpy array (the coder's input).

    Raises CorruptDataError on a non-finite logit (a broken model cannot code).
    """
    probs = torch.softmax(logits.to(torch.float64), dim=1)
    if not bool(torch.isfinite(probs).all()):
        raise CorruptDataError("the model produced non-finite logits (NaN or inf): it cannot code these images")
    return probs.cpu().numpy()


class SubpixelEncoder:
    """Codes one chunk: call it with each sub-pixel's logits (B, L) and true values (B,), in order.

    ideal_bits: -sum log2 p(value) over everything coded so far (float64; the model's NLL in bits
    as computed from the coding probabilities).
    """

    def __init__(self) -> None:
        constriction = constriction_module()
        self._encoder = constriction.stream.queue.RangeEncoder()
        self._family = constriction.stream.model.Categorical(perfect=False)
        self.ideal_bits = 0.0

    def __call__(self, logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Encode ``values`` (B,) with ``logits`` (B, L); returns ``values``."""
        probs = probabilities(logits)
        symbols = values.cpu().numpy().astype(np.int32)
        self._encoder.encode(symbols, self._family, probs)
        self.ideal_bits -= float(np.log2(probs[np.arange(len(symbols)), symbols]).sum())
        return values

    def finish(self) -> bytes:
        """The compressed chunk: little-endian 32-bit words."""
        return self._encoder.get_compressed().astype("<u4").tobytes()


class SubpixelDecoder:
    """Decodes one chunk written by :class:`SubpixelEncoder`, sub-pixel by sub-pixel, in the same order."""

    def __init__(self, payload: bytes) -> None:
        constriction = constriction_module()
        if len(payload) % 4:
            raise CorruptDataError(f"a chunk's coded data must be whole 32-bit words, got {len(payload)} bytes")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self._decoder = constriction.stream.queue.RangeDecoder(words)
        self._family = constriction.stream.model.Categorical(perfect=False)

    def __call__(self, logits: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Decode one sub-pixel of every image: int64 (B,) on ``values``' device (``values`` is ignored)."""
        probs = probabilities(logits)
        try:
            symbols = self._decoder.decode(self._family, probs)
        except (ValueError, RuntimeError, OverflowError) as err:
            raise CorruptDataError(f"the coded data cannot be decoded ({err})") from None
        return torch.from_numpy(np.asarray(symbols, dtype=np.int64)).to(values.device)
