"""The local executor: one run after another in this process, on one device (a laptop, one GPU, a notebook)."""

from __future__ import annotations

from bench.exec import outcome
from bench.exec.outcome import Dispatch
from bench.store import claims
from bench.store.result import RunResult
from bench.suite.spec import RunSpec


def run_local(runs: list[RunSpec], d: Dispatch) -> None:
    """One run after another in this process. Runs are claimed with lock files (bench.store.claims), so other
    launchers on the same folder split the work with this one instead of repeating it."""

    def execute(run: RunSpec) -> RunResult:  # looked up at call time, so a benchmark can wrap execute_one
        return outcome.execute_one(run, d.suite_dir, d.device, d.cache_dir, d.progress)

    claims.work(runs, d.suite_dir, execute, d.on_done, snap=d.snap, force=d.force, on_other=d.on_other)
