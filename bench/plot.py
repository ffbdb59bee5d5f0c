"""Roofline plot: achieved useful FLOP/s against arithmetic intensity, one point per op, backend, pass.

The roof is min(peak FLOP/s, bandwidth x intensity) from the measured ceilings; a point's height
under the roof at its intensity is how far that op is from the machine's limit. Filled markers are
forward+backward, hollow ones forward only.
"""

from __future__ import annotations

import os

from bench.backends import BACKENDS

MARKERS = {"eager": "o", "compile": "s", "compile+triton": "D", "triton": "^", "torch": "P"}
COLORS = {"eager": "tab:blue", "compile": "tab:orange", "compile+triton": "tab:red", "triton": "tab:green", "torch": "tab:purple"}


def roofline_png(doc: dict, path: str) -> int:
    """Write the roofline of every timed op of ``doc`` (a bench JSON document) to ``path``; returns
    the number of points placed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peak, bw = doc["ceilings"]["flops_per_s"], doc["ceilings"]["bytes_per_s"]
    fig, ax = plt.subplots(figsize=(9, 6))
    points, intensities = 0, []
    for run in doc["runs"]:
        for record in run["ops"]:
            for backend, res in record["results"].items():
                for mode, filled in (("fwd_bwd", True), ("fwd", False)):
                    if mode not in res:
                        continue
                    ai = record["cost"][mode]["intensity"]
                    y = res[mode]["flops_per_s"]
                    intensities.append(ai)
                    ax.scatter(
                        ai, y, marker=MARKERS.get(backend, "x"), s=40,
                        facecolors=COLORS.get(backend, "k") if filled else "none",
                        edgecolors=COLORS.get(backend, "k"),
                    )
                    if backend == "eager" and filled:
                        label = f"{record['stem']} {record['label']}"
                        if len(doc["runs"]) > 1:
                            label += f" @{run['size']}"
                        ax.annotate(label, (ai, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
                    points += 1
    lo = min(intensities + [peak / bw]) / 4
    hi = max(intensities + [peak / bw]) * 4
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(peak, bw * x) for x in xs], "k-", lw=1.5, label="roofline (measured copy / matmul)")
    for backend in BACKENDS:
        ax.scatter([], [], marker=MARKERS[backend], color=COLORS[backend], label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (useful FLOP / minimum byte)")
    ax.set_ylabel("achieved useful FLOP/s")
    m, cfg = doc["machine"], doc["config"]
    ax.set_title(
        f"{cfg['model']} ops, {m['gpu_name'] or m['cpu_name']}, {cfg['dtype']}\n"
        f"{m['date']}, commit {(m['git_commit'] or '?')[:10]}; filled: fwd+bwd, hollow: fwd",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, which="both", alpha=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return points
