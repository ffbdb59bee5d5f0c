"""``python -m bench.compare``: how fast is each backend, and how far from this machine's limit.

    python -m bench.compare --model diagonal_bilstm            # the preset for this machine
    python -m bench.compare --model row_lstm --json out.json --plot out.png
    python -m bench.compare --model pixelcnn --op masked_conv --sizes 8,16,32
    python -m bench.compare --model pixelcnn_pp                # PixelCNN++: the DMoL loss and the model step
    python -m bench.compare --model row_lstm --head dmol       # a paper model with the DMoL head

For the chosen model it measures the machine's ceilings (copy bandwidth, matmul FLOP/s), then,
for every distinct op call of the model (masked convs, the scan, the loss) and for the model's
whole training step (PixelCNN++: the DMoL loss is its only op case, its convolutions being
PyTorch's nn.Conv2d; they count in the step's cost), gates each backend against the reference (outputs and gradients; see
bench/parity.py) and times the forward and forward+backward passes of those that pass. Without
CUDA, triton runs only under Triton's interpreter: gated on a tiny shape, never timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings

PRESETS: dict[str, dict] = {
    # The paper's CIFAR-10 models (h = 128; 12 LSTM layers, 15 PixelCNN layers), batch 16 (our choice);
    # PixelCNN++ as published (nr_filters = 160, nr_resnet = 5).
    "cifar": dict(batch=16, size=32, hidden={"pixelcnn": 128, "row_lstm": 128, "diagonal_bilstm": 128, "pixelcnn_pp": 160},
                  layers={"pixelcnn": 15, "row_lstm": 12, "diagonal_bilstm": 12, "pixelcnn_pp": 5},
                  output_hidden=None, channels=3, levels=256, sizes=(16, 32, 64), copy_mib=1024, matmul_n=8192),
    # Finishes in about two minutes on a 2-core CPU (see docs/benchmarks.md).
    "cpu": dict(batch=2, size=12, hidden=16, layers=2, output_hidden=None, channels=3, levels=256,
                sizes=(8, 12, 16), copy_mib=64, matmul_n=1024),
    # Seconds: the tests, and the shape of triton's parity gate under the interpreter.
    "tiny": dict(batch=2, size=5, hidden=4, layers=1, output_hidden=None, channels=3, levels=16,
                 sizes=(4, 5), copy_mib=8, matmul_n=256),
}
MODEL_NAMES = ("pixelcnn", "row_lstm", "diagonal_bilstm", "pixelcnn_pp")
STEMS = ("masked_conv", "row_lstm", "diagonal_bilstm", "cross_entropy", "dmol")
HEADS = ("softmax", "dmol")
DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclasses.dataclass
class Config:
    model: str
    preset: str
    batch: int
    size: int
    hidden: int
    layers: int
    output_hidden: int | None
    channels: int
    levels: int
    dtype: str
    device: str
    head: str = "softmax"


def model_stems(model: str, head: str) -> tuple[str, ...]:
    """The op stems bench/cases.py finds in ``model`` with ``head`` (PixelCNN++: the DMoL loss only)."""
    loss = "dmol" if head == "dmol" or model == "pixelcnn_pp" else "cross_entropy"
    if model == "pixelcnn_pp":
        return (loss,)
    return ("masked_conv",) + ((model,) if model in ("row_lstm", "diagonal_bilstm") else ()) + (loss,)


class _Parser(argparse.ArgumentParser):
    """argparse with every error on one line (``python -m bench.compare: error: ...``), exit 2."""

    def error(self, message: str):  # noqa: D102  (argparse's API)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_in(low: int, high: int | None = None):
    """An argparse type: an int in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an int {f'>= {low}' if high is None else f'in [{low}, {high}]'}"
                                             f", got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def _sizes(text: str) -> list[int]:
    """``--sizes 8,16,32``: image sizes, each an int >= 1."""
    parts = [p.strip() for p in text.split(",")]
    parse = _int_in(1, 4096)
    try:
        return [parse(p) for p in parts]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"comma-separated image sizes, each an int in [1, 4096]: {err}") from None


