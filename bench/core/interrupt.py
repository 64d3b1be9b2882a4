"""Telling a real Ctrl-C from a KeyboardInterrupt that adapter code raised.

Python turns SIGINT into KeyboardInterrupt, and adapter code can raise one too (or SystemExit). Only the first
should stop a suite: `watch()` installs a SIGINT (and SIGTERM) handler for the length of a suite that records
that the signal really came, then raises KeyboardInterrupt as Python would for SIGINT (for SIGTERM too, so
that a terminated launcher stops its workers and leaves no traceback). `is_real(err)` is True only for that one.
A second Ctrl-C while the suite stops is ignored (the suite stops once, without a second traceback); a third
exits at once (exit 130), for a stop that itself hangs.

Outside `watch()` (no handler: a thread other than the main one, or code that never called it) every
KeyboardInterrupt counts as real, which is Python's own behaviour.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

_WATCHING = 0
_SIGNALS = 0  # SIGINTs (and SIGTERMs) received while watching
_TERMINATED = False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _SIGNALS, _TERMINATED
    _SIGNALS += 1
    _TERMINATED = _TERMINATED or signum == signal.SIGTERM
    if _SIGNALS == 1:
        raise KeyboardInterrupt
    if _SIGNALS == 2:
        print("interrupt: stopping (press Ctrl-C again to exit at once)", file=sys.stderr, flush=True)
        return
    os._exit(130)


@contextlib.contextmanager
def watch() -> Iterator[None]:
    """Mark real SIGINTs for the length of the block (main thread only; elsewhere a no-op)."""
    global _WATCHING, _SIGNALS
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _TERMINATED
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    if _WATCHING == 0:
        _SIGNALS, _TERMINATED = 0, False
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)  # stop as for Ctrl-C: workers stopped, no traceback, resumable
    _WATCHING += 1
    try:
        yield
    finally:
        _WATCHING -= 1
        signal.signal(signal.SIGINT, previous[0] if previous[0] is not None else signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous[1] if previous[1] is not None else signal.SIG_DFL)


def interrupted() -> bool:
    """True once a real SIGINT (or SIGTERM) came while watching."""
    return _SIGNALS > 0


def terminated() -> bool:
    """True when the stop came from SIGTERM (exit 143) rather than Ctrl-C (exit 130)."""
    return _TERMINATED


def is_real(err: BaseException) -> bool:
    """True when `err` is the KeyboardInterrupt of a real Ctrl-C (or when nothing is watching)."""
    return isinstance(err, KeyboardInterrupt) and (_SIGNALS > 0 or _WATCHING == 0)


class Stop(BaseException):
    """Raised into a run from outside it (the stall watchdog's Stalled): no guard that turns adapter
    exceptions into messages may swallow it; bench.exec.outcome records it as the run's failure."""


def passes(err: BaseException) -> bool:
    """True for what a guard around adapter code must let through: a real Ctrl-C, or a Stop."""
    return is_real(err) or isinstance(err, Stop)


def ignore_in_child() -> None:
    """In a worker process: let the launcher alone handle Ctrl-C (it stops its workers itself). No real
    SIGINT reaches the worker then, so every KeyboardInterrupt in it is adapter code's: a run's failure."""
    global _WATCHING
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _WATCHING += 1


@contextlib.contextmanager
def ignored_by_children() -> Iterator[None]:
    """Start child processes inside this block: they inherit SIGINT ignored from their first instruction
    (before they could install anything), so a terminal's Ctrl-C, sent to the whole process group, never
    prints a traceback from a worker that is still importing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
