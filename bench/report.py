"""The readable table and the JSON file of a benchmark run.

JSON schema (``SCHEMA``): {"schema", "machine": machine_header, "ceilings", "config",
"notes": [...], "runs": [run, ...]} where a run is {"size", "ops": [op, ...], "model": op | None}
and an op is {"key", "stem", "label", "count", "cost": {"fwd"|"fwd_bwd": {"flops", "dense_flops",
"bytes", "intensity"}}, "results": {backend: result}} with each result as returned by
:func:`bench.backends.run_backend` (plus "speedup_vs_eager" per timed pass).
"""

from __future__ import annotations

import json
import math
import os

from bench.backends import MODES

SCHEMA = "fastpixel-bench/1"


def cost_dict(case) -> dict:
    out = {}
    for mode in MODES:
        c = case.cost[mode]
        out[mode] = {"flops": c.flops, "dense_flops": c.dense_flops, "bytes": c.bytes, "intensity": c.intensity}
    return out


def case_record(case, results: dict) -> dict:
    return {
        "key": case.key, "stem": case.stem, "label": case.label, "count": case.count,
        "images": case.images or None, "cost": cost_dict(case), "results": results,
    }


def _clean(obj):
    """JSON has no inf/nan: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str, doc: dict) -> None:
    """Write atomically (a partial run still leaves a readable file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_clean(doc), f, indent=1, allow_nan=False)
    os.replace(tmp, path)


# -- the table ---------------------------------------------------------------------------------


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _status_text(res: dict) -> str:
    status = res["status"]
    if status == "gated-only":
        return "parity pass; not timed (interpreter)"
    if status in ("fail", "unavailable"):
        return f"{'PARITY FAIL' if status == 'fail' else 'unavailable'}: {res.get('reason') or ''}"[:90]
    return ""


def _timed_cells(p: dict) -> str:
    ms = 1e3
    cells = f"{p['median_s'] * ms:9.3f} [{p['p20_s'] * ms:.3f}, {p['p80_s'] * ms:.3f}]"
    cells = f"{cells:<30}{_si(p['flops_per_s'], 'FLOP/s'):>14}{_si(p['bytes_per_s'], 'B/s'):>12}"
    cells += f"{100 * p['roofline_fraction']:8.2f}%" + ("*" if p["roofline_fraction"] > 1 else " ")
    if "speedup_vs_eager" in p:
        cells += f"{p['speedup_vs_eager']:7.2f}x"
    if "images_per_s" in p:
        cells += f"{p['images_per_s']:10.1f} img/s"
    return cells


def format_case(record: dict) -> list[str]:
    """Rows of one op (or model): cost per pass, then one row per backend and pass."""
    lines = []
    title = f"{record['stem']} {record['label']}  (x{record['count']} per step)" if record["stem"] != "model" else (
        f"model {record['label']}: training step -log_prob(x).mean(), {record['images']} images"
    )
    lines.append(title)
    for mode in MODES:
        c = record["cost"][mode]
        lines.append(
            f"  {mode:<8} useful {_si(c['flops'], 'FLOP')}, dense {_si(c['dense_flops'], 'FLOP')}, "
            f"min {_si(c['bytes'], 'B')}, intensity {c['intensity']:.2f} FLOP/B"
        )
        for backend, res in record["results"].items():
            if mode in res:
                lines.append(f"    {backend:<8} {_timed_cells(res[mode])}")
            elif mode == MODES[0]:
                lines.append(f"    {backend:<8} {_status_text(res)}")
    return lines


