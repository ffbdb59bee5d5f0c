"""``python -m bench.dmol``: the DMoL likelihood op per backend -- time, peak extra memory, roofline.

    python -m bench.dmol                                  # B=16, 32x32x3, K=10, float32, one CPU thread
    python -m bench.dmol --json bench/results/cpu_dmol.json
    python -m bench.dmol --device cuda --batch 64         # with the triton backend

* **Time**: every backend's forward (no gradient) and forward+backward (``dmol_nll(...,
  reduction="sum").backward()``), warm-up then ``--reps`` rounds in which the backends take turns
  (so a busy machine slows all of them alike); median and p20/p80 of each, and (column "cpu ms")
  the median CPU time of the forward+backward's thread, which other processes on a shared machine
  do not inflate (they still share its caches and memory bandwidth). CUDA: CUDA events
  around each call after a synchronize. Without CUDA the triton backend runs only under Triton's
  interpreter, which says nothing about speed: it is not timed.
* **Memory**, peak *extra* memory of one forward+backward, the inputs excluded, the parameter
  gradient included (every backend must produce it: P*B*H*W*itemsize). CPU (Linux): each backend in
  a fresh subprocess, after a warm-up on a tiny shape: the resident-set high-water mark is reset
  (``/proc/self/clear_refs``), and VmHWM after the call minus VmRSS before it is what the allocator
  actually took from the OS (tracemalloc is blind to PyTorch's allocations). CUDA:
  ``torch.cuda.max_memory_allocated`` over the allocated bytes before the call.
* **Bytes the op must move** (``bench.accounting.dmol_cost``, also bench.compare's ``dmol`` case): forward
  reads params and x and writes the loss; backward reads the loss's cotangent, params and x and
  writes d params -- the memory-bound roofline line is those bytes over the measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from bench.accounting import dmol_cost
from bench.machine import machine_header, measure_ceilings
from bench.timing import quantile

BACKENDS = ("reference", "torch", "triton")


def _inputs(cfg, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = (10 if cfg.channels == 3 else 3) * cfg.mixtures
    params = torch.randn(cfg.batch, p, cfg.size, cfg.size, generator=g).to(device=device, dtype=getattr(torch, cfg.dtype))
    x = torch.randint(0, cfg.levels, (cfg.batch, cfg.channels, cfg.size, cfg.size), generator=g).to(device)
    return params, x


def _step(backend, cfg, params, x, grad: bool):
    from fastpixel import ops

    if not grad:
        with torch.no_grad():
            return ops.dmol_nll(params, x, levels=cfg.levels, num_mixtures=cfg.mixtures, reduction="sum",
                                validate=False, backend=backend)
    p = params.detach().requires_grad_(True)
    ops.dmol_nll(p, x, levels=cfg.levels, num_mixtures=cfg.mixtures, reduction="sum", validate=False,
                 backend=backend).backward()
    return p.grad


def _timed(fn, device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread) of one call; CUDA: (event time, same)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        t = start.elapsed_time(end) * 1e-3
        return t, t
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - t0, time.thread_time() - c0


def time_backends(cfg, backends, device) -> dict:
    """Median/p20/p80/min wall time per (backend, mode), and the median CPU time of the calling thread
    (one thread: what the op itself used, whatever else ran on the machine meanwhile)."""
    params, x = _inputs(cfg, device)
    samples = {(b, m): [] for b in backends for m in ("fwd", "fwd_bwd")}
    for b in backends:  # warm-up
        for _ in range(cfg.warmup):
            _step(b, cfg, params, x, False)
            _step(b, cfg, params, x, True)
    for _ in range(cfg.reps):
        for b in backends:
            samples[b, "fwd"].append(_timed(lambda: _step(b, cfg, params, x, False), device))
            samples[b, "fwd_bwd"].append(_timed(lambda: _step(b, cfg, params, x, True), device))
    out = {}
    for (b, m), v in samples.items():
        wall, cpu = [w for w, _ in v], [c for _, c in v]
        out[f"{b}:{m}"] = {"median_s": statistics.median(wall), "p20_s": quantile(wall, 0.2),
                           "p80_s": quantile(wall, 0.8), "min_s": min(wall), "reps": len(wall),
                           "cpu_median_s": statistics.median(cpu), "cpu_min_s": min(cpu)}
    return out


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(cfg, backend) -> dict:
    """Run in a fresh process: peak resident growth of one forward+backward (CPU, Linux).

    The resident high-water mark is reset just before the call (``5`` to /proc/self/clear_refs,
    Linux >= 4.0), so imports and set-up do not hide the op's peak; then VmHWM - VmRSS(before)."""
    import gc

    import fastpixel.ops  # noqa: F401  (imports and table loads before the baseline)

    tiny = argparse.Namespace(**{**vars(cfg), "batch": 1, "size": 2})
    tp, tx = _inputs(tiny, "cpu")
    _step(backend, tiny, tp, tx, True)  # lazy initialisation off the books
    params, x = _inputs(cfg, "cpu")
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_bytes("VmRSS")
    grad = _step(backend, cfg, params, x, True)
    peak = _status_bytes("VmHWM")
    return {"backend": backend, "peak_extra_bytes": peak - before, "rss_before": before,
            "grad_bytes": grad.numel() * grad.element_size()}


