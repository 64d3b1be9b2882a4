"""End to end through the CLI: a tiny suite runs, writes every contracted file, resumes, and is repeatable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from bench.cli import main


def _suite_file(tmp_path: Path, suite: dict) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(yaml.safe_dump(suite))
    return p


def _run(tmp_path: Path, suite_path: Path, *extra: str, out: str = "runs"):
    args = [
        "run",
        str(suite_path),
        "--out",
        str(tmp_path / out),
        "--reports",
        str(tmp_path / "reports"),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.slow  # end to end
def test_tiny_suite_end_to_end(tmp_path, tiny_suite):
    tiny_suite["seeds"] = [0, 1]
    tiny_suite["eval"]["metrics"] = ["bpd", "fid_domain"]
    path = _suite_file(tmp_path, tiny_suite)
    res = _run(tmp_path, path)
    assert res.exit_code == 0, res.output
    suite_dir = tmp_path / "runs" / "tiny"
    runs = sorted(p for p in suite_dir.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        result = json.loads((run / "result.json").read_text())
        assert result["status"] == "completed"
        assert {"run_id", "adapter", "strategy", "seed", "metrics", "timings", "spec", "env", "protocol"} <= set(result)
        assert result["metrics"]["bpd"] > 0 and result["metrics"]["fid_domain"] >= 0
        assert {"pretrain", "train", "eval"} <= set(result["timings"])
        hist = pd.read_csv(run / "history.csv")
        assert {0, 10, 20} <= set(hist["step"]) and "nll" in hist.columns
        assert (run / "samples.png").stat().st_size > 100
        assert not (run / "checkpoint.pt").exists()
    results = pd.read_csv(suite_dir / "results.csv")
    assert list(results.columns[:6]) == ["run_id", "adapter", "family", "strategy", "task", "seed"]
    summary = pd.read_csv(suite_dir / "summary.csv")
    assert summary.loc[0, "bpd_n"] == 2 and "bpd_ci95" in summary.columns
    assert (tmp_path / "reports" / "tiny" / "index.html").is_file()
    assert "report: file://" in res.output and "bpd" in res.output

    # A rerun of a finished suite skips everything and leaves the finished results untouched.
    before = (runs[0] / "result.json").read_text()
    mtimes = [(r / "result.json").stat().st_mtime_ns for r in runs]
    t = time.perf_counter()
    again = _run(tmp_path, path)
    assert again.exit_code == 0 and "2 already done" in again.output
    assert time.perf_counter() - t < 10
    assert (runs[0] / "result.json").read_text() == before
    assert [(r / "result.json").stat().st_mtime_ns for r in runs] == mtimes

    # --force reruns, and on CPU the same seed gives bit-identical metrics.
    forced = _run(tmp_path, path, "--force", "--only", "dummy-scratch-s0*")
    assert forced.exit_code == 0, forced.output
    a, b = json.loads(before)["metrics"], json.loads((runs[0] / "result.json").read_text())["metrics"]
    for k in ("bpd", "fid_domain", "params"):
        assert a[k] == b[k], k


@pytest.mark.slow  # end to end
def test_half_written_run_is_redone(tmp_path, tiny_suite):
    path = _suite_file(tmp_path, tiny_suite)
    assert _run(tmp_path, path).exit_code == 0
    run = next(p for p in (tmp_path / "runs" / "tiny").iterdir() if p.is_dir())
    (run / "result.json").write_text("{not json")
    res = _run(tmp_path, path)
    assert res.exit_code == 0 and "0 already done" in res.output
    assert json.loads((run / "result.json").read_text())["status"] == "completed"


def test_dry_run_lists_and_trains_nothing(tmp_path, tiny_suite):
    path = _suite_file(tmp_path, tiny_suite)
    res = _run(tmp_path, path, "--dry-run")
    assert res.exit_code == 0 and "dummy-scratch-s0-" in res.output
    assert not (tmp_path / "runs" / "tiny").exists()


def test_validate_and_list(tmp_path, tiny_suite):
    path = _suite_file(tmp_path, tiny_suite)
    r = CliRunner().invoke(main, ["validate", str(path)])
    assert r.exit_code == 0 and "1 runs" in r.output
    for what in ("adapters", "datasets", "metrics", "suites", "strategies"):
        r = CliRunner().invoke(main, ["list", what])
        assert r.exit_code == 0, (what, r.output)
    assert "dummy" in CliRunner().invoke(main, ["list", "adapters"]).output
    assert "fid_domain" in CliRunner().invoke(main, ["list", "metrics"]).output


@pytest.mark.slow  # end to end
def test_report_regenerates_without_training(tmp_path, tiny_suite):
    path = _suite_file(tmp_path, tiny_suite)
    assert _run(tmp_path, path).exit_code == 0
    out = tmp_path / "rep2"
    r = CliRunner().invoke(main, ["report", str(tmp_path / "runs" / "tiny"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "index.html").is_file()
