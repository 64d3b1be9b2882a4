"""`bench run --jobs K`: K worker processes share one device (the CPU's cores, or one GPU).

A suite is many tiny runs, and one tiny run leaves a GPU (or a many-core CPU) mostly idle. Each worker is a
separate process that goes through the same lock-file claims as independent launchers (bench.store.claims): two
workers never run the same run, and a pretraining or feature cache entry is built by one while the others
wait for it (an extractor's members are split between them: bench.metrics.members). Each worker is a fork of a
server that imported the harness once, started as `bench run` starts (bench.exec.forkserver). Run folders, resume, kill -9 safety and the cache are exactly those of a
sequential run, and so is every number when the thread count is the same: a run's numbers do not depend on
which process runs it or what runs beside it.

A run's thread count never depends on K: `runner.threads: null` is one thread (bench.core.env), resolved into
the run id before K is read, so launchers with different `--jobs` on one folder share their run ids and split
the runs. `--jobs auto` (the default) is one worker per usable core (CPU affinity and cgroup quota) divided by
the runs' threads, never more workers than runs; on a GPU, and with Ray, it is 1.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import sys
from pathlib import Path
from typing import Any

from bench.core import env, interrupt
from bench.core.errors import BenchError
from bench.exec import forkserver
from bench.exec.forkserver import JOBS_VARIABLE, parse_jobs  # noqa: F401  (the --jobs value, parsed without torch)
from bench.exec.outcome import Dispatch, execute_one, failed_result
from bench.store import claims, locks
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.spec import RunSpec


def check_jobs(jobs: int | str, executor: str) -> None:
    """`jobs`: "auto" or a whole number >= 1; a number above 1 needs the local executor."""
    if jobs == "auto":
        return
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise BenchError(f"--jobs {jobs}: not a number of worker processes", fix="use auto, or a whole number >= 1, e.g. --jobs 2")
    if jobs > 1 and executor != "local":
        raise BenchError(f"--jobs {jobs} only applies to the local executor", fix="drop --jobs, or use --executor local")


def resolve_jobs(jobs: int | str, executor: str, device: Any, runs: int, threads: int | None = None) -> int:
    """Worker processes for `runs` runs: `jobs`, or for "auto" the usable cores // the runs' threads on the CPU
    (1 on a GPU, where the runs share one device, and with Ray, which places runs itself); never more than
    the runs, and 1 means this process, in sequence."""
    check_jobs(jobs, executor)
    if jobs == "auto":
        if executor != "local" or str(device).split(":")[0] != "cpu":
            return 1
        jobs = env.usable_cores() // max(1, threads or env.DEFAULT_THREADS)
    return max(1, min(int(jobs), runs))


def with_threads(run: RunSpec, threads: int) -> RunSpec:
    if run.runner.threads is not None:
        return run
    return dataclasses.replace(run, runner=dataclasses.replace(run.runner, threads=threads))


def user_modules(runs: list[RunSpec]) -> list[tuple[str, str]]:
    """(module, folder) of every `module:Class` adapter and `module:function` data set the runs name, as this
    process imported them (validation looks next to the suite file first). A spawned worker starts with a fresh
    sys.path, so it imports each again from that folder before its first run."""
    names = {r.adapter for r in runs} | {r.dataset.name for r in runs}
    names |= {r.strategy_spec.source.name for r in runs if r.strategy_spec.source is not None}
    out = []
    for name in sorted(n for n in names if ":" in n):
        mod_name = name.partition(":")[0]
        file = getattr(sys.modules.get(mod_name.split(".")[0]), "__file__", None)
        if file:  # a package's folder sits one level further up than its __init__.py
            path = Path(file).resolve()
            out.append((mod_name, str(path.parent.parent if path.name == "__init__.py" else path.parent)))
    return out


def _preload(modules: list[tuple[str, str]]) -> None:
    from bench.adapter.base import import_from

    for mod_name, folder in modules:
        try:
            import_from(mod_name, (folder,))
        except Exception:  # noqa: S112  the run that needs it fails with its own one-line error
            continue


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)
PARENT_POLL = 1.0  # seconds between the fallback's looks at the parent
POLL_RESULTS = 0.1  # seconds the launcher waits for a result before it looks whether its workers are alive


def die_with_parent(parent: int) -> None:
    """Make this worker die with its launcher (`parent`), however the launcher ends (SIGTERM, kill -9, a crash).
    A spawned worker is the launcher's child; a worker forked by the fork server (bench.exec.forkserver) is the
    server's, and the server exits when the launcher does (its pipe from the launcher closes). Either way: the
    kernel's parent-death signal on Linux, tied to the worker's own parent, and a thread that watches both that
    parent and the launcher everywhere (the signal is missed if the parent died before it was set, and does not
    exist off Linux)."""
    import contextlib
    import ctypes
    import os
    import signal
    import sys
    import threading
    import time

    origin = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the thread below still does it
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    def gone() -> bool:
        if os.getppid() != origin:  # re-parented: the launcher (or the fork server that follows it) is gone
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, but not ours to signal
            return False
        return False

    def watch() -> None:
        while True:
            if gone():
                os._exit(1)
            time.sleep(PARENT_POLL)

    if gone():
        os._exit(1)
    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()


def _worker(
    runs: list[RunSpec],
    suite_dir: str,
    device: str,
    cache_dir: str,
    snap: claims.Snapshot,
    force: bool,
    out: Any,
    modules: list[tuple[str, str]],
    parent: int = 0,
    wait: bool = True,
) -> None:
    """One worker process: claim and run what nobody else has, report each result to the parent. It dies
    with its launcher, and leaves Ctrl-C to it: the launcher stops its workers itself, without a traceback."""
    if parent:
        die_with_parent(parent)
    interrupt.ignore_in_child()
    _preload(modules)

    def execute(run: RunSpec) -> RunResult:
        return execute_one(run, Path(suite_dir), device, Path(cache_dir), progress=False)

    claims.work(
        runs,
        Path(suite_dir),
        execute,
        lambda run, res: out.put(("done", run.run_id, res)),
        snap=snap,
        force=force,
        on_other=lambda run, res: out.put(("other", run.run_id, res)),
        wait=wait,  # a worker that leaves a run held by a sibling or another launcher: the parent sorts them out
    )


def run_jobs(runs: list[RunSpec], d: Dispatch, jobs: int = 2) -> None:
    """Run `runs` on K = `jobs` worker processes; `d.on_done` is called in this process as each finishes."""
    check_jobs(jobs, "local")
    suite_dir, cache_dir, device, force = Path(d.suite_dir).resolve(), Path(d.cache_dir).resolve(), d.device, d.force
    on_done, on_other = d.on_done, d.on_other
    snap = claims.snapshot(runs, suite_dir) if d.snap is None else d.snap
    runs = [with_threads(r, env.DEFAULT_THREADS) for r in runs]  # as stamp() resolves them: never K-dependent
    by_id = {r.run_id: r for r in runs}
    ctx = forkserver.context()  # never fork this process, which may hold CUDA or OpenMP state: fork the server
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(runs, str(suite_dir), device, str(cache_dir), snap, force, out, user_modules(runs), os.getpid(), d.wait),
            name=f"bench-job-{i}",
        )
        for i in range(min(jobs, len(runs)))
    ]
    reported: set[str] = set()
    # A worker that waits for a sibling's run sees it finished "by another process" too; only once every
    # worker has exited is a run that no worker ran known to be another launcher's.
    elsewhere: dict[str, RunResult] = {}

    def deliver(kind: str, run_id: str, res: RunResult) -> None:
        if kind == "other" and on_other is not None:
            elsewhere.setdefault(run_id, res)
        elif run_id not in reported:
            reported.add(run_id)
            on_done(by_id[run_id], res)

    try:
        with interrupt.ignored_by_children():  # a Ctrl-C during a worker's start-up is the launcher's alone
            for p in procs:
                p.start()
        while True:  # short polls: the suite's tables wait on the last worker's exit being noticed
            try:
                deliver(*out.get(timeout=POLL_RESULTS))
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
        while True:  # what the last workers sent just before they exited
            try:
                deliver(*out.get(timeout=POLL_RESULTS / 2))
            except queue.Empty:
                break
    except BaseException:  # interrupted: stop the workers now (their runs resume from their checkpoints)
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    for run_id, res in elsewhere.items():
        if run_id not in reported:
            reported.add(run_id)
            on_other(by_id[run_id], res)  # type: ignore[misc]  # only filled when on_other is given
    _record_lost(runs, suite_dir, snap, procs, reported, deliver, d.on_elsewhere)


def _record_lost(
    runs: list[RunSpec], suite_dir: Path, snap: claims.Snapshot, procs: list, reported: set[str], deliver, on_elsewhere=None
) -> None:
    """Runs no worker reported because the workers died (killed, out of memory): recorded as failed, as the
    Ray executor does, unless another process holds or finished them. A rerun resumes them from checkpoints."""
    codes = sorted({p.exitcode for p in procs if p.exitcode})
    for run in runs:
        if run.run_id in reported:
            continue
        other = store.read_result(suite_dir / run.run_id)
        if other is not None and claims.signature(suite_dir, run.run_id) != snap.get(run.run_id):
            deliver("done", run.run_id, other)  # finished by a process we never heard from
            continue
        lock = locks.try_acquire(claims.run_lock(suite_dir, run.run_id))
        if lock is None:  # another launcher runs it
            if on_elsewhere is not None:
                on_elsewhere(run, claims.holder_text(claims.run_lock(suite_dir, run.run_id)) or "another launcher")
            continue
        with lock:
            err = RuntimeError(f"its --jobs worker process died (exit codes {codes or 'unknown'}); rerun to resume it")
            res = failed_result(run, err, device="jobs worker")
            store.write_result(suite_dir / run.run_id, res)
        deliver("done", run.run_id, res)
