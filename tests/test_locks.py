"""Lock files (bench.store.locks) and run claims (bench.store.claims): a live holder keeps its lock, a dead or silent one
loses it, a take-over happens once, and `claims.work` never runs what another process holds or finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.store import claims, locks
from bench.store import runs as store
from bench.store.result import RunResult


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(path: Path, **holder) -> None:
    body = {"pid": os.getpid(), "host": locks._HOST, "proc_start": locks._proc_start(os.getpid()), "started": time.time()}
    body.update(token="planted", **holder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def test_a_held_lock_is_not_given_twice(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = locks.try_acquire(path)
    assert lock is not None
    holder = locks.read_holder(path)
    assert holder["pid"] == os.getpid() and holder["host"] == locks._HOST and holder["token"] == lock.token
    assert locks.try_acquire(path) is None  # a live holder (this very process)
    assert locks.is_held(path)
    lock.release()
    assert not path.exists() and not locks.is_held(path)
    again = locks.try_acquire(path)
    assert again is not None
    again.release()


def test_dead_holder_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    _plant(path, pid=_dead_pid(), proc_start=None)
    assert locks.is_stale(path)
    lock = locks.try_acquire(path)
    assert lock is not None and locks.read_holder(path)["token"] == lock.token
    lock.release()


def test_reused_pid_is_a_dead_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    if locks._proc_start(os.getpid()) is None:
        pytest.skip("no /proc: PID reuse cannot be told apart here")
    _plant(path, proc_start="1")  # our PID, but a process that started at another time
    assert locks.is_stale(path)


def test_live_holder_on_another_host_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    _plant(path, host="another-host", pid=1)
    assert not locks.is_stale(path, stale_after=60)
    assert locks.try_acquire(path, stale_after=60) is None
    old = time.time() - 120
    os.utime(path, (old, old))  # no heartbeat for two minutes
    assert locks.is_stale(path, stale_after=60)
    lock = locks.try_acquire(path, stale_after=60)
    assert lock is not None
    lock.release()


def test_unreadable_lock_waits_for_a_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text("")  # its writer was killed between create and write
    assert not locks.is_stale(path)
    old = time.time() - locks.UNREADABLE_GRACE - 1
    os.utime(path, (old, old))
    assert locks.is_stale(path)


def test_heartbeat_keeps_a_lock_fresh(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(locks, "HEARTBEAT", 0.05)
    monkeypatch.setattr(locks, "_BEAT", None)  # a fresh thread that reads the shortened interval
    path = tmp_path / "x.lock"
    lock = locks.try_acquire(path)
    old = time.time() - 1000
    os.utime(path, (old, old))
    deadline = time.time() + 10
    while path.stat().st_mtime < time.time() - 100 and time.time() < deadline:
        time.sleep(0.05)
    assert path.stat().st_mtime > time.time() - 100
    lock.release()


def test_take_over_happens_once(tmp_path: Path) -> None:
    """Many threads find the same stale lock at once: exactly one gets it."""
    path = tmp_path / "x.lock"
    _plant(path, pid=_dead_pid(), proc_start=None)
    got: list[locks.Lock] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        lock = locks.try_acquire(path)
        if lock is not None:
            got.append(lock)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 1
    got[0].release()


def test_build_once_waits_for_the_builder(tmp_path: Path) -> None:
    path, entry = tmp_path / "e.lock", tmp_path / "entry"
    built: list[str] = []

    def load() -> str | None:
        return entry.read_text() if entry.exists() else None

    def build() -> str:
        built.append(threading.current_thread().name)
        time.sleep(0.3)
        entry.write_text("value")
        return "value"

    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(locks.build_once(path, load, build, poll=0.02))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["value"] * 4 and len(built) == 1 and not path.exists()


def _runs(n: int) -> list:
    return [SimpleNamespace(run_id=f"r{i}") for i in range(n)]


def _result(suite_dir: Path, run_id: str, status: str = "completed") -> RunResult:
    res = RunResult(run_id=run_id, suite="s", adapter="dummy", strategy="scratch", task="scratch", seed=0, status=status)
    store.write_result(suite_dir / run_id, res)
    return res


def test_work_skips_held_runs_and_reports_what_others_finish(tmp_path: Path) -> None:
    """r1 is held by a live process (a thread here): work() runs r0 and r2, comes back to r1, and reports
    the other process's result for it instead of running it, even though that result is `failed`."""
    runs = _runs(3)
    snap = claims.snapshot(runs, tmp_path)
    other = locks.try_acquire(claims.run_lock(tmp_path, "r1"))
    executed, seen_other = [], []

    def execute(run) -> dict:
        executed.append(run.run_id)
        return _result(tmp_path, run.run_id)

    def finish_r1_later() -> None:
        time.sleep(0.5)
        _result(tmp_path, "r1", status="failed")
        other.release()

    t = threading.Thread(target=finish_r1_later)
    t.start()
    claims.work(
        runs,
        tmp_path,
        execute,
        lambda r, res: None,
        snap=snap,
        on_other=lambda r, res: seen_other.append((r.run_id, res.status)),
        poll=0.05,
    )
    t.join()
    assert executed == ["r0", "r2"]
    assert seen_other == [("r1", "failed")]


def test_work_takes_over_a_dead_launchers_run(tmp_path: Path) -> None:
    runs = _runs(1)
    _plant(claims.run_lock(tmp_path, "r0"), pid=_dead_pid(), proc_start=None)
    executed = []
    claims.work(runs, tmp_path, lambda r: executed.append(r.run_id) or _result(tmp_path, r.run_id), lambda r, res: None, poll=0.05)
    assert executed == ["r0"]
    assert not claims.held_by_others(runs, tmp_path)


def test_wait_for_grid_returns_when_holders_finish(tmp_path: Path) -> None:
    runs = _runs(2)
    lock = locks.try_acquire(claims.run_lock(tmp_path, "r0"))
    threading.Timer(0.3, lock.release).start()
    t0 = time.perf_counter()
    claims.wait_for_grid(runs, tmp_path, poll=0.05)
    assert time.perf_counter() - t0 >= 0.25 and not claims.held_by_others(runs, tmp_path)


def test_sweep_removes_only_stale_locks(tmp_path: Path) -> None:
    """A launcher killed after its run finished, before it released the lock, leaves a stale lock that no
    later launcher would take over (the run is done): sweep removes it, and leaves live ones alone."""
    _plant(tmp_path / "dead.lock", pid=_dead_pid(), proc_start=None)
    live = locks.try_acquire(tmp_path / "live.lock")
    assert locks.sweep(tmp_path) == 1
    assert not (tmp_path / "dead.lock").exists() and (tmp_path / "live.lock").exists()
    live.release()


def test_tidy_removes_only_an_empty_lock_folder(tmp_path: Path) -> None:
    lock = locks.try_acquire(claims.run_lock(tmp_path, "r0"))
    claims.tidy(tmp_path)
    assert (tmp_path / claims.LOCKS).is_dir()  # a lock is still held: the folder stays
    lock.release()
    claims.tidy(tmp_path)
    assert not (tmp_path / claims.LOCKS).exists()
    again = locks.try_acquire(claims.run_lock(tmp_path, "r0"))  # recreated when needed
    assert again is not None
    again.release()
