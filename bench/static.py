"""``python -m bench.static``: what the scan kernels compile to on an H100/H200, without a GPU.

    python -m bench.static --preset cifar --json static.json     # the paper's CIFAR-10 layer, bf16
    python -m bench.static --preset tiny --dtype float32          # seconds

Runs the scans' real host launchers (``diagonal_bilstm_forward/backward``, ``row_lstm_forward/
backward``) on ``meta`` tensors of the preset's shapes (batch, size x size, hidden) with every
Triton launch intercepted: each launch is recorded with its grid and arguments instead of run, and
then compiled for sm_90 (``triton.compile`` of an ``ASTSource`` for ``GPUTarget("cuda", 90, 32)``)
with the specialisation the JIT would give the same call on a GPU (the JIT's own binder: integer
arguments equal to 1 become constants, multiples of 16 and 16-byte-aligned pointers get
``tt.divisibility=16``). The compiled code is read back with triton's bundled ptxas log and
``cuobjdump``. Per kernel:

* ``ctas``: the launch grid's size; ``launches``: how many launches of that specialisation;
* ``registers``, ``spill_bytes`` (ptxas: spill stores), ``stack_bytes``, ``shared_bytes``;
* ``mma``: the matrix instructions in the SASS: ``wgmma`` (HGMMA), ``mma.sync`` (HMMA/DMMA) or
  ``fma`` (no tensor-core instruction);
* ``mma_replication``: from the TTGIR, the largest factor by which a ``tt.dot``'s warps overlap
  (the warps' MMA tiles cover the dot's [M, N] this many times over; 1 = no redundant MMA);
* ``loop_loads_by_width``: global loads (``LDG``, ``LDGSTS``; bulk copies as ``"tma"``) inside the
  step loop, by access width in bits, counted per step (see below);
* ``barriers_per_step``: CTA barriers (``BAR.SYNC``/``BAR.RED``/``BAR.ARV``) inside the step loop.

The *step loop* is the outermost loop of the SASS (a backward branch) that contains a CTA barrier
(the scans end every step with one); when no loop has a barrier (the weight-gradient GEMMs), it is
the outermost loop, and a "step" is one iteration of it. Instructions of loops nested inside the
step loop are counted once per iteration of those loops: their trip counts are not in the binary,
so each kernel's spec below states them for the preset's shapes (``inner_trips``, by nesting depth);
``inner_loops`` says how many nested loops there are, so a count that depends on that estimate can
be seen as such.

Nothing here needs CUDA: triton's sm_90 toolchain (ptxas, cuobjdump in triton's
``backends/nvidia/bin``) is enough. Not measured here: anything about time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field

# the kernels must be compiled as JIT functions, never through the interpreter
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

PRESETS = {
    # the paper's CIFAR-10 layer at batch 16, as bench.compare's "cifar" preset
    "cifar": dict(batch=16, size=32, hidden=128),
    # the CPU preset of bench.compare
    "cpu": dict(batch=2, size=12, hidden=16),
    # seconds: the test keeps the command working with it
    "tiny": dict(batch=2, size=8, hidden=16),
}
DTYPES = ("bfloat16", "float16", "float32", "float64")


@dataclass
class KernelReport:
    name: str
    scan: str
    ctas: int
    launches: int
    num_warps: int
    registers: int
    spill_bytes: int
    stack_bytes: int
    shared_bytes: int
    mma: str
    mma_replication: float
    loop_loads_by_width: dict[str, int]
    barriers_per_step: int
    inner_loops: int
    spin_loops: int = 0
    grid_sync: bool = False
    constexprs: dict[str, object] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- launch capture


@dataclass
class _Launch:
    fn: object
    grid: tuple
    args: tuple
    kwargs: dict


@contextlib.contextmanager
def _capture_launches():
    """Within the block, ``kernel[grid](...)`` records the launch and returns None instead of running."""
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    launches: list[_Launch] = []
    real_run, real_tuner_run = JITFunction.run, Autotuner.run

    def record(self, *args, grid, warmup, **kwargs):
        launches.append(_Launch(self, tuple(grid) if not callable(grid) else grid, args, kwargs))
        return None

    def first_config(self, *args, **kwargs):  # an autotuned kernel: its first config, no benchmarking
        configs = self.configs
        self.configs = configs[:1]
        try:
            return real_tuner_run(self, *args, **kwargs)
        finally:
            self.configs = configs

    JITFunction.run = record
    Autotuner.run = first_config
    try:
        yield launches
    finally:
        JITFunction.run, Autotuner.run = real_run, real_tuner_run


@contextlib.contextmanager
def _as_if_on_gpu(sms: int):
    """The launchers' grid choices (CTAs per scan, kernels/_group_sync.py; split-K of the weight
    gradients) made as on a GPU with ``sms`` multiprocessors, for the meta tensors the launchers run
    on here: ``_common.assume_num_sms`` sets the SM count, and the scans' ``group_size`` is called
    with a CUDA device (it takes G = 1 for any other)."""
    import torch

    from fastpixel.kernels import _common, _group_sync

    real_size = _group_sync.group_size

    def group_size(n_groups, chunks, device, requested=None):
        return real_size(n_groups, chunks, torch.device("cuda"), requested)

    modules = [m for m in list(sys.modules.values()) if getattr(m, "group_size", None) is real_size]
    for m in modules:
        m.group_size = group_size
    try:
        with _common.assume_num_sms(sms):
            yield
    finally:
        for m in modules:
            m.group_size = real_size


def _record_scans(batch: int, size: int, hidden: int, dtype, sms: int = 132) -> list[tuple[str, _Launch]]:
    """Run the four scan launchers on meta tensors as on a GPU with ``sms`` multiprocessors (the
    H200's 132 by default); return (scan, launch) for every kernel launch."""
    import torch

    from fastpixel.kernels import diagonal_bilstm, row_lstm

    def t(*shape, dt=dtype):
        return torch.empty(*shape, device="meta", dtype=dt)

    b, s, h = batch, size, hidden
    out: list[tuple[str, _Launch]] = []
    with _as_if_on_gpu(sms), _capture_launches() as launches:
        gates, w = t(b, 4 * h, s, s), t(4 * h, h, 2, 1)
        y, *saved = diagonal_bilstm.diagonal_bilstm_forward(gates, w, gates, w)
        diagonal_bilstm.diagonal_bilstm_backward(t(b, h, s, s), *saved, w, w)
    out += [("diagonal_bilstm", x) for x in launches]
    with _as_if_on_gpu(sms), _capture_launches() as launches:
        gates, w = t(b, 4 * h, s, s), t(4 * h, h, 1, 3)
        hs, *saved = row_lstm.row_lstm_forward(gates, w)
        row_lstm.row_lstm_backward(gates, w, hs, *saved, t(b, h, s, s))
    out += [("row_lstm", x) for x in launches]
    return out


def _record_others(batch: int, size: int, hidden: int, dtype) -> list[tuple[str, _Launch]]:
    """Every launch of the two non-scan kernels' forward and backward at the preset: the Diagonal
    BiLSTM layer's input-to-state conv (1x1, mask B, 2h -> 8h, RGB groups: forward, grad input,
    grad weight, grad bias) and the loss (3 channels, 256 levels, "sum": forward with gradient,
    backward scale). The launchers are called directly: the registered custom ops would send meta
    tensors to their fake implementations, so that nothing launches. Autotuned kernels are compiled
    with their first config."""
    import torch

    from fastpixel.kernels import cross_entropy, masked_conv
    from fastpixel.masks import MaskSpec, color_groups, gate_groups

    def t(*shape, dt=dtype):
        return torch.empty(*shape, device="meta", dtype=dt)

    out: list[tuple[str, _Launch]] = []
    spec = MaskSpec((1, 1), "B", color_groups(2 * hidden, 3), gate_groups(2 * hidden, 3))
    limit, center, masked = masked_conv._mask_args(spec)
    x, w, bias = t(batch, 2 * hidden, size, size), t(8 * hidden, 2 * hidden, 1, 1), t(8 * hidden)
    dy = t(batch, 8 * hidden, size, size)
    with _capture_launches() as launches:
        masked_conv._gemm(x, w, bias, limit, tuple(center), masked, transposed=False)
        masked_conv._gemm(dy, w, None, limit, tuple(center), masked, transposed=True)
        masked_conv._weight_grad(x, dy, tuple(w.shape), w.dtype, limit, tuple(center), masked)
        masked_conv._bias_grad(dy, bias.dtype)
    out += [("masked_conv", x) for x in launches]
    logits = t(batch, 256 * 3, size, size).view(batch, 256, 3, size, size)
    targets = torch.zeros(batch, 3, size, size, dtype=torch.long, device="meta")
    with _capture_launches() as launches:
        _, grad, _ = cross_entropy.cross_entropy_fwd(logits, targets, "sum", compute_grad=True, inplace=False)
        cross_entropy.cross_entropy_bwd(grad, torch.ones((), device="meta", dtype=torch.float32), inplace=False)
    out += [("cross_entropy", x) for x in launches]
    return out


# ------------------------------------------------------------------------------------------ compile


def _target():
    from triton.backends.compiler import GPUTarget

    return GPUTarget("cuda", 90, 32)


def _compile(launch: _Launch):
    """Compile a recorded launch for sm_90 as the JIT would; returns (compiled kernel, ptxas log, constexprs)."""
    import triton
    from triton import knobs
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    target = _target()
    backend = make_backend(target)
    fn = launch.fn
    kwargs = dict(launch.kwargs)
    kwargs.setdefault("debug", False)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
    log = io.StringIO()
    old = knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile
    knobs.nvidia.dump_ptxas_log = True
    knobs.compilation.always_compile = True  # a cached kernel would skip ptxas, and with it the log
    try:
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                    options=options.__dict__)
    finally:
        knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile = old
    names = {k[0]: v for k, v in constexprs.items() if len(k) == 1}
    named = {fn.arg_names[i]: (v if isinstance(v, (int, float, str, bool)) else str(v)) for i, v in names.items()
             if fn.arg_names[i].isupper()}  # the meta-parameters (BLOCK sizes, flags), not 1-valued ints
    ints = {k: v for k, v in bound.items() if isinstance(v, int) and not isinstance(v, bool)}
    grid = launch.grid(bound) if callable(launch.grid) else launch.grid  # autotuned kernels: grid(meta)
    return kernel, log.getvalue(), named, ints, tuple(grid)


