"""Executors hand RunSpecs to runners. A crash in one run is recorded as `failed` and never stops the others.

- local: one process, runs in sequence on one device (the default; best for one GPU or a laptop).
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

from bench import env, store
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


def execute_one(run: RunSpec, suite_dir: Path, device_name: str, cache_dir: Path, progress: bool = True) -> RunResult:
    """Run one spec, turning any exception into a `failed` result.json. Safe to call in a worker process."""
    from bench.runner import run_one

    device = env.pick_device(device_name)
    try:
        return run_one(run, Path(suite_dir), device, Path(cache_dir), progress)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # isolation: record and carry on
        res = failed_result(run, err, env.device_name(device))
        store.write_result(Path(suite_dir) / run.run_id, res)
        return res
    finally:
        # Free what the run held so that a long suite does not grow (and an OOM does not poison the next run).
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def run_local(runs: list[RunSpec], suite_dir: Path, device: str, cache_dir: Path, on_done: Callback, progress: bool = True) -> None:
    for run in runs:
        on_done(run, execute_one(run, suite_dir, device, cache_dir, progress))


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


def _worker_runner(run: RunSpec, cpus: float) -> RunSpec:
    # Each Ray task gets `cpus` cores; letting every task's torch use all cores of the node oversubscribes
    # them (tiny CPU ops then run ~10x slower). The runner block is not part of run_id, so identity holds.
    if run.runner.threads is not None:
        return run
    return dataclasses.replace(run, runner=dataclasses.replace(run.runner, threads=max(1, int(cpus))))


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
    num_cpus: float = 1,
) -> None:
    """One Ray task per run. Joins the cluster at `address` (or an already initialised Ray, or starts a
    local one). Workers write into `suite_dir`, which must be on a file system every node shares."""
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
    remote = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=0)(execute_one).options(runtime_env=task_env)
    pending = {remote.remote(_worker_runner(run, num_cpus), str(suite_dir), device, str(cache_dir), False): run for run in runs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                run = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as err:  # the worker itself died (killed, lost node): record it, keep going
                    res = failed_result(run, err, "ray worker")
                    store.write_result(suite_dir / run.run_id, res)
                on_done(run, res)
    except BaseException:
        # Ctrl-C (or any driver error): stop the runs still queued or running; their checkpoints let a
        # rerun resume them.
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


EXECUTORS = {"local": run_local, "ray": run_ray}
