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
* ``kernel_loads_by_width``: global loads anywhere in the kernel's SASS, by width in bits (the
  whole kernel, once each: for kernels without a step loop, e.g. the losses, this is the figure).

``--others`` adds the non-scan kernels at the preset's batch and size: the Diagonal BiLSTM layer's
input-to-state masked conv (forward, input gradient, weight and bias gradients), the cross-entropy
loss (3 channels, 256 levels) and the DMoL loss (``_record_dmol``: RGB, K = 10, 256 levels, uint8
images; its forward-with-gradient and backward kernels), which ``python -m bench.dmol --static``
compiles through the same functions.

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

SM90_SHARED_BYTES = 232_448  # opt-in shared memory per block of an H100/H200

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
    mma_per_step: int = 0  # MMA instructions (HMMA/DMMA/HGMMA...) per step, per thread's warp
    per_poll: dict[str, int] = field(default_factory=dict)  # a group barrier's wait loop: cost of one poll
    inner_trips: dict[str, int] = field(default_factory=dict)  # trip counts of the loops in the step loop
    trips_matched: bool = True  # False: the SASS loops did not match the source's; nested counts once per step
    sass_instructions: int = 0
    fits_sm90_shared: bool = True  # shared_bytes <= an H100/H200's 232,448 per block
    kernel_loads_by_width: dict[str, int] = field(default_factory=dict)  # global loads in the whole SASS, by bits


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
    return out + _record_dmol(batch, size, dtype)


#: The DMoL loss at every preset: PixelCNN++'s RGB head, K = 10 components, 8-bit images.
DMOL = dict(channels=3, mixtures=10, levels=256)


def _record_dmol(batch: int, size: int, dtype, *, channels: int = DMOL["channels"], mixtures: int = DMOL["mixtures"],
                 levels: int = DMOL["levels"]) -> list[tuple[str, _Launch]]:
    """Every launch of the DMoL likelihood's forward-with-gradient and backward at (batch, P, size, size)
    params (P = 10K for RGB, 3K grey) and uint8 images (batch, channels, size, size), reduction "none"
    (as a model's loss calls it): ``dmol_fwd`` (loss and d loss/d params in one pass) and ``dmol_bwd``
    (the gradient times the (B, H, W) cotangent). The launchers are called directly, as in
    :func:`_record_others`."""
    import torch

    from fastpixel.kernels import dmol

    p = (10 if channels == 3 else 3) * mixtures
    params = torch.empty(batch, p, size, size, device="meta", dtype=dtype)
    x = torch.empty(batch, channels, size, size, device="meta", dtype=torch.uint8)
    with _capture_launches() as launches:
        loss, grad = dmol.dmol_fwd(params, x, levels, mixtures, "none", compute_grad=True)
        dmol.dmol_bwd(grad, torch.empty(loss.shape, device="meta", dtype=loss.dtype))
    return [("dmol", x) for x in launches]


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
_ATOMIC = re.compile(r"\b(ATOMG|ATOM|RED|REDG)\b")
_GLOBAL_LOAD = re.compile(r"\b(LDG|LDGSTS)((?:\.[A-Z0-9_]+)*)\s")
_TMA = re.compile(r"\bUTMALDG\b|\bUBLKCP\b")
_MMA = re.compile(r"\b(HMMA|DMMA|IMMA|HGMMA|QGMMA|IGMMA)\b")
_INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*?)\s*;")
_BRANCH_TARGET = re.compile(r"\bBRA\b[^;]*?(0x[0-9a-f]+)\s*$")


