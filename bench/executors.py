"""Executors hand RunSpecs to runners. A crash in one run is recorded as `failed` and never stops the others.

- local: one process, runs in sequence on one device (the default; best for one GPU or a laptop).
- jobs:  `--jobs K`: K local worker processes on one device (bench.jobs), each claiming runs by lock file.
- ray:   one Ray task per run, each asking for `num_gpus` (a fraction lets tiny models share a GPU);
         runs on a local multi-GPU box or a cluster (`ray_address`), writing into the shared run folder.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import claims, env, store
from bench.errors import BenchError
from bench.result import RunResult
from bench.spec import RunSpec

Callback = Callable[[RunSpec, RunResult], None]


def failed_result(run: RunSpec, err: BaseException, device: str) -> RunResult:
    msg = f"{type(err).__name__}: {err}"
    if isinstance(err, torch.cuda.OutOfMemoryError):
        msg = f"CUDA out of memory ({str(err).splitlines()[0][:200]}); lower budget.batch_size or the adapter's size"
    return RunResult(
        run_id=run.run_id,
        suite=run.suite,
        adapter=run.adapter,
        strategy=run.strategy,
        task=run.strategy_spec.task,
        seed=run.seed,
        status="failed",
        error=msg.strip()[:2000],
        traceback=traceback.format_exc()[-20000:],
        spec=run.resolved(),
        env={"versions": env.versions(), "device": device, "git_commit": env.git_commit()},
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


@dataclasses.dataclass
class UnrecordedFailure(RunResult):
    """A failed run whose result.json could not be written either; `unrecorded` says why. The suite
    reports it once at the end instead of dying of it."""

    unrecorded: str = ""


def _minimal_failure(run: RunSpec, err: BaseException, why: BaseException) -> RunResult:
    """A failed result built from plain fields only (failed_result itself raised `why`)."""
    return RunResult(
        run_id=run.run_id,
        suite=run.suite,
        adapter=run.adapter,
        strategy=run.strategy,
        task=str(run.strategy_spec.task),
        seed=run.seed,
        status="failed",
        error=f"{type(err).__name__}: {str(err)[:1000]} (recording it raised {type(why).__name__})",
    )


def record_failure(run: RunSpec, err: BaseException, device: str, suite_dir: Path) -> RunResult:
    """Write `err` as the run's failed result.json. If even that fails (a folder in the file's place, a
    read-only or full disk, a value JSON cannot hold), an UnrecordedFailure says why, for the suite to
    report once at the end; this never raises."""
    try:
        res = failed_result(run, err, device)
    except Exception as why:
        res = _minimal_failure(run, err, why)
    path = Path(suite_dir) / run.run_id / "result.json"
    try:
        store.atomic_write_json(path, store.json_safe(res.to_json()))  # json_safe: a NaN in the spec must not stop it
    except Exception as why:
        detail = f"{why.strerror} ({why.filename or path})" if isinstance(why, OSError) else f"{type(why).__name__}: {why}"
        fields = {f.name: getattr(res, f.name) for f in dataclasses.fields(RunResult)}
        return UnrecordedFailure(**fields, unrecorded=f"could not write {path}: {detail}"[:600])
    return res


def execute_one(run: RunSpec, suite_dir: Path, device_name: str, cache_dir: Path, progress: bool = True) -> RunResult:
    """Run one spec, turning any exception into a `failed` result.json. Safe to call in a worker process."""
    from bench.runner import run_one

    device: torch.device | None = None
    try:
        device = env.pick_device(device_name)
        return run_one(run, Path(suite_dir), device, Path(cache_dir), progress)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # isolation: record and carry on
        return record_failure(run, err, env.device_name(device) if device is not None else device_name, suite_dir)
    finally:
        # Free what the run held so that a long suite does not grow (and an OOM does not poison the next run).
        gc.collect()
        if device is not None and device.type == "cuda":
            torch.cuda.empty_cache()


def run_local(
    runs: list[RunSpec],
    suite_dir: Path,
    device: str,
    cache_dir: Path,
    on_done: Callback,
    progress: bool = True,
    *,
    snap: claims.Snapshot | None = None,
    force: bool = False,
    on_other: Callback | None = None,
) -> None:
    """One run after another in this process. Runs are claimed with lock files (bench.claims), so other
    launchers on the same folder split the work with this one instead of repeating it."""

    def execute(run: RunSpec) -> RunResult:
        return execute_one(run, suite_dir, device, cache_dir, progress)

    claims.work(runs, suite_dir, execute, on_done, snap=snap, force=force, on_other=on_other)


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
    from bench.adapter import get_adapter

    shipped = [str(Path(__file__).resolve().parent)]  # the bench package folder
    for key in sorted({r.adapter for r in runs}):
        cls = get_adapter(key, where=f"adapters.{key}")  # validated on the driver already: a registry hit
        for base in cls.__mro__:  # a user's adapter may subclass a bundled one: ship that package too
            mod = sys.modules.get(base.__module__.split(".")[0])
            path = _module_path(mod) if mod is not None else None
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
    runs: list[RunSpec],
    suite_dir: Path,
    device: str,
    cache_dir: Path,
    on_done: Callback,
    progress: bool = True,
    *,
    address: str | None = None,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    snap: claims.Snapshot | None = None,
    force: bool = False,
    on_other: Callback | None = None,
) -> None:
    """One Ray task per run. Joins the cluster at `address` (or an already initialised Ray, or starts a
    local one). Workers write into `suite_dir`, which must be on a file system every node shares.
    Each task asks Ray for as many CPUs as its run's `runner.threads` (resolved on the driver by
    bench.fingerprint.stamp, the same count a local run uses), unless `num_cpus` says otherwise: the thread
    count is part of the run's identity, and a task that gets fewer cores than threads only oversubscribes.
    The driver claims each run's lock before it submits the run and holds it until the result is back
    (bench.claims), so other launchers on the same folder, Ray or local, split the runs with it."""
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
    suite_dir, cache_dir = Path(suite_dir).resolve(), Path(cache_dir).resolve()
    cluster_cpus = ray.cluster_resources().get("CPU", 1)
    remote = ray.remote(num_gpus=num_gpus, max_retries=0)(execute_one)

    def submit(run: RunSpec) -> Any:
        # Never more than the cluster has (the task could not be scheduled); threads stay as resolved.
        cpus = num_cpus if num_cpus is not None else min(float(run.runner.threads or 1), cluster_cpus)
        return remote.options(num_cpus=cpus, runtime_env=task_env).remote(run, str(suite_dir), device, str(cache_dir), False)

    snap = claims.snapshot(runs, suite_dir) if snap is None else snap
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


EXECUTORS = {"local": run_local, "ray": run_ray}