def _output(flag: str):
    """An argparse type for --json / --plot: the path is checked now (not a folder, its folder writable),
    so a run never discovers at its end that it cannot write its results."""

    def parse(text: str) -> str:
        from fastpixel.output_paths import check_output_file

        try:
            check_output_file(text, overwrite=True, label=text)
        except OSError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    parse.__name__ = "path"
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODEL_NAMES, default="diagonal_bilstm")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: cifar with CUDA, cpu without")
    for name, low, high in (("batch", 1, None), ("size", 1, 4096), ("hidden", 1, None), ("layers", 1, None),
                            ("output-hidden", 1, None), ("levels", 2, 256)):
        p.add_argument(f"--{name}", type=_int_in(low, high), help="override the preset")
    p.add_argument("--channels", type=int, choices=(1, 3), help="override the preset")
    p.add_argument("--head", choices=HEADS, help="the likelihood head of pixelcnn / row_lstm / diagonal_bilstm "
                   "(default softmax; dmol: the discretized mixture of logistics, K = 10); pixelcnn_pp: dmol only")
    p.add_argument("--op", choices=STEMS, help="benchmark one op over a sweep of image sizes (no model step)")
    p.add_argument("--sizes", type=_sizes, help="comma-separated image sizes for --op (default: the preset's)")
    p.add_argument("--backends", default=None,
                   help="comma-separated subset of eager,compile,compile+triton,triton,torch (default: all with "
                        "CUDA; eager,triton,torch on a CPU, where torch.compile's first run spends minutes compiling "
                        "C++: add compile / compile+triton explicitly)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    p.add_argument("--dtype", choices=DTYPES, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--threads", type=_int_in(1, 1024), default=1,
                   help="CPU threads (default 1: on a shared machine, multithreaded small ops mostly wait for a "
                   "descheduled thread; the ceilings are measured with the same count)")
    p.add_argument("--budget", type=_positive_seconds, default=0.5,
                   help="CPU timer: seconds of timed calls per pass (min 3 calls)")
    p.add_argument("--json", metavar="PATH", type=_output("--json"),
                   help="write every figure, with a machine header, to PATH")
    p.add_argument("--plot", metavar="PATH", type=_output("--plot"), help="write a roofline PNG to PATH")
    p.add_argument("--seed", type=_int_in(0), default=0)
    args = p.parse_args(argv)
    if args.model == "pixelcnn_pp" and args.head == "softmax":
        p.error("--head softmax: pixelcnn_pp has the DMoL head only")
    if args.model == "pixelcnn_pp" and args.output_hidden is not None:
        p.error("--output-hidden does not apply to pixelcnn_pp (its output is one 1x1 conv)")
    if args.op is not None and args.op not in model_stems(args.model, args.head or "softmax"):
        p.error(f"--op {args.op}: model {args.model} has no such op call; its ops: "
                f"{','.join(model_stems(args.model, args.head or 'softmax'))}")
    if args.sizes is not None and args.op is None:
        p.error("--sizes applies to --op only (a model step runs at --size)")
    if args.backends is not None:
        from bench.backends import BACKENDS

        chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
        if not chosen or set(chosen) - set(BACKENDS):
            p.error(f"--backends: choose from {','.join(BACKENDS)}, got {args.backends!r}")
    return args


def resolve_config(args: argparse.Namespace, cuda: bool) -> tuple[Config, dict]:
    """The preset with the command line's overrides applied; returns (config, preset)."""
    device = args.device or ("cuda" if cuda else "cpu")
    preset_name = args.preset or ("cifar" if device == "cuda" else "cpu")
    preset = PRESETS[preset_name]
    per_model = lambda key: preset[key][args.model] if isinstance(preset[key], dict) else preset[key]  # noqa: E731
    pick = lambda arg, key: arg if arg is not None else per_model(key)  # noqa: E731
    head = "dmol" if args.model == "pixelcnn_pp" else (args.head or "softmax")
    cfg = Config(
        model=args.model, preset=preset_name, batch=pick(args.batch, "batch"), size=pick(args.size, "size"),
        hidden=pick(args.hidden, "hidden"), layers=pick(args.layers, "layers"),
        output_hidden=pick(args.output_hidden, "output_hidden"), channels=pick(args.channels, "channels"),
        levels=pick(args.levels, "levels"), dtype=args.dtype or ("bfloat16" if device == "cuda" else "float32"),
        device=device, head=head,
    )
    if cfg.output_hidden is None and cfg.model != "pixelcnn_pp":
        cfg.output_hidden = 2 * cfg.hidden
    return cfg, preset


