"""The Ray executor: one Ray task per run, each asking for `num_gpus` (a fraction lets tiny models share a GPU);
on a local multi-GPU box or a cluster (`address`), writing into the shared run folder."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError
from bench.exec.jobs import user_modules
from bench.exec.outcome import Dispatch, execute_one, record_failure
from bench.store import claims
from bench.store.result import RunResult
from bench.suite.spec import RunSpec


def check_gpus_per_run(gpus: float | None) -> None:
    """Ray accepts fractions below one (GPU sharing) or whole numbers; anything else is an input error."""
    if gpus is None:
        return
    if not math.isfinite(gpus) or gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise BenchError(f"--gpus-per-run {gpus}: not a valid GPU share", fix="use a fraction in (0, 1], e.g. 0.25, or a whole number")


def _module_path(mod: Any) -> str | None:
    """A package's folder or a single-file module's .py, as Ray's py_modules wants them."""
    paths = list(getattr(mod, "__path__", None) or [])
    if len(paths) == 1:
        return str(paths[0])
    file = getattr(mod, "__file__", None)
    return str(file) if file and str(file).endswith(".py") and not paths else None


def _shipped_modules(runs: list[RunSpec]) -> list[str]:
    """The code Ray workers must import: the harness, and the top-level package (or single-file module) of
    every adapter class the registry resolved for these runs (the bundled baselines, a plugin, a user's
    `module:Class`) and of the classes it derives from, unless installed in site-packages, where the workers
    find it themselves."""
    from bench.adapter.base import get_adapter

    shipped = [str(Path(__file__).resolve().parents[1])]  # the bench package folder
    for key in sorted({r.adapter for r in runs}):
        cls = get_adapter(key, where=f"adapters.{key}")  # validated on the driver already: a registry hit
        for base in cls.__mro__:  # a user's adapter may subclass a bundled one: ship that package too
            mod = sys.modules.get(base.__module__.split(".")[0])
            path = _module_path(mod) if mod is not None else None
            if path and "site-packages" not in path and "dist-packages" not in path and path not in shipped:
                shipped.append(path)
    for mod_name, _ in user_modules(runs):  # `module:function` data sets travel the same way
        path = _module_path(sys.modules.get(mod_name.split(".")[0]))
        if path and "site-packages" not in path and "dist-packages" not in path and path not in shipped:
            shipped.append(path)
    return shipped


def _runtime_envs(code: list[str]) -> tuple[dict, dict]:
    """(job-level, task-level) runtime_env. Ray uploads local code only at the job level (ray.init), so
    when this process starts or joins Ray, the code travels as py_modules and a worker on any node runs the
    driver's exact code. When Ray was initialised by the caller, only the task level is ours: PYTHONPATH
    then points at the driver's folders, which suffices on this machine or on a shared file system."""
    folders = [str(Path(p).parent) for p in code]
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    task = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys([*folders, *existing]))}}
    return {"py_modules": code}, task


def run_ray(
    runs: list[RunSpec], d: Dispatch, address: str | None = None, num_gpus: float | None = None, num_cpus: float | None = None
) -> None:
    """One Ray task per run. Joins the cluster at `address` (or an already initialised Ray, or starts a
    local one). Workers write into `suite_dir`, which must be on a file system every node shares.
    Each task asks Ray for as many CPUs as its run's `runner.threads` (resolved on the driver by
    bench.store.fingerprint.stamp, the same count a local run uses), unless `num_cpus` says otherwise: the thread
    count is part of the run's identity, and a task that gets fewer cores than threads only oversubscribes.
    The driver claims each run's lock before it submits the run and holds it until the result is back
    (bench.store.claims), so other launchers on the same folder, Ray or local, split the runs with it."""
    device, on_done, on_other, force = d.device, d.on_done, d.on_other, d.force
    check_gpus_per_run(num_gpus)
    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray", fix="pip install 'bench-pretrain[ray]'") from None
    job_env, task_env = _runtime_envs(_shipped_modules(runs))
    if not ray.is_initialized():
        ray.init(address=address, runtime_env=job_env, log_to_driver=False, include_dashboard=False)
    elif address is not None:
        raise BenchError(
            "--ray-address: Ray is already initialised in this process", fix="drop --ray-address, or call ray.shutdown() first"
        )
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cuda" and not cluster_gpus:
        raise BenchError("--device cuda: the Ray cluster has no GPUs", fix="use --device auto or cpu, or join a cluster with GPUs")
    if num_gpus is None:
        num_gpus = 1.0 if device in ("auto", "cuda") and cluster_gpus else 0.0
    if num_gpus > 0 and not cluster_gpus:  # the tasks could never be scheduled: fail now instead of hanging
        raise BenchError(f"--gpus-per-run {num_gpus}: the Ray cluster has no GPUs", fix="drop --gpus-per-run, or join a cluster with GPUs")
    # Absolute paths: a worker's working directory is not the driver's.
    suite_dir, cache_dir = Path(d.suite_dir).resolve(), Path(d.cache_dir).resolve()
    cluster_cpus = ray.cluster_resources().get("CPU", 1)
    remote = ray.remote(num_gpus=num_gpus, max_retries=0)(execute_one)

    def submit(run: RunSpec) -> Any:
        # Never more than the cluster has (the task could not be scheduled); threads stay as resolved.
        cpus = num_cpus if num_cpus is not None else min(float(run.runner.threads or 1), cluster_cpus)
        return remote.options(num_cpus=cpus, runtime_env=task_env).remote(run, str(suite_dir), device, str(cache_dir), False)

    snap = claims.snapshot(runs, suite_dir) if d.snap is None else d.snap
    queue, pending, held = list(runs), {}, {}

    def dispatch() -> None:
        """Submit every queued run this launcher can claim; report those another launcher finished."""
        for run in list(queue):
            got = claims.claim(run, suite_dir, snap, force)
            if got is None:
                continue  # a live process holds it: try again on the next pass
            queue.remove(run)
            if isinstance(got, RunResult):
                (on_other or on_done)(run, got)
            else:
                held[run.run_id] = got
                pending[submit(run)] = run

    try:
        while queue or pending:
            dispatch()
            if not pending:
                time.sleep(claims.POLL)  # every queued run is held elsewhere
                continue
            done, _ = ray.wait(list(pending), num_returns=1, timeout=claims.POLL if queue else None)
            for ref in done:
                run = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as err:  # the worker itself died (killed, lost node): record it, keep going
                    res = record_failure(run, err, "ray worker", suite_dir)
                finally:
                    held.pop(run.run_id).release()
                on_done(run, res)
    except BaseException:
        # Ctrl-C (or any driver error): stop the runs still queued or running; their checkpoints let a
        # rerun resume them.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        for lock in held.values():
            lock.release()
