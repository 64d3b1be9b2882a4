"""The executors as rows of one table. `bench run` picks a row from `--executor` and `--jobs`, and calls
`row.run(runs, dispatch, **options)`: every row takes the same `Dispatch` and claims each run's lock before it
runs it, so rows can be mixed on one run folder and give identical results.

- local: one process, runs in sequence on one device (the default; best for one GPU or a laptop).
- jobs:  `--jobs K` (K > 1): K local worker processes on one device, each claiming runs by lock file.
- ray:   one Ray task per run; a local multi-GPU box or a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.core.errors import BenchError
from bench.exec.jobs import check_jobs, run_jobs
from bench.exec.local import run_local
from bench.exec.ray import run_ray


@dataclass(frozen=True)
class Executor:
    name: str
    description: str
    run: Callable[..., None]  # (runs, Dispatch, **options) -> None
    options: tuple[str, ...] = ()  # the keyword options `run` takes beyond the Dispatch


EXECUTORS: dict[str, Executor] = {
    e.name: e
    for e in (
        Executor("local", "one run after another in this process, on one device", run_local),
        Executor("jobs", "K worker processes sharing this machine's device (--executor local --jobs K)", run_jobs, ("jobs",)),
        Executor("ray", "one Ray task per run, on a local Ray or a cluster", run_ray, ("address", "num_gpus", "num_cpus")),
    )
}
CLI_CHOICES = ("local", "ray")  # `jobs` is chosen by --jobs K > 1 with the local executor


def choose(executor: str, jobs: int | str, options: dict[str, Any]) -> tuple[Executor, dict[str, Any]]:
    """The row and its options for `--executor NAME --jobs K [options]` (K resolved by jobs.resolve_jobs; "auto"
    only validates); a bad combination is exit 2."""
    if executor not in CLI_CHOICES:
        raise BenchError(f"--executor {executor}: unknown executor", fix=f"use one of {', '.join(CLI_CHOICES)}")
    check_jobs(jobs, executor)
    packed = isinstance(jobs, int) and jobs > 1
    row = EXECUTORS["jobs" if executor == "local" and packed else executor]
    opts = {**options, **({"jobs": jobs} if row.name == "jobs" else {})}
    unknown = sorted(set(opts) - set(row.options))
    if unknown:
        raise BenchError(f"the {row.name} executor takes no option {', '.join(unknown)}", fix="drop it, or use an executor that takes it")
    return row, opts


__all__ = ["CLI_CHOICES", "EXECUTORS", "Executor", "choose"]
