"""What every executor shares: running one spec with any exception turned into a `failed` result
(`execute_one`), recording a failure even when the disk fights back (`record_failure`), and `Dispatch`, the
one set of arguments every executor takes. A crash in one run never stops the others.
"""

from __future__ import annotations

import dataclasses
import gc
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from bench.core import env
from bench.store import claims
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.spec import RunSpec

Callback = Callable[[RunSpec, RunResult], None]


@dataclasses.dataclass
class Dispatch:
    """Where and how an executor runs a list of specs; the same for every row of bench.exec.table.EXECUTORS.

    `on_done(run, result)` is called in the launcher's process as each run ends; `on_other` for a run that
    another launcher on the same folder finished (`snap`: the folder's state when this launcher started, so a
    result that appears later is known to be another's); `force` reruns finished runs."""

    suite_dir: Path
    device: str
    cache_dir: Path
    on_done: Callback
    progress: bool = True
    snap: claims.Snapshot | None = None
    force: bool = False
    on_other: Callback | None = None


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
