"""Faults inside a suite (issue 17): a failure while recording a failure, hostile names, broken or concurrent
reports, leftover temp files, file modes, limits, leaks and the domain-classifier hash. Each case failed on
the code before the fix; `benchmarks/fault_sweep.py` replays the same matrix as separate processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import save as st_save

from bench.cli import main
from bench.store import runs as store
from bench.store.fingerprint import stamp  # run ids as `bench run` makes them (threads, code)
from bench.suite.load import expand, load_suite


def suite(name: str, strategies: dict | None = None, **over) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 4, "eval_every": 0, "batch_size": 8},
        "eval": {"num_samples": 20, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"dummy": {}},
        "strategies": strategies or {"scratch": {}},
        "runner": {"threads": 1},
        **over,
    }


def invoke(*args: str):
    res = CliRunner().invoke(main, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"uncaught {res.exception!r}\n{res.output}") from res.exception
    assert "Traceback" not in res.output, res.output
    return res


def cli_run(tmp_path: Path, data: dict, *extra: str):
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return invoke(
        "run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--quiet", "--device", "cpu", *extra
    )


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


# --- 1. a failure while recording a failure ------------------------------------------------------------
def test_unwritable_result_json_fails_that_run_only(tmp_path: Path) -> None:
    data = suite("rec", {"a": {}, "b": {}})
    first = expand(load_suite(data), stamp=lambda r: stamp(r, "cpu"))[0]
    (tmp_path / "runs" / "rec" / first.run_id / "result.json").mkdir(parents=True)  # a folder in the file's place
    res = cli_run(tmp_path, data)
    assert res.exit_code == 1, res.output
    (line,) = error_lines(res.output)
    assert first.run_id in line and "result.json" in line and "could not be recorded" in line
    done = store.list_results(tmp_path / "runs" / "rec")
    assert [r.strategy for r in done] == ["b"] and done[0].status == "completed"
    rows = list(csv.DictReader((tmp_path / "runs" / "rec" / "results.csv").open()))
    assert [r["strategy"] for r in rows] == ["b"]
    assert (tmp_path / "rep" / "rec" / "index.html").is_file()


def test_nonfinite_adapter_value_is_invalid_input(tmp_path: Path) -> None:
    for value in (".nan", ".inf", "-.inf"):
        path = tmp_path / "nan.yaml"
        path.write_text(f"name: n\ndataset: {{name: digits}}\nadapters: {{dummy: {{lr: {value}}}}}\n")
        res = invoke("validate", str(path))
        assert res.exit_code == 2 and "adapters.dummy.lr" in res.output and "finite" in res.output, res.output


def test_failure_record_holds_nonfinite_values(tmp_path: Path) -> None:
    from bench.exec.outcome import record_failure

    run = expand(load_suite(suite("nanrec")), stamp=lambda r: stamp(r, "cpu"))[0]
    run.adapter_config["lr"] = float("nan")  # as a Python caller could pass it, past validation
    res = record_failure(run, RuntimeError("boom"), "cpu", tmp_path)
    assert not getattr(res, "unrecorded", "")
    assert store.read_result(tmp_path / run.run_id).spec["adapter_config"]["lr"] == "nan"


@pytest.mark.parametrize("name", ["😀" * 100, "é" * 65], ids=["emoji", "accents"])
def test_name_length_counts_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(suite("long", {name: {}}), allow_unicode=True), encoding="utf-8")
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "strategy names" in res.output and "bytes" in res.output, res.output
    assert len(res.output) < 400


# --- 2. labels are plain text ---------------------------------------------------------------------------
def test_dollar_in_strategy_names_renders(tmp_path: Path) -> None:
    res = cli_run(tmp_path, suite("dollar", {"scratch": {}, "a$b": {}, "$x^{$": {}}))
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "dollar" / "index.html").read_text()
    assert "a$b" in html and (tmp_path / "rep" / "dollar" / "img" / "bars.png").is_file()


# --- 4. the report is published whole -------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    assert cli_run(tmp, suite("fin", {"scratch": {}, "other": {}}, seeds=[0, 1])).exit_code == 0
    return tmp


def test_failed_render_leaves_previous_report(tmp_path: Path, finished: Path, monkeypatch) -> None:
    from bench.report import render

    out = tmp_path / "rep"
    render.render_report(finished / "runs" / "fin", out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def dies(*args, **kwargs):
        (args[1] / "runs").mkdir()
        (args[1] / "runs" / "half.html").write_text("half")  # some pages written, then killed
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "_render_html", dies)
    with pytest.raises(KeyboardInterrupt):
        render.render_report(finished / "runs" / "fin", out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]  # no staging folder left


def test_broken_report_is_redrawn_by_rerun(tmp_path: Path, finished: Path) -> None:
    import shutil

    work = tmp_path / "w"
    shutil.copytree(finished, work)
    report = work / "rep" / "fin"
    pages = sorted((report / "runs").iterdir())
    for p in pages[:2]:
        p.unlink()  # what a kill during the old in-place render left
    (report / "img" / "bars.png").unlink()
    time.sleep(0.01)
    os.utime(report / "index.html")  # newer than every result: a timestamp check alone says "current"
    assert cli_run(work, suite("fin", {"scratch": {}, "other": {}}, seeds=[0, 1])).exit_code == 0
    assert sorted((report / "runs").iterdir()) == pages and (report / "img" / "bars.png").is_file()


RENDER_LOOP = """
import sys, time
from bench.api import render_report
start = float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # every process starts rendering at the same moment
for _ in range(3):
    render_report(sys.argv[1], sys.argv[2])