def _tiny_twins(cfg: Config, seed: int):
    """The model's op cases and model case on the tiny preset's shape: what triton's interpreter gate runs."""
    import torch

    from bench.cases import build_model, model_case, op_cases, step_cost

    t = PRESETS["tiny"]
    model = build_model(cfg.model, channels=cfg.channels, levels=t["levels"], hidden=t["hidden"], layers=t["layers"],
                        output_hidden=None, seed=seed, head=cfg.head)
    ops = op_cases(model, t["batch"], t["size"], torch.float32, "cpu", seed=seed)
    cost = step_cost(model, ops, t["batch"], t["size"], torch.float32)
    return {c.key: c for c in ops}, model_case(model, t["batch"], t["size"], torch.float32, "cpu", cost, seed)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch  # after argparse: --help stays fast

    cuda = torch.cuda.is_available()
    cfg, preset = resolve_config(args, cuda)
    if cfg.device == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported
    chosen = args.backends or ("eager,compile,compile+triton,triton,torch" if cfg.device == "cuda" else "eager,triton,torch")
    backends = [b.strip() for b in chosen.split(",") if b.strip()]
    # Dynamo traces MaskSpec.mask's lru_cache-wrapped builder (building the mask becomes part of the
    # compiled graph) and warns once per case. Known (docs/benchmarks.md): keep the table readable.
    warnings.filterwarnings("ignore", message=".*functools.lru_cache.*")

    from bench import report
    from bench.backends import BACKENDS, add_speedups, run_backend, triton_timing_note
    from bench.cases import build_model, model_case, op_cases, step_cost
    from bench.machine import machine_header, measure_ceilings

    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        raise SystemExit(f"--backends: choose from {BACKENDS}, got {chosen!r}")
    device, dtype = torch.device(cfg.device), getattr(torch, cfg.dtype)
    if device.type == "cuda" and not cuda:
        raise SystemExit("python -m bench.compare: error: --device cuda: no CUDA device here (leave --device out, or "
                         "--device cpu)")
    sizes = [cfg.size]
    if args.op:
        sizes = args.sizes or list(preset["sizes"])

    notes = []
    if args.backends is None and device.type == "cpu":
        notes.append("compile: not in the CPU default (its first run compiles C++ for minutes here); "
                     "--backends eager,compile,triton,torch adds it (and compile+triton: the compiled graph calling the kernels)")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        notes.append(f"CPU: {args.threads} thread(s) of {os.cpu_count()} cores; ceilings and ops alike")
    if "triton" in backends and triton_timing_note(device):
        notes.append(f"triton: {triton_timing_note(device)}")
    if cfg.model == "pixelcnn_pp":
        notes.append("pixelcnn_pp: its convolutions are PyTorch's nn.Conv2d / nn.ConvTranspose2d (the same on every "
                     "backend): no masked_conv cases; the DMoL loss is its one op case, the convolutions count in the "
                     "model step's cost; built with dropout 0 (the parity gate needs one deterministic step)")
    if device.type == "cpu":
        notes.append("CPU timings: wall clock, warm-up + median of >= 3 calls; a shared or loaded machine is slower")
    doc = {
        "schema": report.SCHEMA,
        "machine": machine_header(device, dtype),
        "ceilings": None,
        "config": dataclasses.asdict(cfg) | {"backends": backends, "op": args.op, "sizes": sizes},
        "notes": notes,
        "runs": [],
    }
    print(f"measuring ceilings ({cfg.dtype} copy of {preset['copy_mib']} MiB, {preset['matmul_n']}^2 matmul) ...",
          flush=True)
    doc["ceilings"] = measure_ceilings(device, dtype, copy_mib=preset["copy_mib"], matmul_n=preset["matmul_n"])
    print("\n".join(report.format_header(doc)), flush=True)

    model = build_model(cfg.model, channels=cfg.channels, levels=cfg.levels, hidden=cfg.hidden, layers=cfg.layers,
                        output_hidden=cfg.output_hidden, seed=args.seed, head=cfg.head)
    need_twins = any("triton" in b for b in backends) and triton_timing_note(device) is not None
    tiny_ops, tiny_model = _tiny_twins(cfg, args.seed) if need_twins else ({}, None)

    # Build every case first; then run eager and triton on all of them, and torch.compile (the
    # slowest to start) last, saving the JSON after each case: a run cut short keeps what it measured.
    work = []  # (record, case, twin)
    for size in sizes:
        run = {"size": size, "ops": [], "model": None}
        doc["runs"].append(run)
        cases = op_cases(model, cfg.batch, size, dtype, device, seed=args.seed)
        cost = step_cost(model, cases, cfg.batch, size, dtype)
        for case in cases:
            if not args.op or case.stem == args.op:
                run["ops"].append(report.case_record(case, {}))
                work.append((run["ops"][-1], case, tiny_ops.get(case.key)))
        if not args.op:
            case = model_case(model, cfg.batch, size, dtype, device, cost, seed=args.seed)
            run["model"] = report.case_record(case, {})
            work.append((run["model"], case, tiny_model))
    for phase in (["eager", "triton", "torch"], ["compile", "compile+triton"]):
        if phase[0] == "compile" and set(phase) & set(backends):
            print(f"torch.compile: {len(work)} cases; the first run on a machine compiles for minutes on a CPU "
                  "(inductor caches the result for later runs)", file=sys.stderr, flush=True)
        for record, case, twin in work:
            for b in [b for b in phase if b in backends]:
                print(f"  [{b}] {case.key} ...", file=sys.stderr, flush=True)
                record["results"][b] = run_backend(b, case, device=device, dtype=dtype, ceilings=doc["ceilings"],
                                                   gate_case=twin, budget_s=args.budget)
                record["results"] = {k: record["results"][k] for k in BACKENDS if k in record["results"]}
                add_speedups(record["results"])
            if args.json:
                report.write_json(args.json, doc)
        if args.plot and any(b in backends for b in phase):
            from bench.plot import roofline_png

            roofline_png(doc, args.plot)
    for run in doc["runs"]:
        print("\n".join(report.format_run(run)), flush=True)
    if args.json:
        report.write_json(args.json, doc)
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {args.plot}")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
