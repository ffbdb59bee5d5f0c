"""bench.compare end to end on the tiny preset: table, JSON schema, plot, --op sweep, presets."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from bench import compare
from bench.accounting import dmol_cost
from bench.cases import build_model, model_case, op_cases, step_cost
from bench.report import check_schema

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--preset", "tiny", "--model", "pixelcnn", "--backends", "eager,triton", "--budget", "0.02",
            "--json", str(out / "r.json"), "--plot", str(out / "r.png")]
    returned = compare.main(argv)
    return out, returned, json.loads((out / "r.json").read_text())


def test_json_has_a_machine_header_and_every_figure(tiny_run):
    _, returned, doc = tiny_run
    check_schema(doc)
    assert doc["runs"] == json.loads(json.dumps(returned["runs"]))
    m = doc["machine"]
    assert m["device"] == "cpu" and m["cpu_name"] and m["torch"] == torch.__version__ and m["date"]
    assert len(m["git_commit"] or "x" * 40) == 40
    run = doc["runs"][0]
    stems = {r["stem"] for r in run["ops"]}
    assert stems == {"masked_conv", "cross_entropy"}
    convs = {r["key"] for r in run["ops"] if r["stem"] == "masked_conv"}
    assert "masked_conv:input_conv" in convs and "masked_conv:blocks.*.conv" in convs
    for record in run["ops"] + [run["model"]]:
        eager = record["results"]["eager"]
        for mode in ("fwd", "fwd_bwd"):
            p = eager[mode]
            assert p["p20_s"] <= p["median_s"] <= p["p80_s"] and p["speedup_vs_eager"] == 1.0
            assert 0 < p["roofline_fraction"] and p["flops_per_s"] > 0 and p["bytes_per_s"] > 0
            assert record["cost"][mode]["flops"] <= record["cost"][mode]["dense_flops"]
    assert run["model"]["results"]["eager"]["fwd_bwd"]["images_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU rule: triton gated, never timed")
def test_triton_on_cpu_is_gated_but_never_timed(tiny_run):
    _, _, doc = tiny_run
    assert any("never timed" in n for n in doc["notes"])
    run = doc["runs"][0]
    for record in run["ops"] + [run["model"]]:
        res = record["results"]["triton"]
        assert res["status"] in ("gated-only", "unavailable", "fail")
        assert "fwd" not in res and "fwd_bwd" not in res


def test_plot_is_a_png(tiny_run):
    out, _, _ = tiny_run
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schema_check_rejects_a_broken_document(tiny_run):
    _, _, doc = tiny_run
    broken = json.loads(json.dumps(doc))
    del broken["machine"]["git_commit"]
    with pytest.raises(ValueError, match="git_commit"):
        check_schema(broken)
    broken = json.loads(json.dumps(doc))
    broken["runs"][0]["ops"][0]["results"]["eager"]["fwd"]["median_s"] = -1.0
    with pytest.raises(ValueError, match="median_s"):
        check_schema(broken)


def test_op_sweep(tmp_path, capsys):
    doc = compare.main(["--preset", "tiny", "--model", "row_lstm", "--op", "row_lstm", "--sizes", "3,4",
                        "--backends", "eager", "--budget", "0.02", "--json", str(tmp_path / "s.json")])
    check_schema(json.loads((tmp_path / "s.json").read_text()))
    assert [r["size"] for r in doc["runs"]] == [3, 4]
    assert all(r["model"] is None and [o["stem"] for o in r["ops"]] == ["row_lstm"] for r in doc["runs"])
    assert "row_lstm scan h=4" in capsys.readouterr().out


def test_default_backends_follow_the_device(tmp_path, capsys):
    """A CPU run leaves torch.compile out unless asked for (its first run compiles for minutes)."""
    doc = compare.main(["--preset", "tiny", "--model", "row_lstm", "--op", "row_lstm", "--sizes", "3",
                        "--device", "cpu", "--budget", "0.02", "--json", str(tmp_path / "d.json")])
    assert doc["config"]["backends"] == ["eager", "triton", "torch"]
    assert any("--backends eager,compile,triton,torch adds it" in note for note in doc["notes"])
    results = doc["runs"][0]["ops"][0]["results"]
    assert set(results) == {"eager", "triton", "torch"}
    assert results["torch"]["status"] == "pass" and results["torch"]["fwd_bwd"]["median_s"] > 0


@pytest.mark.parametrize("name, head", [("diagonal_bilstm", "softmax"), ("row_lstm", "dmol"), ("pixelcnn_pp", "dmol")])
def test_training_loss_is_minus_mean_log_prob(name, head):
    model = build_model(name, channels=3, levels=8, hidden=3, layers=1, output_hidden=None, head=head)
    cases = op_cases(model, 2, 4, torch.float64, "cpu")
    assert [c.stem for c in cases if c.key.endswith(":loss")] == ["dmol" if head == "dmol" else "cross_entropy"]
    case = model_case(model, 2, 4, torch.float64, "cpu", step_cost(model, cases, 2, 4, torch.float64))
    x_case = case.inputs[-1]
    got = case.fn("reference")(*case.inputs)
    want = -model.double().to_backend("reference").log_prob(x_case).mean()
    assert torch.allclose(got, want, rtol=1e-12, atol=0)


def test_pixelcnn_pp_run_has_a_dmol_case_and_counts_its_convs(tmp_path, capsys):
    """PixelCNN++ (plain nn.Conv2d, DMoL head): one op case, the DMoL loss, with bench.accounting.dmol_cost's
    bytes; the model step's cost adds the convolutions; the torch backend passes the gate on both."""
    doc = compare.main(["--preset", "tiny", "--model", "pixelcnn_pp", "--backends", "eager,torch", "--budget", "0.02",
                        "--json", str(tmp_path / "pp.json")])
    check_schema(json.loads((tmp_path / "pp.json").read_text()))
    run = doc["runs"][0]
    [dmol] = run["ops"]
    assert (dmol["key"], dmol["stem"]) == ("dmol:loss", "dmol")
    t = compare.PRESETS["tiny"]
    want = dmol_cost(t["batch"], 3, t["size"], t["size"], 10, 4, x_itemsize=8)
    assert dmol["cost"]["fwd"]["bytes"] == want.forward.bytes > 0
    assert dmol["cost"]["fwd_bwd"]["bytes"] == want.forward_backward.bytes > dmol["cost"]["fwd"]["bytes"]
    assert run["model"]["cost"]["fwd"]["flops"] > 5 * dmol["cost"]["fwd"]["flops"]  # the convs count
    for record in (dmol, run["model"]):
        assert record["results"]["torch"]["status"] == "pass" and record["results"]["torch"]["fwd_bwd"]["median_s"] > 0
    assert any("nn.Conv2d" in n for n in doc["notes"])
    out = capsys.readouterr().out
    assert "dmol K=10 L=16 C=3" in out and "head dmol" in out