def read_sass(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Every instruction of ``cuobjdump -sass`` output (one kernel), whatever its address, and every
    loop as (first, last) instruction index: a ``BRA`` (predicated or not, ``BRA P2, 0x120`` too)
    back to a lower address. Triton's own ``tools.disasm`` (3.6) stops at the first address of 5
    hex digits (0x10000: kernels over 4,096 instructions lost their step loops) and maps only
    unpredicated-form targets to labels; this reader parses the raw output instead."""
    instructions: list[tuple[int, str]] = [(int(a, 16), t.strip()) for a, t in _INSTRUCTION.findall(text)]
    index = {addr: i for i, (addr, _) in enumerate(instructions)}
    loops = []
    for i, (addr, text_i) in enumerate(instructions):
        m = _BRANCH_TARGET.search(text_i)
        if m:
            target = int(m.group(1), 16)
            if target <= addr and target in index:
                loops.append((index[target], i))
    return [t for _, t in instructions], loops


def _sass(cubin: bytes) -> tuple[list[str], list[tuple[int, int]]]:
    import subprocess
    import tempfile

    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([knobs.nvidia.cuobjdump.path, "-sass", f.name], check=True, capture_output=True,
                              text=True).stdout
    return read_sass(text)


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


# -- the loops of the source (TTGIR) and how they map onto the SASS loops ----------------------------


@dataclass
class SourceLoop:
    """An ``scf.for`` of the TTGIR: its bounds (lower, upper, step: an integer for a constant, else
    the SSA value's name, which triton takes from the Python variable), and the loops inside it."""
    lower: int | str
    upper: int | str
    step: int | str
    children: list["SourceLoop"] = field(default_factory=list)

    @property
    def constant(self) -> bool:
        return all(isinstance(v, int) for v in (self.lower, self.upper, self.step))

    @property
    def label(self) -> str:
        return f"{self.lower}..{self.upper}" + ("" if self.step == 1 else f"/{self.step}")

    def trip(self, args: dict) -> int | None:
        """Iterations, from the launch's integer arguments and constexprs; None when unknown. A
        loop up to ``ch_end`` (a CTA's chunks, ``min(begin + NCG, NCH)``) runs NCG times."""
        if self.upper == "ch_end" and "NCG" in args:
            return args["NCG"]
        lo, hi, st = (v if isinstance(v, int) else args.get(v) for v in (self.lower, self.upper, self.step))
        if not all(isinstance(v, int) for v in (lo, hi, st)) or st <= 0:
            return None
        return max(0, -(-(hi - lo) // st))


_SCF_FOR = re.compile(r"scf\.for %\w+ = %([\w-]+) to %([\w-]+) step %([\w-]+)")


def _bound(ssa: str) -> int | str:
    m = re.fullmatch(r"c(-?\d+)(?:_i\d+)?(?:_\d+)?", ssa)
    if m:
        return int(m.group(1))
    return re.sub(r"_\d+$", "", ssa)


def source_loops(ttgir: str) -> list[SourceLoop]:
    """The tree of ``scf.for`` loops of a TTGIR module, in program order (braces give the nesting)."""
    roots: list[SourceLoop] = []
    stack: list[tuple[SourceLoop, int]] = []  # (open loop, brace depth before its line)
    depth = 0
    for line in ttgir.splitlines():
        m = _SCF_FOR.search(line)
        if m:
            loop = SourceLoop(*(_bound(v) for v in m.group(1, 2, 3)))
            (stack[-1][0].children if stack else roots).append(loop)
            stack.append((loop, depth))
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return roots


def _shape(forest) -> tuple:
    return tuple(_shape(children) for children in forest)


def _expansions(forest: list[SourceLoop], args: dict):
    """Every forest the compiler may leave of ``forest``: a loop either stays, or is gone with its
    body in its place (fully unrolled, or a loop of one trip folded away) when its trip count is 1 or
    its bounds are constants. Yields lists of (kept loop, its expanded children)."""
    if not forest:
        yield []
        return
    head, rest = forest[0], forest[1:]
    for tail in _expansions(rest, args):
        for inner in _expansions(head.children, args):
            yield [(head, inner)] + tail
        if head.constant or head.trip(args) == 1:
            for inner in _expansions(head.children, args):
                yield inner + tail


def match_loops(sass_forest: list, source_forest: list[SourceLoop], args: dict):
    """The source loop of every SASS loop: the first expansion of the source forest with the SASS
    forest's shape (loops kept first). ``sass_forest``: nested lists (a loop's list holds its
    loops). Returns the matched expansion (same nesting, (SourceLoop, children) pairs) or None."""
    want = _shape(sass_forest)

    def shape(exp):
        return tuple(shape(children) for _, children in exp)

    for exp in _expansions(source_forest, args):
        if shape(exp) == want:
            return exp
    return None


@dataclass
class StepCounts:
    loads: dict[str, int]
    barriers: int
    mma: int
    inner_loops: int
    spin_loops: int
    per_poll: dict[str, int]
    trips: dict[str, int]
    matched: bool


def step_loop_counts(lines: list[str], loops: list[tuple[int, int]], source: list[SourceLoop] | None = None,
                     args: dict | None = None) -> StepCounts:
    """Global loads by width, CTA barriers and MMA instructions per step of the step loop.

    The step loop is the outermost SASS loop that contains a CTA barrier (the scans end every step
    with one), else the outermost, longest loop (the GEMMs: a "step" is one iteration). Loops nested
    in it count their instructions once per trip: each SASS loop is matched to the ``scf.for`` of
    the source it comes from (``source``: the step loop's children in the TTGIR; loops the compiler
    unrolled or folded away, i.e. of constant bounds or one trip, may be missing: :func:`match_loops`),
    and its trip count comes from that loop's bounds and the launch's arguments ``args``. A short loop whose only global accesses
    are GPU-scope strong loads or atomics is a group barrier's wait (kernels/_group_sync.py): it is
    not a source loop; its instructions are counted once (one poll, the minimum) and reported per
    poll (``per_poll``: each further poll costs that much again)."""
    args = args or {}
    trips: dict[str, int] = {}
    if not loops:
        return StepCounts({}, 0, 0, 0, 0, {}, {}, True)

    def contains(outer, inner):
        return outer[0] <= inner[0] and inner[1] <= outer[1] and outer != inner

    def is_spin(lp):
        body = lines[lp[0]:lp[1] + 1]
        loads = [x for x in body if _GLOBAL_LOAD.search(x)]
        atomics = [x for x in body if _ATOMIC.search(x)]
        return len(body) <= 40 and bool(loads or atomics) and all(".STRONG." in x for x in loads)

    outermost = [lp for lp in loops if not any(contains(o, lp) for o in loops)]
    with_barrier = [lp for lp in outermost if any(_BARRIER.search(lines[i]) for i in range(lp[0], lp[1] + 1))]
    step = max(with_barrier or outermost, key=lambda lp: lp[1] - lp[0])
    spins = [lp for lp in loops if contains(step, lp) and is_spin(lp)]
    nested = sorted({lp for lp in loops if contains(step, lp) and not is_spin(lp)})

    def children(parent):  # the loops directly inside parent, in program order
        inside = [lp for lp in nested if contains(parent, lp)]
        return [lp for lp in inside if not any(contains(o, lp) for o in inside)]

    def forest(parent):
        return [forest(lp) for lp in children(parent)]

    weight_of: dict[tuple[int, int], int] = {}
    matched = True
    if nested:
        exp = match_loops(forest(step), source, args) if source is not None else None
        if exp is None:
            matched = False
        else:
            def assign(sass_loops, pairs):
                for lp, (src, sub) in zip(sass_loops, pairs):
                    n = src.trip(args)
                    if n is None:
                        raise ValueError(f"the trip count of the loop {src.label} is not known from the launch")
                    weight_of[lp] = n
                    trips[src.label] = n
                    assign(children(lp), sub)

            assign(children(step), exp)

    def weight(i: int) -> int:
        return math.prod(weight_of.get(lp, 1) for lp in nested if lp[0] <= i <= lp[1])

    loads: dict[str, int] = {}
    barriers = mma = 0
    for i in range(step[0], step[1] + 1):
        line, w = lines[i], weight(i)
        m = _GLOBAL_LOAD.search(line)
        if m:
            width = _load_width(m.group(2))
            loads[width] = loads.get(width, 0) + w
        elif _TMA.search(line):
            loads["tma"] = loads.get("tma", 0) + w
        if _BARRIER.search(line):
            barriers += w
        if _MMA.search(line):
            mma += w
    per_poll: dict[str, int] = {}
    for lp in spins:
        body = lines[lp[0]:lp[1] + 1]
        per_poll["loads"] = per_poll.get("loads", 0) + sum(1 for x in body if _GLOBAL_LOAD.search(x))
        per_poll["barriers"] = per_poll.get("barriers", 0) + sum(1 for x in body if _BARRIER.search(x))
    ordered = dict(sorted(loads.items(), key=lambda kv: (kv[0] == "tma", int(kv[0]) if kv[0].isdigit() else 0)))
    return StepCounts(ordered, barriers, mma, len(nested), len(spins), per_poll, trips, matched)


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

# The step loop of a scan kernel is the source loop over [T_BEGIN, T_END) (kernels/_group_sync.py's
# launch protocol); the trip counts of the loops inside it follow from their bounds
# (SourceLoop.trip). Other kernels: their outermost loop is the "step".
def _step_source(ttgir: str) -> list[SourceLoop] | None:
    """The scf.for loops inside the kernel's step loop; None when the step loop is not in the source
    (a kernel with no scan protocol: nested loops then count once per step, flagged unmatched)."""
    def find(forest):
        for lp in forest:
            if (lp.lower, lp.upper) == ("T_BEGIN", "T_END"):
                return lp
            found = find(lp.children)
            if found:
                return found
        return None

    roots = source_loops(ttgir)
    step = find(roots)
    if step is not None:
        return step.children
    return roots[0].children if len(roots) == 1 else None


def kernel_loads(lines: list[str]) -> dict[str, int]:
    """Global loads (``LDG``, ``LDGSTS``) anywhere in the kernel's SASS, by access width in bits."""
    out: dict[str, int] = {}
    for line in lines:
        m = _GLOBAL_LOAD.search(line + " ")
        if m:
            w = _load_width(m.group(2))
            out[w] = out.get(w, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def _short_name(fn_name: str) -> str:
    return fn_name.strip("_").removesuffix("_kernel")


def analyse(preset: str = "cifar", dtype: str = "bfloat16", *, batch=None, size=None, hidden=None,
            others: bool = False, progress=None) -> list[KernelReport]:
    """Compile every scan kernel the launchers use at the preset's shapes (and with ``others`` the
    kernels of a masked conv, the cross-entropy loss and the DMoL loss: :func:`_record_others`); one
    report per specialisation."""
    import torch

    cfg = dict(PRESETS[preset])
    for k, v in (("batch", batch), ("size", size), ("hidden", hidden)):
        if v is not None:
            cfg[k] = v
    torch_dtype = getattr(torch, dtype)
    launches = _record_scans(cfg["batch"], cfg["size"], cfg["hidden"], torch_dtype)
    if others:
        launches += _record_others(cfg["batch"], cfg["size"], cfg["hidden"], torch_dtype)
    return report_launches(launches, progress)


def report_launches(launches: list[tuple[str, _Launch]], progress=None) -> list[KernelReport]:
    """Compile recorded (scan, launch) pairs for sm_90 and read each back: one report per specialisation
    (a repeated one counts in ``launches``)."""
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
        lines, loops = _sass(kernel.asm["cubin"])
        counts = step_loop_counts(lines, loops, _step_source(kernel.asm["ttgir"]), {**ints, **constexprs})
        reports[key] = KernelReport(
            name=_short_name(launch.fn.__name__) + ("_input_grad" if constexprs.get("TRANSPOSED") else ""),
            scan=scan, ctas=ctas, launches=1,
            num_warps=kernel.metadata.num_warps, **_ptxas_numbers(log), shared_bytes=kernel.metadata.shared,
            mma=_mma_kind(lines), mma_replication=_mma_replication(kernel.asm["ttgir"]),
            loop_loads_by_width=counts.loads, barriers_per_step=counts.barriers, mma_per_step=counts.mma,
            inner_loops=counts.inner_loops, spin_loops=counts.spin_loops, per_poll=counts.per_poll,
            inner_trips=counts.trips, trips_matched=counts.matched, sass_instructions=len(lines),
            fits_sm90_shared=kernel.metadata.shared <= SM90_SHARED_BYTES,
            grid_sync=bool(constexprs.get("GRID_SYNC", False)), constexprs=constexprs,
            kernel_loads_by_width=kernel_loads(lines),
        )
    return list(reports.values())


def format_table(reports: list[KernelReport]) -> str:
    head = ["kernel", "ctas", "warps", "regs", "spill B", "smem B", "mma", "mma x",
            "step-loop global loads (bits: n)", "all global loads", "barriers/step", "mma/step", "inner trips", "poll (loads, bars)",
            "group sync"]
    rows = [head, ["---"] * len(head)]
    for r in reports:
        loads = ", ".join(f"{w}: {n}" for w, n in r.loop_loads_by_width.items()) or "-"
        trips = ", ".join(f"{k} {v}" for k, v in r.inner_trips.items()) or "-"
        if not r.trips_matched:
            trips += " (UNMATCHED: nested loops counted once)"
        poll = f"{r.per_poll.get('loads', 0)}, {r.per_poll.get('barriers', 0)}" if r.spin_loops else "-"
        smem = f"{r.shared_bytes:,}" + ("" if r.fits_sm90_shared else " (> 232,448)")
        every = ", ".join(f"{w}: {n}" for w, n in r.kernel_loads_by_width.items()) or "-"
        rows.append([r.name, str(r.ctas), str(r.num_warps), str(r.registers), str(r.spill_bytes), smem, r.mma,
                     f"{r.mma_replication:g}", loads, every, str(r.barriers_per_step), str(r.mma_per_step), trips, poll,
                     "yes" if r.grid_sync else "-"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.static", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="cifar")
    p.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    p.add_argument("--batch", type=int, help="override the preset")
    p.add_argument("--size", type=int, help="override the preset (H = W)")
    p.add_argument("--hidden", type=int, help="override the preset")
    p.add_argument("--others", action="store_true",
                   help="also the kernels of the Diagonal BiLSTM's input-to-state masked conv, the cross-entropy "
                        "loss and the DMoL loss (RGB, K=10, 256 levels)")
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
