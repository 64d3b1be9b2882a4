"""Where `--jobs K` workers come from: a fork server that has imported the harness once.

A spawned worker starts a fresh interpreter and imports torch, the harness, the bundled adapters and the
metrics itself: 3.6 CPU s each on the 2-core reference machine, after the launcher has done the same imports
and while it waits. With the `forkserver` start method one server process does those imports once
(bench.exec.preload). `warm_up` starts it at the top of `bench run`, so it imports beside the launcher's own
imports and planning; each worker is then a fork of the server, ready at once. The server has run no tensor
operation, so it holds no CUDA context and no OpenMP thread pool: the reasons never to fork the launcher do
not apply to it. Where the platform has no fork server (Windows), workers are spawned as before.

Torch-free on purpose: `bench run` calls `warm_up` before it imports torch.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from multiprocessing.context import BaseContext

PRELOAD = ["bench.exec.preload"]
JOBS_VARIABLE = "BENCH_JOBS"  # the default of `--jobs` and of run_suite's `jobs` when set (the tests set 1)


def parse_jobs(value: int | str | None) -> int | str:
    """`jobs` as given (None: $BENCH_JOBS, else "auto"); a string of digits becomes its number."""
    if value is None:
        value = os.environ.get(JOBS_VARIABLE) or "auto"
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isdigit() else value
    return value


def context() -> BaseContext:
    """The start method for workers: forkserver (preloading the harness) where it exists, else spawn."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up(jobs: int | str) -> None:
    """Start the fork server now when `jobs` (parsed) may ask for workers on this machine (auto with two
    usable cores or more, or K > 1), so its imports overlap the caller's. It is started with SIGINT ignored,
    which every worker forked from it inherits: a terminal's Ctrl-C goes to the launcher alone
    (bench.core.interrupt), never to a worker still starting. A server that ends up unused costs its imports,
    on a core the launcher does not use."""
    from bench.core.cores import usable_cores

    wanted = jobs == "auto" and usable_cores() > 1 or isinstance(jobs, int) and jobs > 1
    if not wanted or context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    from bench.core import interrupt

    with interrupt.ignored_by_children():
        forkserver.ensure_running()


def stop() -> None:
    """End the fork server this process started, if any, and reap it. By then every worker has reported and
    been reaped by the server. SIGKILL, because it holds nothing to flush, while a polite stop would wait for its
    interpreter's teardown (about a second of CPU, which used to run on after `bench` had returned). Reaping it
    also hands its workers' CPU time to whoever measures `bench` (RUSAGE_CHILDREN, /usr/bin/time)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)  # CPython's; None where no server was started
    if not pid:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with contextlib.suppress(AttributeError):
        server._forkserver_pid = None  # type: ignore[union-attr]
