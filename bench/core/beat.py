"""Progress beats: how any stage of a run (a training step, a pretraining step, a chunk of samples) says
"I moved", without knowing who listens. The runner's stall watchdog (bench.runner.watchdog) listens; outside a
run nobody does and a beat costs one attribute read.

A leaf of the lowest layer, so the tasks and the metrics can beat without importing the runner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Listener = Callable[[str, bool], None]  # (where, is_step)
_LISTENER: Listener | None = None


def beat(where: str, step: bool = False) -> None:
    """Say that work moved on to `where` (e.g. "train_step at step 12"). `step=True` marks a step of a loop,
    whose durations set the watchdog's default stall limit."""
    if _LISTENER is not None:
        _LISTENER(where, step)


@contextlib.contextmanager
def listening(fn: Listener) -> Iterator[None]:
    """Route every beat of this process to `fn` inside the block (one listener at a time: one run at a time)."""
    global _LISTENER
    old, _LISTENER = _LISTENER, fn
    try:
        yield
    finally:
        _LISTENER = old
