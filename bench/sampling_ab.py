"""Cached sampling, this checkout against an earlier commit, timed in one run.

    python -m bench.sampling_ab --before a8376d7 [--rounds 5] [--json PATH]

Times ``fastpixel.sample`` (cached) of the paper's MNIST model (Diagonal BiLSTM, 7 layers, h=16,
output_hidden 32, 2 levels, random weights, seed 0) at 28x28 for batch 1 and batch 16, one thread,
in fresh subprocesses that alternate between the two trees (``git worktree add`` of ``--before`` in
a temporary folder, removed afterwards), so both see the same machine load. Each subprocess warms
up, then times ``--calls`` calls in CPU seconds of the process (``time.process_time``; torch runs one
thread, so this is the work done, much less sensitive than wall time to a busy machine) and keeps the
fastest; the report gives the median and the fastest run per tree and case, and
after/before of each (on a shared, noisy machine the fastest runs are the steadier comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
import fastpixel
torch.set_num_threads(1)
torch.manual_seed(0)
model = fastpixel.create_model("diagonal_bilstm", channels=1, levels=2, hidden=16, layers=7, output_hidden=32)
batch = int(sys.argv[2])
fastpixel.sample(model, batch, height=4, width=4, generator=torch.Generator().manual_seed(0))
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.process_time()  # CPU seconds of this (one-thread) process: less sensitive to a busy machine
    fastpixel.sample(model, batch, height=28, width=28, generator=torch.Generator().manual_seed(1))
    best = min(best, time.process_time() - start)
print(best, fastpixel.__file__)
"""


def _time(tree: Path, batch: int, calls: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "FASTPIXEL_BACKEND")}
    out = subprocess.run([sys.executable, "-c", SNIPPET, str(tree), str(batch), str(calls)], capture_output=True, text=True,
                         check=True, env=env, cwd=tree).stdout.split()
    if not out[1].startswith(str(tree)):
        raise RuntimeError(f"imported fastpixel from {out[1]}, not from {tree}")
    return float(out[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sampling_ab", description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the commit to compare against (anything git rev-parse takes)")
    p.add_argument("--rounds", type=int, default=5, help="subprocess runs per tree and case (alternating)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per subprocess (the fastest is kept)")
    p.add_argument("--json", default=None, help="write the raw times here")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        p.error(f"--rounds and --calls must be >= 1, got {args.rounds} and {args.calls}")
    with tempfile.TemporaryDirectory(prefix="fastpixel-ab-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before], check=True)
        try:
            times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            for batch in (1, 16):
                for _ in range(args.rounds):
                    for label, tree in (("before", before), ("after", ROOT)):
                        times[label].setdefault(f"batch{batch}", []).append(_time(tree, batch, args.calls))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"cached sampling, MNIST Diagonal BiLSTM (7 layers, h=16), 28x28, one thread, CPU seconds; before {args.before}, "
          f"after {commit} (+ working tree); median of {args.rounds} alternating subprocess runs")
    for case in times["before"]:
        b, a = statistics.median(times["before"][case]), statistics.median(times["after"][case])
        bmin, amin = min(times["before"][case]), min(times["after"][case])
        print(f"  {case:8s} median: before {b:7.3f} s  after {a:7.3f} s  after/before {a / b:6.3f}   "
              f"fastest: before {bmin:7.3f} s  after {amin:7.3f} s  after/before {amin / bmin:6.3f}")
    if args.json:
        from bench.sampling import machine

        import torch

        report = {"machine": machine(torch.device("cpu")), "before": args.before, "after": commit, "unit": "CPU seconds",
                  "calls_per_run": args.calls, "times": times}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
