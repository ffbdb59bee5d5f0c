"""What keeps a run from losing work: the non-finite check before every write, and the signal handler
that turns SIGINT / SIGTERM into "finish this step, save, stop"."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from fastpixel.finite import first_non_finite  # noqa: F401  (re-exported: its old home)


@contextmanager
def stop_on_signals(enabled: bool) -> Iterator[list[int]]:
    """Within: SIGINT/SIGTERM are recorded in the yielded list (a second one interrupts at once).

    Only in the main thread (elsewhere signals cannot be handled) and when ``enabled``; the previous
    handlers are restored on exit.
    """
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        print(f"\nfastpixel: {signal.Signals(signum).name}: saving after this step (again to stop at once)",
              file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