def _ptxas_numbers(log: str) -> dict[str, int]:
    def grab(pattern: str) -> int:
        m = re.search(pattern, log)
        return int(m.group(1)) if m else 0

    return dict(
        registers=grab(r"Used (\d+) registers"),
        spill_bytes=grab(r"(\d+) bytes spill stores"),
        stack_bytes=grab(r"(\d+) bytes stack frame"),
    )


# --------------------------------------------------------------------------------------- SASS reads


_BARRIER = re.compile(r"\bBAR\.(SYNC|RED|ARV)\b")
_ATOMIC = re.compile(r"\b(ATOMG|ATOM|RED)\b")
_GLOBAL_LOAD = re.compile(r"\b(LDG|LDGSTS)((?:\.[A-Z0-9_]+)*)\s")
_TMA = re.compile(r"\bUTMALDG\b|\bUBLKCP\b")


def _sass_lines(cubin: bytes) -> list[str]:
    from triton.tools.disasm import get_sass

    return [line.strip() for line in get_sass(cubin).splitlines() if line.strip()]


def _loops(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line index of every loop: a branch back to a label defined above it."""
    labels = {}
    for i, line in enumerate(lines):
        m = re.match(r"^(\.?L\w+):$", line)
        if m:
            labels[m.group(1)] = i
    loops = []
    for i, line in enumerate(lines):
        m = re.search(r"\bBRA\s+(?:`\()?(\.?L\w+)", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            loops.append((labels[m.group(1)], i))
    return loops


def _load_width(suffix: str) -> str:
    parts = suffix.split(".")
    for p in parts:
        if p in ("128", "64"):
            return p
        if p in ("U16", "S16"):
            return "16"
        if p in ("U8", "S8"):
            return "8"
    return "32"


def _step_loop_counts(lines: list[str], inner_trips: dict[int, int]) -> tuple[dict[str, int], int, int, int]:
    """(global loads by width, barriers, nested loops, spin loops) per step of the step loop
    (module docstring). A short nested loop whose only global accesses are atomics or GPU-scope
    acquire loads is a group barrier's wait (kernels/_group_sync.py; ``atomic_add(p, 0, acquire)``
    compiles to ``LDG.E.STRONG.GPU``): counted once, and not as a nesting level of the step's own
    loops."""
    loops = _loops(lines)
    if not loops:
        return {}, 0, 0, 0

    def is_spin(lp):  # a short loop whose only global accesses are atomics or GPU-scope strong loads
        body = lines[lp[0]:lp[1] + 1]
        loads = [x for x in body if _GLOBAL_LOAD.search(x)]
        atomics = [x for x in body if _ATOMIC.search(x)]
        return len(body) <= 40 and bool(loads or atomics) and all(".STRONG." in x for x in loads)

    def contains(outer, inner):
        return outer[0] <= inner[0] and inner[1] <= outer[1] and outer != inner

    outermost = [lp for lp in loops if not any(contains(o, lp) for o in loops)]
    with_barrier = [lp for lp in outermost if any(_BARRIER.search(lines[i]) for i in range(lp[0], lp[1] + 1))]
    candidates = with_barrier or outermost
    step = max(candidates, key=lambda lp: lp[1] - lp[0])
    spins = [lp for lp in loops if contains(step, lp) and is_spin(lp)]
    nested = [lp for lp in loops if contains(step, lp) and not is_spin(lp)]

    def weight(i: int) -> int:
        depth = sum(1 for lp in nested if lp[0] <= i <= lp[1])
        return math.prod(inner_trips.get(d, 1) for d in range(1, depth + 1))

    loads: dict[str, int] = {}
    barriers = 0
    for i in range(step[0], step[1] + 1):
        line = lines[i]
        m = _GLOBAL_LOAD.search(line)
        if m:
            width = _load_width(m.group(2))
            loads[width] = loads.get(width, 0) + weight(i)
        elif _TMA.search(line):
            loads["tma"] = loads.get("tma", 0) + weight(i)
        if _BARRIER.search(line):
            barriers += weight(i)
    return dict(sorted(loads.items(), key=lambda kv: (kv[0] == "tma", int(kv[0]) if kv[0].isdigit() else 0))), \
        barriers, len(nested), len(spins)


def _mma_kind(lines: list[str]) -> str:
    text = "\n".join(lines)
    if re.search(r"\bHGMMA\b|\bQGMMA\b|\bIGMMA\b", text):
        return "wgmma"
    if re.search(r"\bHMMA\b|\bDMMA\b|\bIMMA\b", text):
        return "mma.sync"
    return "fma"


def _mma_replication(ttgir: str) -> float:
    """Largest overlap of the warps' MMA tiles over a dot's [M, N] (1.0: every warp computes its own part)."""
    layouts = {}
    for m in re.finditer(r"^(#\w+) = #ttg\.nvidia_mma<\{([^}]*)\}>", ttgir, re.M):
        body = m.group(2)
        major = int(re.search(r"versionMajor = (\d+)", body).group(1))
        warps = [int(x) for x in re.search(r"warpsPerCTA = \[([\d, ]+)\]", body).group(1).split(",")]
        instr = [int(x) for x in re.search(r"instrShape = \[([\d, ]+)\]", body).group(1).split(",")]
        layouts[m.group(1)] = (major, warps, instr)
    worst = 1.0
    for m in re.finditer(r"(?:tt\.dot|ttng\.warp_group_dot)\b[^\n]*->\s*tensor<(\d+)x(\d+)x\w+,\s*(#\w+)>", ttgir):
        rows, cols, name = int(m.group(1)), int(m.group(2)), m.group(3)
        if name not in layouts:
            continue
        major, warps, instr = layouts[name]
        # a warp's MMA tile: 16 rows (mma.sync m16, or its quarter of a wgmma m64) x instr N columns
        tile_m, tile_n = 16, instr[1]
        cover_m, cover_n = warps[0] * tile_m, warps[1] * tile_n
        worst = max(worst, max(1.0, cover_m / rows) * max(1.0, cover_n / cols))
    return worst


# ------------------------------------------------------------------------------------------ reports

# Trip counts of the loops nested in a kernel's step loop, by nesting depth, from the launch's
# integer arguments and constexprs (a kernel absent here has no nested loops, or they are unrolled
# at compile time). NCG: chunks of hidden units per CTA (all chunks when the kernel has no NCG:
# before the CTA groups).
def _chunks(a: dict, block: str) -> int:
    return a["NCG"] if "NCG" in a else math.ceil(a["HID"] / a[block])


INNER_TRIPS = {
    "_diagonal_bilstm_fwd_kernel": lambda a: {1: _chunks(a, "BN")},
    "_diagonal_bilstm_bwd_kernel": lambda a: {1: _chunks(a, "BN"), 2: 8},  # depth 2: before, 8 (tap, gate) dots
    "_row_lstm_fwd_tiled_kernel": lambda a: {1: math.ceil(a["W"] / a["BJ"]), 2: _chunks(a, "BU"),
                                             3: math.ceil(a["HID"] / a["BK"])},
    "_row_lstm_bwd_tiled_kernel": lambda a: {1: math.ceil(a["W"] / a["BJ"]), 2: _chunks(a, "BU"),
                                             3: math.ceil(a["HID"] / a["BK"])},
}


def _short_name(fn_name: str) -> str:
    return fn_name.strip("_").removesuffix("_kernel")


def analyse(preset: str = "cifar", dtype: str = "bfloat16", *, batch=None, size=None, hidden=None,
            others: bool = False, progress=None) -> list[KernelReport]:
    """Compile every scan kernel the launchers use at the preset's shapes (and with ``others`` the
    forward kernels of a masked conv and the loss); one report per specialisation."""
    import torch

    cfg = dict(PRESETS[preset])
    for k, v in (("batch", batch), ("size", size), ("hidden", hidden)):
        if v is not None:
            cfg[k] = v
    torch_dtype = getattr(torch, dtype)
    launches = _record_scans(cfg["batch"], cfg["size"], cfg["hidden"], torch_dtype)
    if others:
        launches += _record_others(cfg["batch"], cfg["size"], cfg["hidden"], torch_dtype)
    reports: dict[tuple, KernelReport] = {}
    for scan, launch in launches:
        kernel, log, constexprs, ints, grid = _compile(launch)
        key = (scan, launch.fn.__name__, kernel.hash)
        ctas = math.prod(grid)
        if key in reports:
            reports[key].launches += 1
            continue
        if progress:
            progress(f"compiled {launch.fn.__name__}")
        lines = _sass_lines(kernel.asm["cubin"])
        trips_of = INNER_TRIPS.get(launch.fn.__name__)
        inner_trips = trips_of({**ints, **constexprs}) if trips_of else {}
        loads, barriers, inner, spins = _step_loop_counts(lines, inner_trips)
        reports[key] = KernelReport(
            name=_short_name(launch.fn.__name__), scan=scan, ctas=ctas, launches=1,
            num_warps=kernel.metadata.num_warps, **_ptxas_numbers(log), shared_bytes=kernel.metadata.shared,
            mma=_mma_kind(lines), mma_replication=_mma_replication(kernel.asm["ttgir"]),
            loop_loads_by_width=loads, barriers_per_step=barriers, inner_loops=inner, spin_loops=spins,
            grid_sync=bool(constexprs.get("GRID_SYNC", False)), constexprs=constexprs,
        )
    return list(reports.values())


def format_table(reports: list[KernelReport]) -> str:
    head = ["kernel", "ctas", "launches", "warps", "regs", "spill B", "smem B", "mma", "mma x",
            "step-loop global loads (bits: n)", "barriers/step", "inner loops", "group sync"]
    rows = [head, ["---"] * len(head)]
    for r in reports:
        loads = ", ".join(f"{w}: {n}" for w, n in r.loop_loads_by_width.items()) or "-"
        rows.append([r.name, str(r.ctas), str(r.launches), str(r.num_warps), str(r.registers), str(r.spill_bytes),
                     str(r.shared_bytes), r.mma, f"{r.mma_replication:g}", loads, str(r.barriers_per_step),
                     str(r.inner_loops), "yes" if r.grid_sync else "-"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.static", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cifar")
    p.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    p.add_argument("--batch", type=int, help="override the preset")
    p.add_argument("--size", type=int, help="override the preset (H = W)")
    p.add_argument("--hidden", type=int, help="override the preset")
    p.add_argument("--others", action="store_true",
                   help="also the forward kernels of the Diagonal BiLSTM's input-to-state masked conv and the loss")
    p.add_argument("--json", help="write the reports here: {'preset', 'shape', 'dtype', 'target', 'kernels': [...]}")
    args = p.parse_args(argv)
    try:
        import triton  # noqa: F401
        from triton import knobs

        knobs.nvidia.ptxas.path  # noqa: B018  the bundled sm_90 toolchain
        knobs.nvidia.cuobjdump.path  # noqa: B018
    except Exception as exc:  # pragma: no cover - depends on the installation
        print(f"bench.static needs triton with its bundled NVIDIA toolchain (ptxas, cuobjdump): {exc}", file=sys.stderr)
        return 2
    reports = analyse(args.preset, args.dtype, batch=args.batch, size=args.size, hidden=args.hidden,
                      others=args.others, progress=lambda m: print(m, file=sys.stderr))
    cfg = dict(PRESETS[args.preset])
    cfg.update({k: v for k, v in (("batch", args.batch), ("size", args.size), ("hidden", args.hidden)) if v})
    print(f"sm_90 compile (triton {triton.__version__}), preset {args.preset}: B={cfg['batch']}, "
          f"{cfg['size']}x{cfg['size']}, h={cfg['hidden']}, {args.dtype}")
    print(format_table(reports))
    if args.json:
        doc = dict(preset=args.preset, shape=cfg, dtype=args.dtype, target="cuda:90",
                   triton=triton.__version__, kernels=[asdict(r) for r in reports])
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
