"""Telling a real Ctrl-C from a KeyboardInterrupt that adapter code raised.

Python turns SIGINT into KeyboardInterrupt, and adapter code can raise one too (or SystemExit). Only the first
should stop a suite: `watch()` installs a SIGINT handler for the length of a suite that records that the
signal really came, then raises KeyboardInterrupt as Python would. `is_real(err)` is True only for that one.
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
_SIGNALS = 0  # SIGINTs received while watching


def _handler(signum: int, frame: FrameType | None) -> None:
    global _SIGNALS
    _SIGNALS += 1
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
    previous = signal.getsignal(signal.SIGINT)
    if _WATCHING == 0:
        _SIGNALS = 0
    signal.signal(signal.SIGINT, _handler)
    _WATCHING += 1
    try:
        yield
    finally:
        _WATCHING -= 1
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def interrupted() -> bool:
    """True once a real SIGINT came while watching."""
    return _SIGNALS > 0


def is_real(err: BaseException) -> bool:
    """True when `err` is the KeyboardInterrupt of a real Ctrl-C (or when nothing is watching)."""
    return isinstance(err, KeyboardInterrupt) and (_SIGNALS > 0 or _WATCHING == 0)


def ignore_in_child() -> None:
    """In a worker process: let the launcher alone handle Ctrl-C (it stops its workers itself). No real
    SIGINT reaches the worker then, so every KeyboardInterrupt in it is adapter code's: a run's failure."""
    global _WATCHING
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _WATCHING += 1
