"""Timers: ``triton.testing.do_bench`` on a GPU, a warm-up + median-of-N wall-clock timer on CPU.

Both return a :class:`Timing` with the median and the 20th / 80th percentiles, in seconds.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import torch


@dataclasses.dataclass(frozen=True)
class Timing:
    """Median, 20th and 80th percentile and fastest of one call's wall time (seconds), over ``reps`` calls."""

    median: float
    p20: float
    p80: float
    reps: int
    best: float

    def as_dict(self) -> dict:
        return {"median_s": self.median, "p20_s": self.p20, "p80_s": self.p80, "min_s": self.best, "reps": self.reps}


def quantile(samples: list[float], q: float) -> float:
    """Linear-interpolation quantile of ``samples`` (numpy's default), q in [0, 1]."""
    s = sorted(samples)
    if not s:
        raise ValueError("quantile of no samples")
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def time_cpu(fn: Callable[[], object], *, warmup: int = 2, reps: int = 5, budget_s: float = 2.0) -> Timing:
    """Call ``fn`` ``warmup`` times, then up to ``reps`` times (at least 3, stopping once the timed
    calls have used ``budget_s``); return the median and p20/p80 of the timed calls."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max(reps, 3):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if len(samples) >= 3 and time.perf_counter() - start > budget_s:
            break
    return Timing(statistics.median(samples), quantile(samples, 0.2), quantile(samples, 0.8), len(samples), min(samples))


def time_gpu(fn: Callable[[], object], *, warmup_ms: int = 25, rep_ms: int = 100) -> Timing:
    """``triton.testing.do_bench`` (CUDA events, L2 flushed between calls); seconds."""
    from triton.testing import do_bench  # imported here: importing bench must not need triton

    med, p20, p80, best = do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=[0.5, 0.2, 0.8, 0.0])
    return Timing(med * 1e-3, p20 * 1e-3, p80 * 1e-3, -1, best * 1e-3)


def time_fn(fn: Callable[[], object], device: torch.device | str, *, budget_s: float = 2.0) -> Timing:
    """Time ``fn`` on ``device``: do_bench for CUDA, the wall-clock timer for CPU."""
    if torch.device(device).type == "cuda":
        return time_gpu(fn)
    return time_cpu(fn, budget_s=budget_s)
