"""Naive vs cached sampling time: ``python -m bench.sampling [--json PATH] [--full-naive]``.

Cases (batch 16 by default):
  * ``mnist``: the paper's binarized-MNIST model, a 7-layer Diagonal BiLSTM with h = 16 and
    output_hidden 32, sampling 28x28 binary images;
  * ``rgb32_<model>``: a small model (h = 16, 2 layers, output_hidden 32) of each kind, sampling
    32x32 RGB images with 256 levels (the Gated PixelCNN with p = 32, the same stream width);
  * ``mnist_pixelcnn`` / ``mnist_gated_pixelcnn``: 7 layers after the first, stream width 32, 28x28
    binary images (the per-pixel cost of the two convolutional models side by side);
  * ``rgb32_pixelcnn_pp``: PixelCNN++ (nr_filters 16, nr_resnet 2, K = 10), 32x32 RGB, 256 levels;
    ``cifar_pixelcnn_pp`` (only with ``--case``): the paper's CIFAR-10 size (160, 5).

Cached: the whole batch is sampled once, after a warm-up on a 2x2 image. Naive: every sub-pixel is
one full forward pass of the same network on the same (B, C, H, W) tensor plus one draw, so each
step costs the same; ``--naive-steps`` steps are timed (after a warm-up step), and the total is
their median times C*H*W (the driver's own per-sub-pixel overhead, a few tensor indexings, is
negligible next to a forward pass). ``--full-naive`` times the whole naive run instead.

Threads default to 1: the per-step tensors are tiny, and on a shared 2-core machine two threads
made the naive forward pass over 10x slower, not faster (measured once while writing this).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

import fastpixel
from fastpixel.sampling import sample
from fastpixel.sampling.categorical import inverse_cdf

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "mnist": dict(model="diagonal_bilstm", channels=1, levels=2, hidden=16, layers=7, output_hidden=32, size=28),
    "rgb32_pixelcnn": dict(model="pixelcnn", channels=3, levels=256, hidden=16, layers=2, output_hidden=32, size=32),
    "rgb32_row_lstm": dict(model="row_lstm", channels=3, levels=256, hidden=16, layers=2, output_hidden=32, size=32),
    "rgb32_diagonal_bilstm": dict(model="diagonal_bilstm", channels=3, levels=256, hidden=16, layers=2,
                                  output_hidden=32, size=32),
    # the Gated PixelCNN beside the PixelCNN at the same stream width (p = 2h = 32) and depth
    "rgb32_gated_pixelcnn": dict(model="gated_pixelcnn", channels=3, levels=256, hidden=32, layers=2,
                                 output_hidden=32, size=32),
    "mnist_pixelcnn": dict(model="pixelcnn", channels=1, levels=2, hidden=16, layers=7, output_hidden=32, size=28),
    "mnist_gated_pixelcnn": dict(model="gated_pixelcnn", channels=1, levels=2, hidden=32, layers=7,
                                 output_hidden=32, size=28),
    # PixelCNN++ (DMoL head, K = 10): a small one (nr_filters 16, nr_resnet 2) and the paper's CIFAR-10 size
    "rgb32_pixelcnn_pp": dict(model="pixelcnn_pp", channels=3, levels=256, hidden=16, layers=2, size=32),
    "cifar_pixelcnn_pp": dict(model="pixelcnn_pp", channels=3, levels=256, hidden=160, layers=5, size=32),
}
#: Run by default (the paper-size PixelCNN++ takes minutes on a CPU: ask for it with --case).
DEFAULT_CASES = [name for name in CASES if name != "cifar_pixelcnn_pp"]


def machine(device: torch.device) -> dict:
    """Device, versions, commit, date and load: what a number needs beside it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    cpu = platform.processor() or None
    cpu_model = None  # "family F model M": a model name like "AMD EPYC" names several generations
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        cpu = info.get("model name", cpu)
        if "cpu family" in info and "model" in info:
            cpu_model = f"family {info['cpu family']} model {info['model']}"
    except (OSError, ValueError):
        pass
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = None
    return {
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": cpu, "cpu_model": cpu_model, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "triton": triton, "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def naive_step_seconds(model, shape, steps: int, device: torch.device) -> list[float]:
    """Time ``steps`` naive sampling steps: a full forward pass read at one pixel, then one draw."""
    images = torch.zeros(shape, dtype=torch.long, device=device)
    u = torch.rand(shape[0], dtype=torch.float64, device=device)

    @torch.no_grad()
    def step():
        out = model(images, validate=False)[..., :1, :1]
        logits = model.sampling_logits(out, images[..., :1, :1], 0)[..., 0, 0]  # (B, L), either head
        images[:, 0, 0, 0] = inverse_cdf(logits, u, 1.0)

    step()  # warm-up
    return [timed(step, device) for _ in range(steps)]


def run_case(name: str, spec: dict, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    options = {k: v for k, v in spec.items() if k not in ("model", "size")}
    model = fastpixel.create_model(spec["model"], **options).to(device).eval()
    size, batch = spec["size"], args.batch
    shape = (batch, spec["channels"], size, size)
    subpixels = spec["channels"] * size * size
    sample(model, 1, height=2, width=2, generator=torch.Generator().manual_seed(0))  # warm-up
    cached_s = timed(lambda: sample(model, batch, height=size, width=size,
                                    generator=torch.Generator().manual_seed(1)), device)
    if args.full_naive:
        naive_s = timed(lambda: sample(model, batch, height=size, width=size, method="naive",
                                       generator=torch.Generator().manual_seed(1)), device)
        naive_step, how = naive_s / subpixels, "measured in full"
    else:
        steps = naive_step_seconds(model, shape, args.naive_steps, device)
        naive_step = statistics.median(steps)
        naive_s, how = naive_step * subpixels, f"median of {len(steps)} steps x {subpixels} sub-pixels"
    return {
        "case": name, **spec, "batch": batch, "subpixels": subpixels,
        "cached_s": cached_s, "naive_s": naive_s, "naive_step_s": naive_step, "naive_how": how,
        "speedup": naive_s / cached_s,
        "cached_images_per_s": batch / cached_s, "naive_images_per_s": batch / naive_s,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.sampling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases (repeatable)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=None,
                   help="override every case's image size (e.g. to check the extrapolation)")
    p.add_argument("--naive-steps", type=int, default=5, help="naive steps timed per case (extrapolated)")
    p.add_argument("--full-naive", action="store_true", help="time the whole naive run (slow: minutes to hours)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see the docstring)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="reference", choices=("reference", "torch", "triton", "auto"),
                   help="backend of the naive forward passes (default reference; auto on GPU uses the kernels)")
    p.add_argument("--json", default=None, help="write the machine header and every figure here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    header = machine(device)
    print(" ".join(f"{k}={v}" for k, v in header.items()))
    results = []
    print(f"{'case':<24}{'naive s':>12}{'cached s':>10}{'speed-up':>10}  naive timing")
    with fastpixel.use_backend(args.backend):
        for name in args.case or DEFAULT_CASES:
            spec = CASES[name] | ({"size": args.size} if args.size else {})
            r = run_case(name, spec, args, device)
            results.append(r)
            print(f"{name:<24}{r['naive_s']:>12.1f}{r['cached_s']:>10.2f}{r['speedup']:>9.0f}x  {r['naive_how']}")
    report = {"machine": header, "backend": args.backend, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
