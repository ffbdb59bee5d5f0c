"""A size that cannot fit: estimated before allocating, refused with the estimate in the message.

``model.log_prob`` of a 4096 x 4096 image asks for tens of GB; rather than let the allocator fail
(or the machine swap), :func:`check_fits` compares an upper estimate of the pass's working memory
with what the device has free and raises :class:`TooLargeError` saying both numbers.

The estimate (:func:`forward_bytes`) counts float32 words per pixel: the 2h-wide stream, each
block's internals (an LSTM keeps its 4 gates and states, and the diagonal one a skewed copy twice as
wide), the output layers and the logits with their softmax. Under autograd every block's activations
are kept; without it, about one block's at once. The factors were measured (peak RSS of the
``digits`` model at 512 x 512, float32, CPU) and are within about 20% of it.
"""

from __future__ import annotations

import os

import torch


#: Requests below this size are not checked (reading the free memory costs a system call).
SMALL = 256 * 2**20


class TooLargeError(MemoryError):
    """The estimated working memory of a request exceeds what the device has free."""


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device`` in bytes (CPU: MemAvailable of /proc/meminfo); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def forward_bytes(model: torch.nn.Module, batch: int, height: int, width: int, *, keep_all: bool) -> int:
    """About the peak bytes of one forward pass of a fastpixel PixelModel on (batch, C, height, width).

    keep_all: autograd keeps every block's activations (training, or log_prob with gradients on).
    """
    stream = 2 * getattr(model, "hidden", 1)
    lstm = [hasattr(b, "lstm") for b in getattr(model, "blocks", [])]
    levels, channels = getattr(model, "levels", 256), getattr(model, "channels", 1)
    head = 2 * stream + getattr(model, "output_hidden", stream) + 3 * levels * channels
    if keep_all:  # measured: a Diagonal BiLSTM block keeps about 21 stream widths for backward, a conv block 6
        body = sum((21 if is_lstm else 6) * stream for is_lstm in lstm)
    else:  # about three of a block's 8 (LSTM) or 3 (conv) stream widths live at once
        body = 3 * max([(8 if is_lstm else 3) * stream for is_lstm in lstm], default=stream)
    words = batch * height * width * (body + head + stream)
    return 4 * words


def gigabytes(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def check_fits(nbytes: int, device: torch.device | str, what: str,
               advice: str = "use a smaller batch or image") -> None:
    """TooLargeError when ``nbytes`` exceed the free memory of ``device`` (unknown: allowed). Below
    SMALL bytes nothing is asked of the system (every small forward pass would pay for it)."""
    if nbytes < SMALL:
        return
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise TooLargeError(f"{what} would need about {gigabytes(nbytes)} of memory, and {torch.device(device)} "
                            f"has {gigabytes(free)} free; {advice}")
