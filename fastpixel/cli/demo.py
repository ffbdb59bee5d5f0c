"""A self-contained demo: fit a small PixelRNN to images it makes itself and watch the NLL fall.

    fastpixel-demo                                 # Diagonal BiLSTM, about a minute on 2 CPU cores
    fastpixel-demo --model pixelcnn --steps 200 --plot runs/nll.png   # or python -m fastpixel.cli.demo

The data are 8x8 binary "bars" images: a random orientation (rows or columns), then each of the 8
bars on or off with probability 1/2. Their entropy is known exactly, so the demo prints how far the
model's held-out NLL is from the best any model can do.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastpixel.atomic import write_bytes_atomically
from fastpixel.backend import BACKENDS, check_backend_for_device
from fastpixel.cli.args import CommandError, Parser, from_rule, run_command
from fastpixel.models import MODELS, create_model
from fastpixel.output_paths import check_output_file

PROG = "fastpixel-demo"

SIZE = 8


def bars(num: int, generator: torch.Generator) -> torch.Tensor:
    """(num, 1, 8, 8) int64 binary images of horizontal or vertical bars."""
    on = torch.rand(num, SIZE, generator=generator) < 0.5
    horizontal = torch.rand(num, generator=generator) < 0.5
    rows = on[:, :, None].expand(num, SIZE, SIZE)
    cols = on[:, None, :].expand(num, SIZE, SIZE)
    return torch.where(horizontal[:, None, None], rows, cols).long().unsqueeze(1)


def bars_entropy_nats() -> float:
    """Exact entropy of :func:`bars`: 2 * 2^8 equally likely draws; all-off and all-on occur twice."""
    draws = 2 * 2**SIZE
    return (draws - 4) / draws * math.log(draws) + 2 * (2 / draws) * math.log(draws / 2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="diagonal_bilstm")
    p.add_argument("--hidden", type=from_rule("hidden"), default=8)
    p.add_argument("--layers", type=from_rule("layers"), default=2)
    p.add_argument("--steps", type=from_rule("steps"), default=300)
    p.add_argument("--batch", type=from_rule("batch_size"), default=32)
    p.add_argument("--lr", type=from_rule("lr"), default=3e-3)
    p.add_argument("--seed", type=from_rule("seed"), default=0)
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--plot", metavar="PATH", help="write the NLL curve as a PNG (checked before training)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file (refused otherwise)")
    p.add_argument("--threads", type=from_rule("threads"), default=1,
                   help="torch CPU threads (default 1: a model this small runs fastest on one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-demo``): exit 0 on success, one-line errors otherwise."""
    run_command(PROG, lambda: run(parse_args(argv)))


def run(args: argparse.Namespace) -> list[tuple[int, float]]:
    """Train on fresh bars images; print the held-out NLL as it falls; return [(step, nats)]."""
    check_backend_for_device(args.backend, "cpu", label="--backend")
    if args.plot:  # before training: a plot that cannot be written is found now, not after the run
        if Path(args.plot).suffix.lower() != ".png":
            raise CommandError(f"--plot {args.plot}: the curve is written as PNG; give a name ending in .png")
        check_output_file(args.plot, overwrite=args.overwrite, label="--plot")
    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    data_gen = torch.Generator().manual_seed(args.seed)
    test = bars(512, data_gen)
    model = create_model(args.model, channels=1, levels=2, hidden=args.hidden, layers=args.layers, backend=args.backend)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    bound = bars_entropy_nats()
    params = sum(p.numel() for p in model.parameters())
    print(f"fastpixel demo: {args.model} (h={args.hidden}, {args.layers} layers, {params:,} parameters) "
          f"on 8x8 binary bars; best possible NLL = {bound:.3f} nats/image")

    def held_out_nll() -> float:
        with torch.no_grad():
            return model.nll(test).mean().item()

    history = [(0, held_out_nll())]
    print(f"step {0:5d}  held-out NLL {history[0][1]:8.3f} nats/image")
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="training", disable=not sys.stderr.isatty(), leave=False)
    for step in bar:
        loss = model.nll(bars(args.batch, data_gen)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(nll=f"{loss.item():.2f}")
        if step % max(1, args.steps // 6) == 0 or step == args.steps:
            history.append((step, held_out_nll()))
            tqdm.write(f"step {step:5d}  held-out NLL {history[-1][1]:8.3f} nats/image")
    elapsed = time.perf_counter() - start
    final = history[-1][1]
    print(f"done in {elapsed:.1f} s: NLL {history[0][1]:.3f} -> {final:.3f} nats/image "
          f"({final / (SIZE * SIZE * math.log(2)):.4f} bits/dim); gap to the entropy {final - bound:.3f} nats")
    if args.plot:
        _plot(history, bound, args.plot)
        print(f"wrote {args.plot}")
    return history


def _plot(history: list[tuple[int, float]], bound: float, path: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    fig = Figure(figsize=(5, 3.2), dpi=120)
    ax = fig.add_subplot()
    ax.plot([s for s, _ in history], [v for _, v in history], marker="o", label="held-out NLL")
    ax.axhline(bound, color="k", linestyle="--", label="entropy of the data")
    ax.set_xlabel("step")
    ax.set_ylabel("nats / image")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_bytes_atomically(path, buffer.getbuffer())


if __name__ == "__main__":
    main()
