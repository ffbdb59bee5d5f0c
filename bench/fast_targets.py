"""``python -m bench.fast_targets``: the fast ("torch") backend against the reference, side by side.

The cases of issue 12, each timed on both backends in one process, the two interleaved call by
call so that a change in machine load hits both alike:

  * ``block_<kind>``: one residual block (Diagonal BiLSTM, Row LSTM, PixelCNN) on (16, 128, 32, 32),
    h = 64: forward, and forward + backward (``torch.autograd.grad`` w.r.t. input and parameters);
  * ``mnist_step_<kind>``: one training step (loss forward, backward, Adam) of the paper's
    binarized-MNIST architecture (7 layers, h = 16, output 32; batch 16, 28x28 binary images),
    for each of the three kinds;
  * ``sample_mnist256``: cached sampling of one 28x28 image, same architecture with a 256-way
    softmax (batch 1; the sampler has its own per-pixel code, run once per backend setting only for
    the model's forward, so this case is timed once, not per backend).

Times: wall clock (``time.perf_counter``) and this process's CPU time (``time.process_time``), the
median and minimum of ``--reps`` calls after a warm-up. On a shared machine the CPU time is the
steadier figure (a descheduled process does not accrue it), but both are reported. One thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import fastpixel
from fastpixel.layers import ResidualConvBlock, ResidualLSTMBlock
from fastpixel.sampling import sample

from bench.sampling import machine

KINDS = ("diagonal_bilstm", "row_lstm", "pixelcnn")
BACKENDS = ("reference", "torch")


def _set_backend(module: torch.nn.Module, backend: str) -> None:
    for m in module.modules():
        if hasattr(m, "backend"):
            m.backend = backend


def _time(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _summary(samples: list[tuple[float, float]]) -> dict:
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    return {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
            "cpu_median_s": statistics.median(cpus), "cpu_min_s": min(cpus), "reps": len(samples)}


def side_by_side(make_call, reps: int) -> dict:
    """make_call(backend) -> zero-argument callable; returns {backend: summary} plus speed-ups."""
    calls = {b: make_call(b) for b in BACKENDS}
    for call in calls.values():
        call()  # warm-up
    samples: dict[str, list] = {b: [] for b in BACKENDS}
    for _ in range(reps):
        for b in BACKENDS:
            samples[b].append(_time(calls[b]))
    out = {b: _summary(s) for b, s in samples.items()}
    for key in ("wall_median_s", "cpu_median_s", "cpu_min_s"):
        out[f"speedup_{key[:-2]}"] = out["reference"][key] / out["torch"][key]
    return out


def block_case(kind: str, reps: int) -> dict:
    torch.manual_seed(0)
    hidden, batch, size = 64, 16, 32
    block = ResidualConvBlock(hidden) if kind == "pixelcnn" else ResidualLSTMBlock(kind, hidden)
    x = torch.randn(batch, 2 * hidden, size, size, requires_grad=True)
    cotangent = torch.randn(batch, 2 * hidden, size, size)
    leaves = [x, *block.parameters()]
    result = {}
    for mode in ("fwd", "fwd_bwd"):
        def make_call(backend, mode=mode):
            def call():
                _set_backend(block, backend)
                out = block(x)
                if mode == "fwd_bwd":
                    torch.autograd.grad(out, leaves, cotangent)
            return call
        result[mode] = side_by_side(make_call, reps)
    return result


def mnist_step_case(kind: str, reps: int) -> dict:
    torch.manual_seed(0)
    x = torch.randint(0, 2, (16, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    models, optimizers = {}, {}
    for backend in BACKENDS:
        torch.manual_seed(0)
        models[backend] = fastpixel.create_model(kind, channels=1, levels=2, hidden=16, layers=7, output_hidden=32,
                                                 backend=backend)
        optimizers[backend] = torch.optim.Adam(models[backend].parameters(), lr=1e-3)

    def make_call(backend):
        model, opt = models[backend], optimizers[backend]

        def call():
            opt.zero_grad()
            loss = -model.log_prob(x).mean()
            loss.backward()
            opt.step()
        return call

    return {"fwd_bwd_adam": side_by_side(make_call, reps)}


def sampling_case(reps: int) -> dict:
    torch.manual_seed(0)
    model = fastpixel.create_model("diagonal_bilstm", channels=1, levels=256, hidden=16, layers=7,
                                   output_hidden=32).eval()
    sample(model, 1, height=2, width=2, generator=torch.Generator().manual_seed(0))  # warm-up
    samples = [_time(lambda: sample(model, 1, height=28, width=28, generator=torch.Generator().manual_seed(1)))
               for _ in range(reps)]
    return {"cached_sample_28x28_b1": _summary(samples)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.fast_targets", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5, help="timed calls per backend and case (after one warm-up)")
    p.add_argument("--case", action="append", help="block_<kind>, mnist_step_<kind> or sample_mnist256 (repeatable)")
    p.add_argument("--json", help="write the machine header and every figure here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cases = {f"block_{k}": (lambda k=k: block_case(k, args.reps)) for k in KINDS}
    cases |= {f"mnist_step_{k}": (lambda k=k: mnist_step_case(k, args.reps)) for k in KINDS}
    cases["sample_mnist256"] = lambda: sampling_case(args.reps)
    chosen = args.case or list(cases)
    unknown = set(chosen) - set(cases)
    if unknown:
        raise SystemExit(f"--case: unknown {sorted(unknown)}; choose from {sorted(cases)}")
    doc = {"machine": machine(torch.device("cpu")), "reps": args.reps, "results": {}}
    for name in chosen:
        doc["results"][name] = cases[name]()
        for mode, res in doc["results"][name].items():
            if "reference" in res:
                ref, fast = res["reference"], res["torch"]
                print(f"{name:<26}{mode:<14} reference {ref['wall_median_s'] * 1e3:8.1f} ms wall "
                      f"{ref['cpu_median_s'] * 1e3:8.1f} ms cpu | torch {fast['wall_median_s'] * 1e3:7.1f} ms wall "
                      f"{fast['cpu_median_s'] * 1e3:7.1f} ms cpu | x{res['speedup_cpu_median']:.2f} cpu "
                      f"x{res['speedup_wall_median']:.2f} wall", flush=True)
            else:
                print(f"{name:<26}{mode:<14} {res['wall_median_s'] * 1e3:8.1f} ms wall {res['cpu_median_s'] * 1e3:8.1f} ms cpu",
                      flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=2)
    return doc


if __name__ == "__main__":
    main()
