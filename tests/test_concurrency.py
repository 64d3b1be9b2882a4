"""Several launchers on one run folder, and `--jobs K`: every run is executed exactly once, every cache entry is
built once, and the final results.csv equals a clean single-process run's, metric for metric."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bench.api import run_suite
from bench.cli import main
from bench.core.errors import BenchError
from bench.exec.jobs import check_jobs

pytestmark = pytest.mark.slow

# Cost columns are wall-clock measurements, and which run of a (strategy, adapter) builds the shared pretraining
# entry (pretrain_cached) depends on who got there first; every other column is a function of the run's numbers.
NOT_COMPARED = {
    "pretrain_cached",
    "pretrain_seconds",
    "train_seconds",
    "eval_seconds",
    "total_seconds",
    "images_per_second",
    "peak_memory_mb",
}


def suite(name: str, threads: int | None = 1) -> dict:
    """Dummy adapter, 6 runs, with a generative pretraining strategy (a shared pretrain cache entry) and
    fid_domain (the domain classifier and real-feature caches), so every kind of lock is contended."""
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 20, "eval_every": 10, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd", "fid_domain"]},
        "seeds": [0, 1, 2],
        "adapters": {"dummy": {}},
        "strategies": {
            "scratch": {},
            "gen": {
                "task": "generative",
                "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]},
                "steps": 10,
                "pretrain_seed": "shared",  # one cache entry for every seed: the launchers contend for it
            },
        },
        "runner": {"threads": threads, "log_every": 5, "checkpoint_every": 10},
    }


def table(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {row["run_id"]: {k: v for k, v in row.items() if k not in NOT_COMPARED} for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("ref")
    df = run_suite(suite("conc"), out=out, reports=out / "rep", device="cpu", progress=False)
    assert not df.attrs["failed"]
    return table(out / "conc" / "results.csv")


def _launch(n: int, tmp_path: Path) -> list[str]:
    path = tmp_path / "conc.yaml"
    path.write_text(yaml.safe_dump(suite("conc")))
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep")]
    cmd += ["--device", "cpu", "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(n)]
    logs = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out
        logs.append(out)
    return logs


@pytest.mark.parametrize("launchers", [2, 4])
def test_concurrent_launchers_split_the_work(tmp_path: Path, reference, launchers: int) -> None:
    logs = _launch(launchers, tmp_path)
    ran = [re.findall(r"\] (\S+): completed$", log, flags=re.M) for log in logs]
    by_other = [re.findall(r"\] (\S+): completed \(by another launcher\)", log) for log in logs]
    executed = [r for per in ran for r in per]
    print(f"{launchers} launchers, runs executed per process: {[len(r) for r in ran]}")
    assert sorted(executed) == sorted(reference)  # every run exactly once, across all processes
    for mine, others in zip(ran, by_other, strict=True):
        assert sorted(mine + others) == sorted(reference)  # each launcher accounts for the whole grid
    assert table(tmp_path / "runs" / "conc" / "results.csv") == reference
    results = [yaml.safe_load((p / "result.json").read_text()) for p in (tmp_path / "runs" / "conc").glob("dummy-gen-*")]
    assert sum(not r["pretrain"]["cached"] for r in results) == 1  # the pretraining entry was built once
    assert not any((tmp_path / "runs").rglob("*.lock"))  # every lock released
    assert not (tmp_path / "runs" / "conc" / ".locks").exists()  # and their folder removed


def test_jobs_match_sequential_runs_at_the_same_threads(tmp_path: Path, reference) -> None:
    """With threads left null every run gets one thread, whatever K, the sequential reference's pinned count, so
    every run's numbers must be identical to the run alone. Through the Python API (bench.run_suite(..., jobs=K))."""
    k = max(2, len(os.sched_getaffinity(0)))
    lines: list[str] = []
    df = run_suite(
        suite("conc", threads=None), out=tmp_path, reports=tmp_path / "rep", device="cpu", progress=False, jobs=k, echo=lines.append
    )
    assert not df.attrs["failed"] and len(df) == len(reference)
    done = [ln for ln in lines if re.match(r"\[\d/6\] ", ln)]
    assert len(done) == 6 and not any("another launcher" in ln for ln in done)  # siblings are not other launchers
    assert table(tmp_path / "conc" / "results.csv") == reference
    assert not any(tmp_path.rglob("*.lock"))


@pytest.mark.parametrize("jobs, executor", [(0, "local"), (-1, "local"), (2, "ray")])
def test_bad_jobs_is_an_input_error(jobs: int, executor: str) -> None:
    with pytest.raises(BenchError, match="--jobs"):
        check_jobs(jobs, executor)


def test_cli_jobs_flag(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite("cli")))
    base = ["run", str(path), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    res = CliRunner().invoke(main, [*base, "--jobs", "2", "--executor", "ray"])
    assert res.exit_code == 2 and "--jobs 2 only applies to the local executor" in res.output
    res = CliRunner().invoke(main, [*base, "--jobs", "0"])
    assert res.exit_code == 2 and "--jobs" in res.output
    res = CliRunner().invoke(main, [*base, "--jobs", "2", "--dry-run"])
    assert res.exit_code == 0 and res.output.count("  run   dummy-") == 6  # --jobs with --dry-run: listed, nothing run
