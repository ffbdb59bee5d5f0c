"""Cached sampling per pixel: the Gated PixelCNN beside the PixelCNN, in one run.

    python -m bench.sampling_gated [--rounds 7] [--json PATH]

Models (random weights, seed 0, 2 levels, 28x28, 7 layers after the first, output_hidden 32, the
reference backend -- cached sampling reads the weights, not the backend):

  * ``pixelcnn``: h = 16 (stream 2h = 32, its 3x3 convs h = 16 wide);
  * ``gated_p16``: p = 16 (the PixelCNN's conv width);
  * ``gated_p32``: p = 32 (the PixelCNN's stream width).

Each round samples one batch of every model in turn (interleaved, so all see the same machine load),
batch 1 and batch 16, one thread, after a warm-up. The report gives the fastest and the median round
per model and batch, and microseconds per pixel (time / 784) of the fastest; on a shared, noisy
machine the fastest rounds are the steadier comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import fastpixel
from bench.sampling import machine

MODELS = {
    "pixelcnn": dict(name="pixelcnn", hidden=16),
    "gated_p16": dict(name="gated_pixelcnn", hidden=16),
    "gated_p32": dict(name="gated_pixelcnn", hidden=32),
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.sampling_gated", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    header = machine(torch.device("cpu"))
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    models = {}
    for key, spec in MODELS.items():
        torch.manual_seed(0)
        models[key] = fastpixel.create_model(spec["name"], channels=1, levels=2, hidden=spec["hidden"], layers=7,
                                             output_hidden=32, backend="reference").eval()
        fastpixel.sample(models[key], 2, height=3, width=3)  # warm-up
    batches = [int(b) for b in args.batches.split(",")]
    times = {(key, b): [] for key in models for b in batches}
    size = args.size
    for _ in range(args.rounds):
        for b in batches:
            for key, model in models.items():
                start = time.perf_counter()
                fastpixel.sample(model, b, height=size, width=size, generator=torch.Generator().manual_seed(1))
                times[key, b].append(time.perf_counter() - start)
    results = []
    print(f"{'model':<12}{'batch':>6}{'fastest s':>11}{'median s':>10}{'us/pixel':>10}{'vs pixelcnn':>13}")
    for b in batches:
        base = min(times["pixelcnn", b])
        for key in models:
            fastest, median = min(times[key, b]), statistics.median(times[key, b])
            row = dict(model=key, **MODELS[key], batch=b, fastest_s=fastest, median_s=median,
                       us_per_pixel=fastest / size**2 * 1e6, ratio_to_pixelcnn=fastest / base, rounds=args.rounds)
            results.append(row)
            print(f"{key:<12}{b:>6}{fastest:>11.3f}{median:>10.3f}{row['us_per_pixel']:>10.0f}{row['ratio_to_pixelcnn']:>12.2f}x")
    report = {"machine": header, "size": size, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
