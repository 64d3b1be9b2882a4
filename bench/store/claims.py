"""Which launcher runs which run, when several share one `--out` folder.

Every process that executes runs (a `bench run`, each `--jobs` worker) goes through `work()`:

- It claims a run with its lock file, `<suite_dir>/.locks/<run_id>.lock` (bench.store.locks: PID, host, start
  time, heartbeat; a lock whose holder died is taken over, and the run resumes from its checkpoint).
- A run locked by a live holder is skipped and come back to once the others are tried.
- A run whose result.json changed since this launcher started (the `snapshot`) was finished by another
  process: it is reported, never run again, even when its status is `failed`.
- Before a launcher writes results.csv, summary.csv and the report, `wait_for_grid` waits until no run of
  its grid is held by a live process; the tables are then written under `tables_lock`, one launcher at a
  time, so every launcher ends with the same, complete tables.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.store import locks
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.spec import RunSpec

Signature = tuple[int, int, int] | None
Snapshot = dict[str, Signature]
Callback = Callable[[RunSpec, RunResult], None]

LOCKS = ".locks"
POLL = 1.0  # seconds between looks at runs held by others


def run_lock(suite_dir: Path, run_id: str) -> Path:
    return Path(suite_dir) / LOCKS / f"{run_id}.lock"


def tables_lock(suite_dir: Path) -> Path:
    return Path(suite_dir) / LOCKS / "tables.lock"


def signature(suite_dir: Path, run_id: str) -> Signature:
    """Identity of a run's result.json as it is now (None when absent): any rewrite changes it."""
    try:
        st = (Path(suite_dir) / run_id / "result.json").stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def snapshot(runs: list[RunSpec], suite_dir: Path) -> Snapshot:
    """What every run's result looked like when this launcher started."""
    return {r.run_id: signature(suite_dir, r.run_id) for r in runs}


def _finished_elsewhere(run: RunSpec, suite_dir: Path, snap: Snapshot) -> RunResult | None:
    if signature(suite_dir, run.run_id) == snap.get(run.run_id):
        return None
    res = store.read_result(Path(suite_dir) / run.run_id)
    return res  # None while the new file is not a valid result: keep waiting for it


def claim(run: RunSpec, suite_dir: Path, snap: Snapshot, force: bool = False) -> locks.Lock | RunResult | None:
    """Try to take `run` for this launcher: its held Lock (with `force`, its old folder already removed), or
    the RunResult another process finished it with, or None while a live process holds it."""
    other = _finished_elsewhere(run, suite_dir, snap)
    if other is not None:
        return other
    lock = locks.try_acquire(run_lock(suite_dir, run.run_id))
    if lock is None:
        return None
    other = _finished_elsewhere(run, suite_dir, snap)  # finished between our look and our lock
    if other is not None:
        lock.release()
        return other
    if force:  # only now that it is ours: never delete a folder another process writes
        shutil.rmtree(Path(suite_dir) / run.run_id, ignore_errors=True)
    return lock


def work(
    runs: list[RunSpec],
    suite_dir: Path,
    execute: Callable[[RunSpec], RunResult],
    on_done: Callback,
    *,
    snap: Snapshot | None = None,
    force: bool = False,
    on_other: Callback | None = None,
    poll: float = POLL,
) -> None:
    """Execute every run of `runs` that no other process has finished or is running, in order, coming back
    to those held by live processes until each is either done here or finished elsewhere."""
    suite_dir = Path(suite_dir)
    snap = snapshot(runs, suite_dir) if snap is None else snap
    pending = list(runs)
    while pending:
        progressed = False
        for run in list(pending):
            got = claim(run, suite_dir, snap, force)
            if got is None:
                continue  # a live process runs it: come back to it
            pending.remove(run)
            if isinstance(got, RunResult):
                (on_other or on_done)(run, got)
                continue
            with got:
                res = execute(run)
            progressed = True
            on_done(run, res)
        if pending and not progressed:
            time.sleep(poll)


def held_by_others(runs: list[RunSpec], suite_dir: Path) -> list[RunSpec]:
    return [r for r in runs if locks.is_held(run_lock(suite_dir, r.run_id))]


def wait_for_grid(runs: list[RunSpec], suite_dir: Path, echo: Callable[[str], None] | None = None, poll: float = POLL) -> None:
    """Return once no run of `runs` is held by a live process (a dead holder's lock does not count)."""
    told = False
    while held := held_by_others(runs, suite_dir):
        if echo is not None and not told:
            echo(f"waiting for {len(held)} run(s) held by other launchers before writing the tables")
            told = True
        time.sleep(poll)


def tidy(suite_dir: Path) -> None:
    """Remove the lock folder once it is empty, so a finished suite folder holds only runs and tables. A
    launcher that needs it again recreates it (bench.store.locks retries a lock whose folder vanished)."""
    with contextlib.suppress(OSError):  # not empty: another launcher is still at work
        (Path(suite_dir) / LOCKS).rmdir()
