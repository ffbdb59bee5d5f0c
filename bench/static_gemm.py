"""``python -m bench.static_gemm``: the MMA instructions of the masked-conv kernels on sm_90, no GPU.

    python -m bench.static_gemm                         # CIFAR shapes, bf16 (what autocast feeds them)
    python -m bench.static_gemm --dtype float32 --json gemm.json

The scans' twin is ``bench.static`` (from the scans' branch), whose machinery this reuses: the
masked-conv host launchers run on ``meta`` tensors with every Triton launch recorded instead of
run, each launch is compiled for sm_90 as the JIT would specialise it, and the SASS is read back
with triton's bundled toolchain. One difference: the conv GEMMs are autotuned, and which config
wins is only known on a GPU, so *every* autotune config of a launch is compiled and reported.

Convs: the distinct masked convs of the paper's CIFAR-10 models at B=16, 32x32 images, h=128
(``bench.cases.op_cases`` of the PixelCNN and Row LSTM models), forward, grad input (the
transposed GEMM), grad weight and grad bias. The cross-entropy kernels have no ``tl.dot`` (they
are elementwise + row reductions), so they are not listed: they use no MMA instruction by design.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass

os.environ.pop("TRITON_INTERPRET", None)  # compile real JIT functions, never the interpreter's
# a fresh cache, removed at exit: a cached kernel skips ptxas, whose log gives registers and spills
if "TRITON_CACHE_DIR" not in os.environ:
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastpixel-static-gemm-")
    atexit.register(shutil.rmtree, os.environ["TRITON_CACHE_DIR"], ignore_errors=True)

DTYPES = ("bfloat16", "float16", "float32", "float64")


@dataclass
class GemmReport:
    conv: str  # the conv's label, e.g. "3x3 B 128->128"
    kernel: str  # forward / input_grad / weight_grad / bias_grad
    config: str  # block shape, warps, stages
    mma: str  # wgmma / mma.sync / fma
    registers: int
    spill_bytes: int
    shared_bytes: int


@contextlib.contextmanager
def _expand_autotune():
    """Within the block an autotuned launch becomes one launch per config (recorded by the capture)."""
    from triton.runtime.autotuner import Autotuner

    real_run = Autotuner.run

    def every_config(self, *args, grid, warmup, **kwargs):
        for config in self.configs:
            self.fn.run(*args, grid=grid, warmup=warmup, **{**kwargs, **config.all_kwargs()})

    Autotuner.run = every_config
    try:
        yield
    finally:
        Autotuner.run = real_run


def _conv_specs() -> dict:
    """label -> (MaskSpec, has bias) of every distinct masked conv of the CIFAR PixelCNN and Row LSTM models."""
    from fastpixel.layers import MaskedConv2d

    from bench.cases import _conv_label, build_model

    specs = {}
    for name in ("pixelcnn", "row_lstm"):
        model = build_model(name, channels=3, levels=256, hidden=128, layers=1, output_hidden=None)
        for module in model.modules():
            if isinstance(module, MaskedConv2d):
                specs.setdefault(_conv_label(module.spec), (module.spec, module.bias is not None))
    return specs


# One conv per kind of GEMM (tiny K, 3x3 body, 1x1 wide output, the Row LSTM's 1x3): every config
# of each is compiled, ~20 s apiece on a 2-core machine; --convs all adds the other 1x1 convs.
DEFAULT_CONVS = ("7x7 A 3->256", "3x3 B 128->128", "1x1 B 256->768", "1x3 B 256->512")


def analyse(dtype_name: str = "bfloat16", progress=None, batch: int = 16, size: int = 32,
            convs=DEFAULT_CONVS) -> list[GemmReport]:
    import torch

    from bench.static import _capture_launches, _compile, _mma_kind, _ptxas_numbers, _sass
    from fastpixel.kernels import masked_conv as mc

    dtype = getattr(torch, dtype_name)
    meta = lambda *shape: torch.empty(*shape, device="meta", dtype=dtype)  # noqa: E731
    reports = []
    real_sms = mc.num_sms
    mc.num_sms = lambda device: 132  # an H200's SMs: the grad-weight pixel split a GPU would use
    try:
        for label, (spec, has_bias) in _conv_specs().items():
            if convs != "all" and label not in convs:
                continue
            x, weight = meta(batch, spec.in_channels, size, size), meta(spec.out_channels, spec.in_channels, *spec.kernel_size)
            bias = meta(spec.out_channels) if has_bias else None
            dy = meta(batch, spec.out_channels, size, size)
            limit, center, open_taps = mc._mask_args(spec)
            calls = {
                "forward": lambda: mc._gemm(x, weight, bias, limit, tuple(center), open_taps, transposed=False),
                "input_grad": lambda: mc._gemm(dy, weight, None, limit, tuple(center), open_taps, transposed=True),
                "weight_grad": lambda: mc._weight_grad(x, dy, tuple(weight.shape), dtype, limit, tuple(center), open_taps),
                "bias_grad": lambda: mc._bias_grad(dy, dtype),
            }  # fmt: skip
            for kernel_name, call in calls.items():
                if kernel_name == "bias_grad" and not has_bias:
                    continue
                with _capture_launches() as launches, _expand_autotune():
                    call()
                for launch in launches:
                    kernel, log, constexprs, *_ = _compile(launch)
                    blocks = "x".join(str(constexprs[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if k in constexprs)
                    config = f"{blocks or '-'} w{kernel.metadata.num_warps} s{kernel.metadata.num_stages}"
                    numbers = _ptxas_numbers(log)
                    reports.append(GemmReport(
                        label, kernel_name, config, _mma_kind(_sass(kernel.asm["cubin"])[0]),
                        numbers["registers"], numbers["spill_bytes"], kernel.metadata.shared,
                    ))  # fmt: skip
                    if progress:
                        progress(f"{label} {kernel_name} {config}: {reports[-1].mma}")
    finally:
        mc.num_sms = real_sms
    return reports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.static_gemm", description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    p.add_argument("--convs", default=",".join(DEFAULT_CONVS),
                   help=f"comma-separated conv labels, or 'all' (default: {', '.join(DEFAULT_CONVS)})")
    p.add_argument("--json", help="write the reports here")
    args = p.parse_args(argv)
    convs = "all" if args.convs == "all" else tuple(c.strip() for c in args.convs.split(","))
    import triton

    reports = analyse(args.dtype, progress=lambda m: print(m, file=sys.stderr, flush=True), convs=convs)
    print(f"sm_90 compile (triton {triton.__version__}): masked-conv kernels at CIFAR shapes "
          f"(B=16, 32x32, h=128), {args.dtype}, every autotune config")
    print("| conv | kernel | config (BMxBNxBK, warps, stages) | mma | regs | spill B | smem B |")
    print("|---|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r.conv} | {r.kernel} | {r.config} | {r.mma} | {r.registers} | {r.spill_bytes} | {r.shared_bytes} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(dtype=args.dtype, target="cuda:90", triton=triton.__version__,
                           kernels=[asdict(r) for r in reports]), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