def format_header(doc: dict) -> list[str]:
    m, c, cfg = doc["machine"], doc["ceilings"], doc["config"]
    where = m["gpu_name"] or f"{m['cpu_name']} (threads: {m['cpu_threads']}, load average {m.get('load_average') or 0:.1f})"
    commit = (m["git_commit"] or "unknown")[:12] + (" (local changes)" if m["git_dirty"] else "")
    lines = [
        f"fastpixel bench.compare  {m['date']}  {m['device']}: {where}",
        f"torch {m['torch']}, triton {m['triton']}, commit {commit}",
        f"ceilings ({c['dtype']}): copy {_si(c['bytes_per_s'], 'B/s')} ({_si(c['copy_bytes'], 'B')} moved), "
        f"matmul {_si(c['flops_per_s'], 'FLOP/s')} (n={c['matmul_n']})",
        f"model {cfg['model']}, preset {cfg['preset']}: batch {cfg['batch']}, {cfg['size']}x{cfg['size']}x"
        f"{cfg['channels']}, levels {cfg['levels']}, " + (
            f"nr_filters {cfg['hidden']}, nr_resnet {cfg['layers']}, " if cfg["model"] == "pixelcnn_pp" else
            f"h={cfg['hidden']}, {cfg['layers']} layers, output_hidden {cfg['output_hidden']}, ")
        + f"head {cfg.get('head', 'softmax')}, {cfg['dtype']}",
    ]
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    lines.append(
        "columns: median ms [p20, p80] | achieved useful FLOP/s | achieved min-bytes/s | % of roofline "
        "| speed-up over eager | images/s"
    )
    lines.append("(* above 100% of the roofline: the working set fits in cache, whose bandwidth exceeds the copy "
                 "ceiling's, measured on a copy far larger than the caches)")
    return lines


def format_run(run: dict) -> list[str]:
    lines = [f"-- size {run['size']}x{run['size']} --"]
    for record in run["ops"]:
        lines += format_case(record)
    if run.get("model"):
        lines += format_case(run["model"])
    return lines


# -- schema check ------------------------------------------------------------------------------

MACHINE_KEYS = ("device", "cpu_name", "gpu_name", "dtype", "torch", "triton", "git_commit", "git_dirty", "date")
CEILING_KEYS = ("dtype", "copy_bytes", "bytes_per_s", "matmul_n", "flops_per_s")
TIMED_KEYS = ("median_s", "p20_s", "p80_s", "flops_per_s", "bytes_per_s", "roofline_fraction")
STATUSES = ("reference", "pass", "fail", "unavailable", "gated-only")


def _need(where: str, obj: dict, keys) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing {missing}")


def _positive(where: str, x) -> None:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not x > 0:
        raise ValueError(f"{where}: expected a positive number, got {x!r}")


def check_schema(doc: dict) -> None:
    """Raise ValueError naming the first field of ``doc`` that breaks the schema (see module doc)."""
    _need("document", doc, ("schema", "machine", "ceilings", "config", "notes", "runs"))
    if doc["schema"] != SCHEMA:
        raise ValueError(f"schema: expected {SCHEMA!r}, got {doc['schema']!r}")
    _need("machine", doc["machine"], MACHINE_KEYS)
    _need("ceilings", doc["ceilings"], CEILING_KEYS)
    for k in ("bytes_per_s", "flops_per_s"):
        _positive(f"ceilings.{k}", doc["ceilings"][k])
    for i, run in enumerate(doc["runs"]):
        _need(f"runs[{i}]", run, ("size", "ops", "model"))
        records = list(run["ops"]) + ([run["model"]] if run["model"] else [])
        for record in records:
            where = f"runs[{i}].{record.get('key')}"
            _need(where, record, ("key", "stem", "label", "count", "cost", "results"))
            for mode in MODES:
                _need(f"{where}.cost.{mode}", record["cost"][mode], ("flops", "dense_flops", "bytes", "intensity"))
                for k in ("flops", "dense_flops", "bytes"):
                    _positive(f"{where}.cost.{mode}.{k}", record["cost"][mode][k])
            for backend, res in record["results"].items():
                _need(f"{where}.{backend}", res, ("status", "reason", "parity"))
                if res["status"] not in STATUSES:
                    raise ValueError(f"{where}.{backend}.status: {res['status']!r} not in {STATUSES}")
                timed = [m for m in MODES if m in res]
                if timed and res["status"] not in ("reference", "pass"):
                    raise ValueError(f"{where}.{backend}: status {res['status']!r} but timings present")
                for mode in timed:
                    _need(f"{where}.{backend}.{mode}", res[mode], TIMED_KEYS)
                    for k in TIMED_KEYS:
                        _positive(f"{where}.{backend}.{mode}.{k}", res[mode][k])
