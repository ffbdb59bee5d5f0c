"""What the benchmark ran on: a header for every result file, and the machine's measured ceilings.

Ceilings are measured, not looked up: a large device-to-device copy gives the bandwidth (bytes read
plus bytes written per second), a large square matmul the compute rate (2 n^3 FLOPs per product),
both in the dtype the benchmark uses, each from its fastest call (a ceiling is what the machine
can do; a disturbed call says nothing about that).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys

import torch

from bench.timing import time_fn


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def machine_header(device: torch.device | str, dtype: torch.dtype) -> dict:
    """Device, CPU/GPU name, versions, git commit (and whether the tree had local changes), date."""
    device = torch.device(device)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "device": device.type,
        "cpu_name": _cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "triton_interpreter": os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
        "python": sys.version.split()[0],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def measure_ceilings(device: torch.device | str, dtype: torch.dtype, *, copy_mib: int, matmul_n: int) -> dict:
    """Bandwidth of a ``copy_mib`` MiB copy and FLOP/s of an n x n matmul, in ``dtype`` on ``device``."""
    device = torch.device(device)
    itemsize = torch.empty((), dtype=dtype).element_size()
    src = torch.ones(copy_mib * 2**20 // itemsize, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    copy = time_fn(lambda: dst.copy_(src), device, budget_s=1.0)
    copy_bytes = 2 * src.numel() * itemsize
    a = torch.randn(matmul_n, matmul_n, device=device).to(dtype)
    b = torch.randn(matmul_n, matmul_n, device=device).to(dtype)
    mm = time_fn(lambda: a @ b, device, budget_s=1.5)
    del src, dst, a, b
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "copy_bytes": copy_bytes,
        "copy_s": copy.best,
        "bytes_per_s": copy_bytes / copy.best,
        "matmul_n": matmul_n,
        "matmul_s": mm.best,
        "flops_per_s": 2 * matmul_n**3 / mm.best,
    }
