"""Lock files that a `kill -9` cannot leave stuck: who runs a run, who builds a cache entry.

Several launchers (two terminals, Slurm jobs, `bench run --jobs K`) may share one `--out` folder. Each run and
each cache entry is claimed with a lock file:

- Created with O_CREAT|O_EXCL, which is atomic on local file systems and on NFSv3+ (flock is not reliable
  on network file systems, and a kernel lock is no help across hosts).
- It holds the holder's PID, host, process start time and a random token. A daemon thread touches every
  held lock every HEARTBEAT seconds, so its mtime says the holder is alive.
- A lock is stale, and taken over, when its holder is on this host and that process is gone (or the PID
  now belongs to a process started at another time), or when it had no heartbeat for `stale_after`
  seconds (a holder on another host, or a hung one). An unreadable lock (a holder killed between create
  and write) is stale after a short grace.
- Taking over goes through a short-lived `<lock>.break` lock, and re-reads the token under it, so two
  processes that both judge a lock stale never both delete it (one could otherwise delete the other's
  fresh lock).

Nothing here imports the rest of bench, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HEARTBEAT = 5.0  # seconds between touches of every held lock
# Without a heartbeat for this long a lock is stale, whoever holds it. It must exceed the heartbeat by far
# (a loaded host delays the thread) and any clock skew between hosts sharing the folder.
STALE_AFTER = float(os.environ.get("BENCH_LOCK_STALE_SECONDS", "120"))
UNREADABLE_GRACE = 10.0  # a lock with no parsable content (killed mid-write) is stale after this long
POLL = 0.5  # seconds between looks at a lock held by someone else

_HOST = socket.gethostname()


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None off Linux: tells PID reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class Lock:
    """A held lock. Release it (or use it as a context manager); the heartbeat thread keeps it fresh."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token
        self.lost = False  # set when the heartbeat finds another holder's file: we were judged stale

    def release(self) -> None:
        _HELD.pop(self.path, None)
        holder = read_holder(self.path)
        if holder is not None and holder.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: dict[Path, Lock] = {}
_BEAT: threading.Thread | None = None
_BEAT_GUARD = threading.Lock()


def _heartbeat() -> None:
    while True:
        time.sleep(HEARTBEAT)
        for lock in list(_HELD.values()):
            holder = read_holder(lock.path)
            if holder is None or holder.get("token") != lock.token:
                # Judged stale and taken over (we were silent too long): never touch the new holder's file.
                lock.lost = True
                _HELD.pop(lock.path, None)
                continue
            with contextlib.suppress(OSError):
                os.utime(lock.path)


def _start_heartbeat() -> None:
    global _BEAT
    with _BEAT_GUARD:
        if _BEAT is None or not _BEAT.is_alive():
            _BEAT = threading.Thread(target=_heartbeat, name="bench-lock-heartbeat", daemon=True)
            _BEAT.start()


def read_holder(path: Path) -> dict[str, Any] | None:
    """The lock's content, or None when it is missing or not (yet) parsable."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _create(path: Path) -> Lock | None:
    for attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            return None
        except FileNotFoundError:  # a finished launcher removed the empty lock folder just now
            if attempt == 2:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    pid = os.getpid()
    body = {"pid": pid, "host": _HOST, "proc_start": _proc_start(pid), "started": time.time(), "token": token}
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(body))
        f.flush()
        os.fsync(f.fileno())
    return Lock(path, token)


def is_stale(path: Path, stale_after: float | None = None) -> bool:
    """True when `path` holds a lock whose holder is dead or silent (see the module docstring)."""
    stale_after = STALE_AFTER if stale_after is None else stale_after
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    holder = read_holder(path)
    if holder is None:
        return age > UNREADABLE_GRACE
    if holder.get("host") == _HOST and isinstance(holder.get("pid"), int):
        pid = holder["pid"]
        if not _pid_alive(pid):
            return True
        start = holder.get("proc_start")
        if start is not None and _proc_start(pid) not in (None, start):
            return True  # the PID was reused by a later process
    return age > stale_after


def _take_over(path: Path, stale_after: float | None) -> bool:
    """Remove a stale lock at `path`, at most once however many processes try. True if removed."""
    brk = path.with_name(path.name + ".break")
    guard = _create(brk)
    if guard is None:
        if is_stale(brk, stale_after=UNREADABLE_GRACE * 3):  # a taker died mid take-over (it takes ms)
            with contextlib.suppress(FileNotFoundError):
                brk.unlink()
        return False
    try:
        if not is_stale(path, stale_after):
            return False  # someone else took it over before we held the guard
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            brk.unlink()


def try_acquire(path: Path, stale_after: float | None = None) -> Lock | None:
    """The lock at `path` if it is free or stale, else None (a live holder has it). Never blocks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # once as is, once after a take-over
        lock = _create(path)
        if lock is not None:
            _HELD[path] = lock
            _start_heartbeat()
            return lock
        if not is_stale(path, stale_after) or not _take_over(path, stale_after):
            return None
    return None


def is_held(path: Path, stale_after: float | None = None) -> bool:
    """True while a live holder has the lock at `path`."""
    return Path(path).exists() and not is_stale(Path(path), stale_after)


def sweep(folder: Path) -> int:
    """Remove the stale locks in `folder` (not below it); returns how many. A holder killed after its work was
    done but before it released the lock leaves one that nobody would otherwise take over again."""
    removed = 0
    for path in sorted(Path(folder).glob("*.lock")) if Path(folder).is_dir() else []:
        if is_stale(path):
            lock = try_acquire(path)
            if lock is not None:
                lock.release()
                removed += 1
    return removed


@contextlib.contextmanager
def held(path: Path, poll: float = POLL) -> Iterator[Lock]:
    """Wait until the lock at `path` is ours, hold it inside the block."""
    while (lock := try_acquire(path)) is None:
        time.sleep(poll)
    with lock:
        yield lock


def build_once(
    path: Path,
    load: Callable[[], T | None],
    build: Callable[[], T],
    poll: float = POLL,
    load_locked: Callable[[], T | None] | None = None,
) -> T:
    """A cache entry, built by exactly one of several processes that want it at once.

    `load` returns the entry or None when it is missing or invalid; `build` makes, stores and returns it.
    A process that finds the entry locked waits for the holder and then loads its result instead of
    computing it again; if the holder died, the lock is stale and the next one builds it. `load_locked`, when
    given, replaces `load` while the lock is held (it may accept what is only safe to repair under the lock).
    """
    while True:
        got = load()
        if got is not None:
            return got
        lock = try_acquire(path)
        if lock is None:
            time.sleep(poll)
            continue
        with lock:
            got = (load_locked or load)()  # the previous holder may have finished between our load and our lock
            return got if got is not None else build()