def memory_backends(cfg, backends, device) -> dict:
    out = {}
    for b in backends:
        if device.type == "cuda":
            params, x = _inputs(cfg, device)
            _step(b, cfg, params, x, True)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            grad = _step(b, cfg, params, x, True)
            torch.cuda.synchronize()
            out[b] = {"backend": b, "peak_extra_bytes": torch.cuda.max_memory_allocated(device) - before,
                      "grad_bytes": grad.numel() * grad.element_size()}
            del grad
            continue
        args = [sys.executable, "-m", "bench.dmol", "--memory-child", b] + _cfg_args(cfg)
        env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads)}
        res = subprocess.run(args, capture_output=True, text=True, env=env,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if res.returncode != 0:
            raise RuntimeError(f"memory child for {b} failed:\n{res.stderr}")
        out[b] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def _cfg_args(cfg) -> list[str]:
    return [f"--batch={cfg.batch}", f"--size={cfg.size}", f"--mixtures={cfg.mixtures}", f"--channels={cfg.channels}",
            f"--levels={cfg.levels}", f"--dtype={cfg.dtype}", f"--threads={cfg.threads}"]


def static_reports(cfg, dtypes=("float32", "bfloat16")) -> list[dict]:
    """What the triton kernels compile to for sm_90, without a GPU: bench.static's DMoL launches
    (``_record_dmol``: the launchers on meta tensors of ``cfg``'s shapes, compiled as the JIT would)
    read back by ``bench.static.report_launches``; per kernel and dtype its KernelReport fields
    (registers, spill bytes, ``kernel_loads_by_width``: global loads in the SASS by width in bits)."""
    import bench.static as st  # first: it unsets TRITON_INTERPRET before triton is imported

    out = []
    for name in dtypes:
        launches = st._record_dmol(cfg.batch, cfg.size, getattr(torch, name), channels=cfg.channels,
                                   mixtures=cfg.mixtures, levels=cfg.levels)
        out += [{"dtype": name, **dataclasses.asdict(r)} for r in st.report_launches(launches)]
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.dmol", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--mixtures", type=int, default=10)
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument("--levels", type=int, default=256)
    p.add_argument("--dtype", choices=("float32", "float64", "bfloat16", "float16"), default="float32")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", default=None, help="comma-separated; default: reference,torch (+triton on CUDA)")
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--static", action="store_true",
                   help="compile the triton kernels for sm_90 (no GPU needed) and report registers, spills, loads")
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    if cfg.memory_child:
        print(json.dumps(memory_child(cfg, cfg.memory_child)))
        return {}
    if cfg.static:
        reports = static_reports(cfg)
        print(f"# bench.dmol --static: sm_90, B={cfg.batch} {cfg.size}x{cfg.size}x{cfg.channels} K={cfg.mixtures}")
        print("| kernel | dtype | ctas | warps | regs | spill B | global loads (bits: n, whole kernel) | constexprs |")
        print("|---|---|---|---|---|---|---|---|")
        for r in reports:
            loads = ", ".join(f"{w}: {n}" for w, n in r["kernel_loads_by_width"].items())
            consts = ", ".join(f"{k}={v}" for k, v in r["constexprs"].items())
            print(f"| {r['name']} | {r['dtype']} | {r['ctas']} | {r['num_warps']} | {r['registers']} | "
                  f"{r['spill_bytes']} | {loads} | {consts} |")
        if cfg.json:
            with open(cfg.json, "w") as f:
                json.dump({"static": reports}, f, indent=1)
        return {"static": reports}
    device = torch.device(cfg.device)
    backends = cfg.backends.split(",") if cfg.backends else (
        list(BACKENDS) if device.type == "cuda" else ["reference", "torch"])
    dtype = getattr(torch, cfg.dtype)
    header = machine_header(device, dtype)
    ceilings = measure_ceilings(device, dtype, copy_mib=256 if device.type == "cuda" else 64, matmul_n=1024)
    cost = dmol_cost(cfg.batch, cfg.channels, cfg.size, cfg.size, cfg.mixtures, torch.empty((), dtype=dtype).element_size())
    timings = time_backends(cfg, backends, device)
    memory = {} if cfg.no_memory else memory_backends(cfg, backends, device)

    print(f"# bench.dmol  {header['date']}  {header['gpu_name'] or header['cpu_name']}  threads={header['cpu_threads']}  "
          f"torch {header['torch']}  triton {header['triton']}  commit {str(header['git_commit'])[:10]}"
          f"{' (dirty)' if header['git_dirty'] else ''}  load {header['load_average']}")
    print(f"# B={cfg.batch} {cfg.size}x{cfg.size}x{cfg.channels} K={cfg.mixtures} L={cfg.levels} {cfg.dtype}; "
          f"copy bandwidth {ceilings['bytes_per_s'] / 1e9:.1f} GB/s")
    for mode in ("fwd", "fwd_bwd"):
        c = cost[mode]
        line = c.bytes / ceilings["bytes_per_s"]
        print(f"# {mode}: minimum bytes {c.bytes / 2**20:.1f} MiB -> memory-bound line {line * 1e3:.3f} ms; "
              f"~{c.flops / 1e6:.0f} MFLOP ({c.intensity:.1f} FLOP/byte)")
    ref_t = {m: timings.get(f"reference:{m}", {}).get("median_s") for m in ("fwd", "fwd_bwd")}
    print(f"{'backend':<10} {'fwd ms':>9} {'p20-p80':>15} {'x ref':>6} {'fwd+bwd ms':>11} {'p20-p80':>15} {'x ref':>6} "
          f"{'cpu ms':>8} {'x ref':>6} {'peak extra MiB':>15} {'/ ref':>6}")
    ref_mem = memory.get("reference", {}).get("peak_extra_bytes")
    for b in backends:
        row = f"{b:<10}"
        for m in ("fwd", "fwd_bwd"):
            t = timings[f"{b}:{m}"]
            speed = f"{ref_t[m] / t['median_s']:.2f}" if ref_t[m] else "-"
            row += (f" {t['median_s'] * 1e3:>{9 if m == 'fwd' else 11}.2f} "
                    f"{t['p20_s'] * 1e3:>7.2f}-{t['p80_s'] * 1e3:<7.2f} {speed:>6}")
        cpu, ref_cpu = timings[f"{b}:fwd_bwd"]["cpu_median_s"], timings.get("reference:fwd_bwd", {}).get("cpu_median_s")
        row += f" {cpu * 1e3:>8.2f} {(f'{ref_cpu / cpu:.2f}' if ref_cpu else '-'):>6}"
        mem = memory.get(b)
        if mem:
            ratio = f"{mem['peak_extra_bytes'] / ref_mem:.2f}" if ref_mem else "-"
            row += f" {mem['peak_extra_bytes'] / 2**20:>15.1f} {ratio:>6}"
        print(row)
    if memory:
        grad = next(iter(memory.values()))["grad_bytes"]
        print(f"# peak extra memory includes the parameter gradient every backend returns ({grad / 2**20:.1f} MiB)")
    result = {"header": header, "config": {k: v for k, v in vars(cfg).items() if k != "memory_child"},
              "ceilings": ceilings, "cost": {m: vars(cost[m]) for m in ("fwd", "fwd_bwd")},
              "timings": timings, "memory": memory}
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
