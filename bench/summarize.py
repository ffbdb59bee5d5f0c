"""Markdown summary of bench JSON files: ``python -m bench.summarize results/*.json``.

Per file: the machine line, then per op and model, for every backend, its parity status and the
median time, achieved FLOP/s, fraction of the roofline and speed-up over eager of each pass.
"""

from __future__ import annotations

import json
import sys

from bench.backends import MODES


def _cell(res: dict, mode: str) -> str:
    if mode not in res:
        return res["status"] if res["status"] != "gated-only" else "parity pass, not timed"
    p = res[mode]
    cell = f"{p['median_s'] * 1e3:.3f} ms, {p['flops_per_s'] / 1e9:.3g} GFLOP/s, {100 * p['roofline_fraction']:.1f}%"
    if "speedup_vs_eager" in p:
        cell += f", {p['speedup_vs_eager']:.2f}x"
    if "images_per_s" in p:
        cell += f", {p['images_per_s']:.1f} img/s"
    return cell


def _width_and_depth(cfg: dict) -> str:
    """The model's width and depth in its own terms (PixelCNN++: nr_filters, nr_resnet)."""
    if cfg["model"] == "pixelcnn_pp":
        return f"nr_filters={cfg['hidden']}, nr_resnet={cfg['layers']}"
    return f"h={cfg['hidden']}, {cfg['layers']} layers"


def summarize(doc: dict) -> list[str]:
    m, c, cfg = doc["machine"], doc["ceilings"], doc["config"]
    lines = [
        f"### {cfg['model']} ({cfg['preset']}: batch {cfg['batch']}, {_width_and_depth(cfg)}, "
        f"{cfg['dtype']})",
        "",
        f"{m['date']}, {m['gpu_name'] or m['cpu_name']}, torch {m['torch']}, triton {m['triton']}, "
        f"commit {(m['git_commit'] or '?')[:12]}{' (local changes)' if m['git_dirty'] else ''}; ceilings: copy "
        f"{c['bytes_per_s'] / 1e9:.3g} GB/s, matmul {c['flops_per_s'] / 1e12:.3g} TFLOP/s",
        "",
    ]
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    lines += [
        "",
        "| size | op | backend | parity | fwd: median, useful FLOP/s, roofline, speed-up | fwd+bwd: same |",
        "|---|---|---|---|---|---|",
    ]
    for run in doc["runs"]:
        for record in run["ops"] + ([run["model"]] if run.get("model") else []):
            for backend, res in record["results"].items():
                parity = res["status"] + (f" ({res['reason'][:60]})" if res.get("reason") and res["status"] != "gated-only" else "")
                cells = " | ".join(_cell(res, mode) for mode in MODES)
                lines.append(f"| {run['size']} | {record['stem']} {record['label']} | {backend} | {parity} | {cells} |")
    return lines + [""]


def main(paths: list[str]) -> None:
    for path in paths:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"### {path}: unreadable ({e})\n")
            continue
        print("\n".join(summarize(doc)))


if __name__ == "__main__":
    main(sys.argv[1:])