def test_conv_cost_counts_taps_by_hand():
    from bench.accounting import conv_cost

    # 2x3 conv, 4 -> 5 channels, 6x7 output of a 6x7 input, batch 2, with bias
    c = conv_cost(2, 4, 5, (2, 3), 1, (6, 7), (6, 7), 4, bias=True)
    assert c.forward.flops == 2 * (2 * 6 * 7) * (5 * 4 * 2 * 3) + 2 * 5 * 6 * 7
    assert c.forward.bytes == (2 * 4 * 42 + 2 * 5 * 42 + 5 * 4 * 6 + 5) * 4
    # transposed: one multiply-add per input pixel and tap (3x3 in -> 6x6 out)
    t = conv_cost(1, 4, 5, (2, 2), 1, (3, 3), (6, 6), 4, bias=False, transposed=True)
    assert t.forward.flops == 2 * 9 * 4 * 5 * 4


@pytest.mark.parametrize("argv, message", [
    (["--model", "pixelcnn", "--op", "dmol"], "--op dmol: model pixelcnn has no such op call"),
    (["--model", "pixelcnn_pp", "--op", "masked_conv"], "its ops: dmol"),
    (["--model", "pixelcnn_pp", "--head", "softmax"], "DMoL head only"),
])
def test_op_and_head_must_fit_the_model(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        compare.parse_args(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "cuda, model, preset, dtype, layers",
    [(False, "diagonal_bilstm", "cpu", "float32", 2), (True, "pixelcnn", "cifar", "bfloat16", 15),
     (True, "row_lstm", "cifar", "bfloat16", 12), (True, "pixelcnn_pp", "cifar", "bfloat16", 5)],
)
def test_default_preset_follows_the_device(cuda, model, preset, dtype, layers):
    cfg, _ = compare.resolve_config(compare.parse_args(["--model", model]), cuda)
    assert (cfg.preset, cfg.dtype, cfg.layers) == (preset, dtype, layers)
    if model == "pixelcnn_pp":  # as published: nr_filters 160, nr_resnet 5; no output_hidden
        assert (cfg.hidden, cfg.head, cfg.output_hidden) == (160, "dmol", None)
        return
    cfg, _ = compare.resolve_config(compare.parse_args(["--model", model, "--hidden", "7", "--batch", "3"]), cuda)
    assert (cfg.hidden, cfg.batch, cfg.output_hidden) == (7, 3, 14)


def test_gpu_check_script_parses_and_bounds_every_step():
    """The structure docs/benchmarks.md ("The first GPU run") promises; tests/test_bench_gpu_check.py
    runs the script itself (dry run, preflight, deadline)."""
    import re

    script = ROOT / "bench" / "gpu_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "PY=${GPU_CHECK_PYTHON:-python3}" in text and not re.search(r"\bpython( -|\))", text)  # never `python`
    # correctness first (the group barrier, then the scans, then the rest), then timing, plot, compile report,
    # and the DMoL op alone if time is left
    steps = re.findall(r'^\s*step "([^"]+)" (\S+) ', text, flags=re.M)
    names = [name for name, _ in steps]
    order = ["env", "warm-up compile", "tests group barrier", "tests $scan", "tests others", "compare $model",
             "roofline plot", "static", "dmol"]
    assert [n for i, n in enumerate(names) if n not in names[:i]] == order, names
    assert "-p bench.pin_autotune -m gpu" in text and "--backends eager,compile,triton" in text
    # every step has a numeric limit under SIGINT (pytest keeps its junit), and one deadline inside a
    # 600 s device command covers them all
    assert len(steps) >= 8 and all(limit.isdigit() for _, limit in steps)
    assert 'timeout -s INT -k 10 "$limit"' in text
    deadline = int(re.search(r"DEADLINE=\$\(\(START \+ \$\{GPU_CHECK_SECONDS:-(\d+)\}\)\)", text).group(1))
    assert deadline <= 540
    # raw results land in OUTDIR's raw/ (archived), the summary and the log beside them
    outputs = set(re.findall(r'"\$RAW/([^"]+)"', text)) | set(re.findall(r"'\$RAW/([^']+)'", text))
    assert {"static_cifar.json", "compare_$model.json", "warmup.json", "env.txt", "nvidia_smi.txt",
            "pytest_$scan.xml", "pytest_others.xml"} <= outputs, outputs
