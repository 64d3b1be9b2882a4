"""The stall watchdog: a run whose progress has not moved for its stall limit is stopped, and recorded as
failed naming the stage it hung in; `runner.timeout` bounds a run's whole time.

Progress is the beats of bench.core.beat: every training step, every pretraining step, every chunk of samples
and every stage of a run beats. The limit (`runner.stall_seconds`, neither it nor `runner.timeout` enters the
run id: they stop a run, they never change its numbers):

- null (the default): in the training loop, after its first step, the larger of `STALL_FLOOR` (60 s) and
  `STALL_FACTOR` (20) times the slowest step so far; anywhere else (set-up, the contract check, pretraining,
  the first step, evaluation) the larger of `OTHER_FLOOR` (600 s) and 20 times the slowest step;
- a number: that many seconds of silence anywhere adapter code runs (the set-up before it, loading data,
  keeps at least OTHER_FLOOR); 0 turns the watchdog off.

Stopping: a thread watches the beats. On the main thread (a `bench run`, each `--jobs` worker) it interrupts
the run with a signal, which also ends a blocking sleep or lock wait; on another thread (a notebook's worker
thread, some Ray workers) with an asynchronous exception, raised at the run's next Python bytecode. Code
that never returns to Python (a hung C call) cannot be stopped this way; a `--jobs` launcher's worker can.

A run with no progress bar (`--quiet`, `--jobs` workers) prints one "alive" line every `ALIVE_SECONDS`, so a
long silent stage still shows that it moves (or where it sits).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from bench.core import beat, interrupt

STALL_FLOOR = 60.0
OTHER_FLOOR = 600.0
STALL_FACTOR = 20.0
ALIVE_SECONDS = 60.0
TICK = 0.2  # seconds between the thread's looks
_SIGNAL = signal.SIGUSR2
SETUP = "set-up"  # the stage before any adapter code runs (loading data), where a run starts


class Stalled(interrupt.Stop):
    """Raised in a run that stopped moving (or ran past its timeout). A BaseException, so that an adapter's
    `except Exception` cannot swallow it; bench.exec.outcome records it as the run's failure."""


def _fmt(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 100 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Watchdog:
    """Watches one run's beats from a daemon thread; use as a context manager around the run."""

    def __init__(
        self,
        run_id: str,
        stall_seconds: float | None = None,
        timeout: float | None = None,
        alive: bool = False,
        echo: Callable[[str], None] | None = None,
    ):
        self.run_id, self.stall_seconds, self.timeout, self.alive = run_id, stall_seconds, timeout, alive
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.where, self.in_loop, self.steps = SETUP, False, 0
        self.slowest: float | None = None
        self.started = self.last = self.last_step = self.last_alive = time.monotonic()
        self.reason: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._target = threading.current_thread()
        self._thread: threading.Thread | None = None
        self._old_handler: object = None

    # --- the run's side ---------------------------------------------------------------------------------
    def on_beat(self, where: str, step: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if step:
                if self.in_loop and self.steps:  # a step after a step: a step's duration
                    d = now - self.last_step
                    self.slowest = d if self.slowest is None else max(self.slowest, d)
                self.steps += 1
                self.last_step, self.in_loop = now, True
            else:
                self.in_loop = False
            self.where, self.last = where, now

    def limit(self) -> tuple[float | None, str]:
        """The stall limit now, and how it was set (for the failure message)."""
        if self.stall_seconds is not None:
            if self.stall_seconds and self.where == SETUP:  # harness code only (data loading): never a tight limit
                return max(self.stall_seconds, OTHER_FLOOR), f"runner.stall_seconds, at least {_fmt(OTHER_FLOOR)} in {SETUP}"
            return (self.stall_seconds or None), "runner.stall_seconds"
        slow = self.slowest or 0.0
        floor = STALL_FLOOR if self.in_loop and self.slowest is not None else OTHER_FLOOR
        how = f"the larger of {_fmt(floor)} and {STALL_FACTOR:g}x the slowest step so far ({_fmt(slow)}); set runner.stall_seconds to change it"
        return max(floor, STALL_FACTOR * slow), how

    # --- the watching thread ----------------------------------------------------------------------------
    def _check(self) -> str | None:
        now = time.monotonic()
        with self._lock:
            where, silent = self.where, now - self.last
            limit, how = self.limit()
        if self.timeout and now - self.started > self.timeout:
            return f"timed out: runner.timeout {_fmt(self.timeout)} reached in {where}"
        if limit is not None and silent > limit:
            return f"stalled: no progress for {_fmt(silent)} in {where} (stall limit {_fmt(limit)}: {how})"
        if self.alive and now - self.last_alive >= ALIVE_SECONDS:
            self.last_alive = now
            self.echo(f"alive: {self.run_id}: {_fmt(now - self.started)} in, now in {where} ({_fmt(silent)} since its last progress)")
        return None

    def _watch(self) -> None:
        while not self._stop.wait(TICK):
            reason = self._check()
            if reason is not None:
                self.reason = reason
                self._interrupt()
                return

    def _interrupt(self) -> None:
        if self._old_handler is not None:
            signal.pthread_kill(self._target.ident, _SIGNAL)  # also ends a blocking sleep or lock wait
        elif self._target.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._target.ident), ctypes.py_object(Stalled))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None and not self._stop.is_set():
            raise Stalled(self.reason)

    # --- context manager --------------------------------------------------------------------------------
    def __enter__(self) -> Watchdog:
        if self.stall_seconds == 0 and not self.timeout and not self.alive:
            return self  # nothing to watch
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                self._old_handler = signal.signal(_SIGNAL, self._on_signal) or signal.SIG_DFL
        self._beats = beat.listening(self.on_beat)
        self._beats.__enter__()
        self._thread = threading.Thread(target=self._watch, name=f"bench-watchdog-{self.run_id[:24]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join()
        self._beats.__exit__(None, None, None)
        if self._old_handler is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(_SIGNAL, self._old_handler)  # type: ignore[arg-type]

    def failure(self, err: BaseException) -> str:
        """The message a Stalled raised by this watchdog records (an async exception carries no text)."""
        return self.reason or str(err) or "stalled"
