"""Executors hand RunSpecs to runners. A crash in one run is recorded as `failed` and never stops the others.

- local: one process, runs in sequence on one device (the default; best for one GPU or a laptop).
- ray:   one Ray task per run, each asking for `num_gpus` (a fraction lets tiny models share a GPU);
         runs on a local multi-GPU box or a cluster (`ray_address`), writing into the shared run folder.
"""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import env, store
from bench.suite import RunSpec

Callback = Callable[[RunSpec, dict], None]


def failed_result(run: RunSpec, err: BaseException, device: str) -> dict[str, Any]:
    msg = f"{type(err).__name__}: {err}"
    if isinstance(err, torch.cuda.OutOfMemoryError):
        msg = f"CUDA out of memory ({str(err).splitlines()[0][:200]}); lower budget.batch_size or the adapter's size"
    return {
        "run_id": run.run_id,
        "suite": run.suite,
        "adapter": run.adapter,
        "strategy": run.strategy,
        "task": run.strategy_spec.task,
        "seed": run.seed,
        "status": "failed",
        "error": msg.strip()[:2000],
        "traceback": traceback.format_exc()[-20000:],
        "metrics": {},
        "not_applicable": {},
        "spec": run.resolved(),
        "env": {"versions": env.versions(), "device": device, "git_commit": env.git_commit()},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def execute_one(run: RunSpec, suite_dir: Path, device_name: str, cache_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Run one spec, turning any exception into a `failed` result.json. Safe to call in a worker process."""
    from bench.runner import run_one

    device = env.pick_device(device_name)
    try:
        return run_one(run, Path(suite_dir), device, Path(cache_dir), progress)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # isolation: record and carry on
        res = failed_result(run, err, env.device_name(device))
        store.atomic_write_json(Path(suite_dir) / run.run_id / "result.json", res)
        return res
    finally:
        # Free what the run held so that a long suite does not grow (and an OOM does not poison the next run).
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def run_local(runs: list[RunSpec], suite_dir: Path, device: str, cache_dir: Path, on_done: Callback, progress: bool = True) -> None:
    for run in runs:
        on_done(run, execute_one(run, suite_dir, device, cache_dir, progress))


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
    from bench.errors import BenchError

    try:
        import ray
    except ImportError:
        raise BenchError("--executor ray needs Ray", fix="pip install 'bench-pretrain[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    gpus = num_gpus if num_gpus is not None else (1.0 if device in ("auto", "cuda") and ray.cluster_resources().get("GPU", 0) else 0.0)
    remote = ray.remote(num_gpus=gpus, num_cpus=num_cpus, max_retries=0)(execute_one)
    pending = {remote.remote(run, str(suite_dir), device, str(cache_dir), False): run for run in runs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            run = pending.pop(ref)
            try:
                res = ray.get(ref)
            except Exception as err:  # the worker itself died (e.g. killed): record it, keep going
                res = failed_result(run, err, "ray worker")
                store.atomic_write_json(Path(suite_dir) / run.run_id / "result.json", res)
            on_done(run, res)


EXECUTORS = {"local": run_local, "ray": run_ray}