"""


def test_concurrent_renders(tmp_path: Path, finished: Path) -> None:
    out = tmp_path / "rep"
    start = str(time.time() + 8)  # after every interpreter has imported bench
    cmd = [sys.executable, "-c", RENDER_LOOP, str(finished / "runs" / "fin"), str(out), start]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    from bench.report.folder import links_intact

    assert links_intact(out / "index.html")
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_report_folder_with_foreign_files_is_refused(tmp_path: Path, finished: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    res = invoke("report", str(finished / "runs" / "fin"), "--out", str(out))
    assert res.exit_code == 2 and "does not own" in res.output, res.output
    assert (out / "thesis.tex").read_text() == "precious"


# --- 5. temp files of killed writers --------------------------------------------------------------------
def test_stale_temp_files_are_swept(tmp_path: Path, finished: Path) -> None:
    import shutil

    work = tmp_path / "w"
    shutil.copytree(finished, work)
    old = time.time() - 3600
    planted = [work / "runs" / "fin" / ".suite.yaml.abc123.tmp", work / "rep" / "fin" / ".index.html.def456.tmp"]
    fresh = work / "runs" / "fin" / ".results.csv.live.tmp"  # may belong to a live writer: kept
    for p in [*planted, fresh]:
        p.write_text("partial")
    for p in planted:
        os.utime(p, (old, old))
    assert cli_run(work, suite("fin", {"scratch": {}, "other": {}}, seeds=[0, 1])).exit_code == 0
    assert not any(p.exists() for p in planted) and fresh.exists()


# --- 6. file modes follow the umask ---------------------------------------------------------------------
def test_written_files_honour_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert cli_run(tmp_path, suite("modes")).exit_code == 0
    finally:
        os.umask(old)
    sdir = tmp_path / "runs" / "modes"
    (run_dir,) = [d for d in sdir.iterdir() if d.is_dir()]
    files = [
        sdir / "suite.yaml",
        sdir / "results.csv",
        sdir / "summary.csv",
        run_dir / "result.json",
        tmp_path / "rep" / "modes" / "index.html",
    ]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o644" for f in files}
    assert oct((tmp_path / "rep" / "modes").stat().st_mode & 0o777) == "0o755"


# --- 7. limits ------------------------------------------------------------------------------------------
LIMIT_CASES = {
    "duplicate_key": ("budget: {steps: 4}\nbudget: {steps: 9}\n", "duplicate key 'budget'"),
    "num_samples": ("eval: {num_samples: 1000000000000}\n", "eval.num_samples"),
    "steps": (f"budget: {{steps: {2**70}}}\n", "budget.steps"),
    "strategy_steps": (f"strategies: {{s: {{task: supervised, source: {{name: digits}}, steps: {10**9}}}}}\n", "strategies.s.steps"),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
def test_limits(tmp_path: Path, case: str) -> None:
    body, fragment = LIMIT_CASES[case]
    path = tmp_path / "lim.yaml"
    path.write_text("name: lim\ndataset: {name: digits}\nadapters: {dummy: {}}\n" + body)
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and fragment in res.output and len(res.output.splitlines()) == 1, res.output


def test_ceiling_can_be_raised_on_purpose(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\ndataset: {name: digits}\nadapters: {dummy: {}}\nbudget: {steps: 20000000}\n")
    assert "BENCH_LIMITS" in invoke("validate", str(path)).output
    monkeypatch.setenv("BENCH_LIMITS", "steps=30000000")
    assert invoke("validate", str(path)).exit_code == 0
    monkeypatch.setenv("BENCH_LIMITS", "stepz=1")
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "BENCH_LIMITS" in res.output


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "seeds.yaml"
    with path.open("w") as f:
        f.write("name: s\ndataset: {name: digits}\nadapters: {dummy: {}}\nseeds: [")
        f.write(",".join(map(str, range(400_000))) + "]\n")  # ~2.7 MB
    t0 = time.perf_counter()
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "bytes" in res.output, res.output
    assert time.perf_counter() - t0 < 5  # refused by size, not after parsing


# --- 8. leaks -------------------------------------------------------------------------------------------
def test_include_of_a_non_suite_file_echoes_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3tHash:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n")
    path = tmp_path / "inc.yaml"
    path.write_text(f"include: {secret}\nname: x\n")
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "not a suite file" in res.output, res.output
    assert "s3cr3t" not in res.output and "daemon" not in res.output and "99999" not in res.output


def test_formula_names_are_neutralised_in_csv(tmp_path: Path) -> None:
    res = cli_run(tmp_path, suite("formula", {'=HYPERLINK("evil")': {}, "+1": {}, "@x": {}}))
    assert res.exit_code == 0, res.output
    for name in ("results.csv", "summary.csv"):
        cells = [row["strategy"] for row in csv.DictReader((tmp_path / "runs" / "formula" / name).open())]
        assert sorted(cells) == ["'+1", '\'=HYPERLINK("evil")', "'@x"], cells
    # the result files and the report keep the real names
    assert {r.strategy for r in store.list_results(tmp_path / "runs" / "formula")} == {'=HYPERLINK("evil")', "+1", "@x"}


# --- 9. the domain classifier's weights are hashed by their tensors --------------------------------------
def test_domain_weights_hash_ignores_file_bytes(tmp_path: Path) -> None:
    from bench.data.datasets import DatasetSpec, load_dataset
    from bench.metrics import domain_cache as cache
    from bench.metrics import domain_net

    data = load_dataset(DatasetSpec(name="digits"))
    cfg = domain_net.TrainConfig()
    net = domain_net.build(data, cfg)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(st_save(state, metadata={"hash": "h", "arch": "1"}))
    b.write_bytes(st_save(state, metadata={"arch": "1", "hash": "h", "written_by": "another process"}))
    assert a.read_bytes() != b.read_bytes()
    ha, hb = cache.load_weights(a, data, cfg)[1], cache.load_weights(b, data, cfg)[1]
    assert ha == hb == cache.tensors_sha256(state)
    state["head.weight" if "head.weight" in state else next(iter(state))] = torch.zeros(1)
    assert cache.tensors_sha256(state) != ha
