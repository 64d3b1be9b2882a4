"""The Ray executor on a local CPU cluster gives the same results as the local executor, failures included.

Skipped when Ray is not installed (`pip install 'bench-pretrain[ray]'`)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

ray = pytest.importorskip("ray")

from bench.cli import main  # noqa: E402
from bench.exec.ray import _runtime_envs, _shipped_modules, check_gpus_per_run  # noqa: E402
from bench.store import runs as store  # noqa: E402
from bench.suite.load import expand, load_suite  # noqa: E402

pytestmark = pytest.mark.slow  # a local Ray cluster and suites run through it

MODULE = "ray_adapters_under_test"
SOURCE = textwrap.dedent(
    """
    from baselines.dummy import Dummy


    class Broken(Dummy):
        def train_step(self, batch, step):
            if step == 2:
                raise RuntimeError("boom on a ray worker")
            return super().train_step(batch, step)
    """
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # An out-of-tree adapter module: Ray workers must be able to import it too.
    folder = tmp_path_factory.mktemp("adapters")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    sys.path.insert(0, str(folder))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield folder
    ray.shutdown()
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def suite() -> dict:
    return {
        "name": "ray_tiny",
        "dataset": {"name": "digits"},
        "budget": {"steps": 20, "eval_every": 10, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"dummy": {}, f"{MODULE}:Broken": {}},
        "runner": {"checkpoint_every": 5, "log_every": 5, "threads": 1},
    }


def bench_run(tmp_path: Path, *args: str, spec: dict | None = None):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec or suite(), sort_keys=False))
    return CliRunner().invoke(main, ["run", str(path), "--reports", str(tmp_path / "rep"), "--quiet", "--device", "cpu", *args])


def comparable(res: dict) -> dict:
    from bench.metrics.cost import COST_METRICS

    quality = {k: v for k, v in res.metrics.items() if k not in COST_METRICS or k == "params"}
    return {"status": res.status, "error": res.error, "metrics": quality, "first_losses": res.first_losses}


def test_ray_executor_matches_local(cluster, tmp_path: Path) -> None:
    local = bench_run(tmp_path, "--out", str(tmp_path / "local"))
    remote = bench_run(tmp_path, "--out", str(tmp_path / "ray"), "--executor", "ray")
    # One run raises in both: exit 1, and every other run still finishes.
    assert local.exit_code == 1, local.output
    assert remote.exit_code == 1, remote.output
    a = {r.run_id: r for r in store.list_results(tmp_path / "local" / "ray_tiny")}
    b = {r.run_id: r for r in store.list_results(tmp_path / "ray" / "ray_tiny")}
    assert sorted(a) == sorted(b) and len(a) == 2
    for run_id in a:
        assert comparable(a[run_id]) == comparable(b[run_id]), run_id
    statuses = sorted(r.status for r in b.values())
    assert statuses == ["completed", "failed"]
    failed = next(r for r in b.values() if r.status == "failed")
    assert "boom on a ray worker" in failed.traceback
    assert (tmp_path / "ray" / "ray_tiny" / "results.csv").is_file()
    # Resume works across executors: a second Ray pass finds the completed runs done and redoes only failures.
    again = bench_run(tmp_path, "--out", str(tmp_path / "ray"), "--executor", "ray", "--only", "dummy-*")
    assert again.exit_code == 0, again.output
    assert "1 runs (1 already done)" in again.output


def test_ray_workers_get_the_code(cluster) -> None:
    runs = expand(load_suite(suite()))
    code = _shipped_modules(runs)
    assert [Path(p).name for p in code] == ["bench", "baselines", f"{MODULE}.py"]
    job, task = _runtime_envs(code)
    assert job == {"py_modules": code}
    assert str(cluster) in task["env_vars"]["PYTHONPATH"].split(":")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray", "--gpus-per-run", "0.25"], "the Ray cluster has no GPUs"),
        (["--executor", "ray", "--device", "cuda"], "no CUDA device"),
        (["--executor", "ray", "--gpus-per-run", "1.5"], "not a valid GPU share"),
        (["--executor", "ray", "--gpus-per-run", "-1"], "not a valid GPU share"),
        (["--gpus-per-run", "0.5"], "only apply to the Ray executor"),
        (["--ray-address", "auto"], "only apply to the Ray executor"),
    ],
)
def test_ray_options_are_checked(cluster, tmp_path: Path, args: list[str], message: str) -> None:
    res = bench_run(tmp_path, "--out", str(tmp_path / "runs"), *args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not any((tmp_path / "runs").glob("*/*/result.json"))  # nothing ran


def test_gpu_share_values() -> None:
    for ok in (None, 0.1, 0.5, 1, 2.0, 4):
        check_gpus_per_run(ok)


def test_null_threads_give_the_same_numbers_on_ray_and_local(cluster, tmp_path: Path) -> None:
    """`runner.threads: null` is resolved once on the driver (the usable cores), so a Ray task trains with the
    same thread count as a local run (it used to get 1), under the same run id, to the same numbers."""
    s = {
        "name": "ray_threads",
        "dataset": {"name": "digits"},
        "budget": {"steps": 10, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"cnn_gan": {"z_dim": 8, "width": 8, "max_width": 8, "feature_dim": 16}, "dummy": {}},
    }
    path = tmp_path / "threads.yaml"
    path.write_text(yaml.safe_dump(s))
    results = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        args = ["run", str(path), "--out", str(out), "--reports", str(tmp_path / "rep"), "--quiet", "--device", "cpu"]
        res = CliRunner().invoke(main, [*args, "--executor", executor])
        assert res.exit_code == 0, res.output
        results[executor] = {r.run_id: r for r in store.list_results(out / "ray_threads")}
    assert sorted(results["local"]) == sorted(results["ray"]) and len(results["local"]) == 2
    for run_id, a in results["local"].items():
        b = results["ray"][run_id]
        assert a.spec["runner"]["threads"] == b.spec["runner"]["threads"] >= 1
        assert comparable(a) == comparable(b), run_id


def test_ray_driver_claims_runs_like_a_local_launcher(cluster, tmp_path: Path) -> None:
    """Another launcher holds one run's lock and finishes it while the Ray launcher works: Ray runs the
    other run only, reports the held one as done by another launcher, and leaves its result untouched."""
    import threading

    from bench.exec.outcome import execute_one
    from bench.store import locks
    from bench.store.claims import run_lock
    from bench.store.fingerprint import stamp

    s = suite()
    s["adapters"] = {"dummy": {}}
    s["seeds"] = [0, 1]
    out = tmp_path / "runs"
    held_run = next(r for r in expand(load_suite(s), stamp=lambda r: stamp(r, "cpu")) if r.seed == 1)
    lock = locks.try_acquire(run_lock(out / "ray_tiny", held_run.run_id))
    assert lock is not None

    def other_launcher() -> None:  # finishes the held run a little later, then lets go of it
        time.sleep(3)
        execute_one(held_run, out / "ray_tiny", "cpu", out / ".cache", progress=False)
        lock.release()

    t = threading.Thread(target=other_launcher)
    t.start()
    res = bench_run(tmp_path, "--out", str(out), "--executor", "ray", spec=s)
    t.join()
    assert res.exit_code == 0, res.output
    assert f"{held_run.run_id}: completed (by another launcher)" in res.output
    assert sum("(by another launcher)" in line for line in res.output.splitlines()) == 1
    assert len(store.list_results(out / "ray_tiny")) == 2
