"""Threads and packing: a run's thread count defaults to 1 and bounds every thread pool (torch, BLAS, OpenMP);
`--jobs auto` packs runs onto the usable cores (affinity and cgroup quota); the run id never depends on --jobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from threadpoolctl import threadpool_info

from bench.core import env
from bench.core.errors import BenchError
from bench.exec.jobs import check_jobs, resolve_jobs
from bench.store.fingerprint import stamp
from bench.suite.load import expand, load_suite


def _suite(name: str = "pack", threads: int | None = None) -> dict:
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "budget": {"steps": 6, "eval_every": 0, "batch_size": 16},
        "eval": {"num_samples": 20, "metrics": ["bpd"]},
        "seeds": [0, 1, 2, 3],
        "adapters": {"dummy": {}},
        "runner": {"threads": threads, "log_every": 3},
    }


def test_configure_threads_bounds_every_pool() -> None:
    """BLAS (numpy's and scipy's OpenBLAS) and OpenMP (torch's, scikit-learn's) pools follow the run's count."""
    import scipy.linalg  # noqa: F401  (loads scipy's own BLAS, so its pool is among those checked)
    import sklearn.cluster  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    before = torch.get_num_threads()
    try:
        assert env.configure_threads(1) == 1
        pools = threadpool_info()
        assert pools and all(p["num_threads"] == 1 for p in pools), pools
        assert torch.get_num_threads() == 1
    finally:
        env.configure_threads(before)


def test_null_threads_resolve_to_one_whatever_the_cores() -> None:
    (run,) = expand(load_suite({**_suite(), "seeds": [0]}), stamp=lambda r: stamp(r, "cpu"))
    assert run.runner.threads == 1


def test_run_ids_do_not_depend_on_jobs() -> None:
    """Two launchers with different --jobs on one folder compute the same ids (the ids are resolved before
    --jobs is read, and --jobs never enters them)."""
    suite = load_suite(_suite())
    ids = [r.run_id for r in expand(suite, stamp=lambda r: stamp(r, "cpu"))]
    assert len(set(ids)) == 4
    for jobs in (1, 2, "auto"):
        resolve_jobs(jobs, "local", torch.device("cpu"), 4)
        assert [r.run_id for r in expand(suite, stamp=lambda r: stamp(r, "cpu"))] == ids


def test_jobs_auto_packs_the_usable_cores(monkeypatch) -> None:
    monkeypatch.setattr(env, "usable_cores", lambda: 8)
    cpu = torch.device("cpu")
    assert resolve_jobs("auto", "local", cpu, runs=100) == 8
    assert resolve_jobs("auto", "local", cpu, runs=3) == 3  # never more workers than runs
    assert resolve_jobs("auto", "local", cpu, runs=100, threads=3) == 2  # runs pinned to 3 threads: 8 // 3
    assert resolve_jobs("auto", "local", cpu, runs=100, threads=16) == 1
    assert resolve_jobs(1, "local", cpu, runs=100) == 1  # --jobs 1: sequential, in this process
    assert resolve_jobs(5, "local", cpu, runs=2) == 2
    assert resolve_jobs("auto", "ray", cpu, runs=100) == 1  # Ray packs runs itself
    assert resolve_jobs("auto", "local", torch.device("cuda"), runs=100) == 1  # one device, one process by default


@pytest.mark.parametrize("jobs", [0, -1, "many", 2.5])
def test_bad_jobs_is_an_input_error(jobs) -> None:
    with pytest.raises(BenchError, match="--jobs"):
        check_jobs(jobs, "local")


def test_usable_cores_reads_affinity_and_cgroup_quota(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(env.os, "sched_getaffinity", lambda _: {0, 1, 2, 3, 4, 5}, raising=False)
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("250000 100000\n")  # 2.5 CPUs
    assert env.usable_cores(cgroup=v2) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert env.usable_cores(cgroup=v2) == 6
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert env.usable_cores(cgroup=v1) == 3
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert env.usable_cores(cgroup=v1) == 6
    assert env.usable_cores(cgroup=tmp_path / "none") == 6


@pytest.mark.slow
def test_two_launchers_with_different_jobs_run_every_run_once(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(_suite()))
    base = [sys.executable, "-m", "bench.cli", "run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep")]
    procs = [
        subprocess.Popen([*base, "--device", "cpu", "--quiet", "--jobs", jobs], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for jobs in ("1", "2")
    ]
    logs = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out
        logs.append(out)
    executed = [rid for log in logs for rid in re.findall(r"\] (\S+): completed$", log, flags=re.M)]
    assert len(executed) == 4 and len(set(executed)) == 4, logs  # every run once, across both launchers
    rows = (tmp_path / "runs" / "pack" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4, rows  # one row per run, not one per launcher


def test_cli_jobs_values(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bench.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_suite()))
    base = ["run", str(path), "--out", str(tmp_path / "runs"), "--device", "cpu", "--dry-run"]
    for bad in ("0", "many", "-2"):
        res = CliRunner().invoke(main, [*base, "--jobs", bad])
        assert res.exit_code == 2 and "--jobs" in res.output, res.output
    for ok in ("auto", "1", "3"):
        res = CliRunner().invoke(main, [*base, "--jobs", ok])
        assert res.exit_code == 0 and res.output.count("  run   dummy-") == 4, res.output
