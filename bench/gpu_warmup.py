"""``python -m bench.gpu_warmup``: compile every kernel before anything is timed or hang-detected.

    python -m bench.gpu_warmup --json warmup.json          # on a GPU: CIFAR layer + test shapes
    python -m bench.gpu_warmup --dry-run                   # no CUDA: the same calls, tiny, interpreted

A cold triton cache turns the first call of every kernel specialisation into a compile of seconds;
``bench/gpu_check.sh`` runs this first, so that its later steps' time limits measure runs (and a
hung group barrier), not compiles. Each op (masked conv, loss, Row LSTM scan in every variant,
Diagonal BiLSTM scan) runs forward and backward once per dtype at the shapes of the paper's CIFAR-10
layer (B = 16, 32x32, h = 128, bf16; the shapes ``bench.compare --preset cifar`` times) and at a
small odd shape (float32, float64). Autotuned kernels run their configs here too, on a GPU. Each
compile's wall time is recorded (``--json``); a call that fails is recorded with its error and the
rest still run (exit status 1 then).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _cases(device: str, dry: bool):
    import torch

    from fastpixel.kernels import cross_entropy, diagonal_bilstm, masked_conv, row_lstm
    from fastpixel.masks import MaskSpec, color_groups, gate_groups

    if dry:  # the interpreter: tiny, float32 only
        shapes = [("tiny", 1, 3, 5, torch.float32)]
    else:
        shapes = [("cifar", 16, 32, 128, torch.bfloat16), ("odd", 2, 7, 20, torch.float32),
                  ("odd", 2, 7, 20, torch.float64)]
    for label, b, s, h, dt in shapes:
        gen = torch.Generator().manual_seed(0)

        def rnd(*shape, scale=1.0):
            return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=dt).requires_grad_()

        spec = MaskSpec((1, 1), "B", color_groups(2 * h, 3), gate_groups(2 * h, 3))

        def conv(spec=spec, b=b, s=s, h=h):
            y = masked_conv.masked_conv2d(rnd(b, 2 * h, s, s), rnd(8 * h, 2 * h, 1, 1, scale=0.05), rnd(8 * h), spec)
            y.float().sum().backward()

        def loss(b=b, s=s):
            logits = rnd(b, 256 * 3, s, s).view(b, 256, 3, s, s)
            targets = torch.randint(0, 256, (b, 3, s, s), generator=gen).to(device)
            cross_entropy.pixel_cross_entropy(logits, targets, "mean", validate=False).backward()

        def diag(b=b, s=s, h=h):
            out = diagonal_bilstm.diagonal_bilstm_scan(rnd(b, 4 * h, s, s), rnd(4 * h, h, 2, 1, scale=0.1),
                                                       rnd(b, 4 * h, s, s), rnd(4 * h, h, 2, 1, scale=0.1))
            out.float().sum().backward()

        def row(variant, b=b, s=s, h=h):
            x, w = rnd(b, 4 * h, s, s), rnd(4 * h, h, 1, 3, scale=0.1)
            hs, c = row_lstm.row_lstm_forward(x.detach(), w.detach(), variant=variant)
            row_lstm.row_lstm_backward(x.detach(), w.detach(), hs, c, torch.ones_like(hs), variant=variant)

        yield f"masked_conv {label} {dt}", conv
        yield f"cross_entropy {label} {dt}", loss
        yield f"diagonal_bilstm {label} {dt}", diag
        for variant in ((None, "tiled") if label == "cifar" else (None, "tiled", "resident")):
            yield f"row_lstm[{variant or 'auto'}] {label} {dt}", (lambda v=variant: row(v))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_warmup", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="no CUDA: tiny shapes through triton's interpreter")
    p.add_argument("--json", help="write [{'case', 'seconds', 'error'}] here")
    p.add_argument("--seconds", type=float, default=float("inf"), help="stop starting new cases after this long")
    args = p.parse_args(argv)
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("bench.gpu_warmup: no CUDA device (use --dry-run without one)", file=sys.stderr)
        return 2
    records, failed, start = [], 0, time.monotonic()
    for name, fn in _cases(device, args.dry_run):
        if time.monotonic() - start > args.seconds:
            records.append(dict(case=name, seconds=0.0, error="skipped: warm-up time budget spent"))
            continue
        t0 = time.monotonic()
        error = None
        try:
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - recorded; the other cases still warm up
            error, failed = f"{type(exc).__name__}: {exc}"[:500], failed + 1
        records.append(dict(case=name, seconds=round(time.monotonic() - t0, 3), error=error))
        print(f"{name}: {records[-1]['seconds']:.1f} s{'  FAILED ' + error if error else ''}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    print(f"bench.gpu_warmup: {len(records)} cases, {failed} failed, {time.monotonic() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
