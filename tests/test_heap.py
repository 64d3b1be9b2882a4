"""bench/core/heap.py: glibc's thresholds are set where glibc is the C library, and nowhere else."""

from __future__ import annotations

import platform

from bench.core import heap


def test_set_on_glibc_only() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert heap.keep_freed_memory() is glibc
    assert heap.keep_freed_memory() is glibc  # once per process, then remembered


def test_every_run_asks_for_it(tmp_path, tiny_suite: dict, monkeypatch) -> None:
    import bench.runner.run
    from bench.api import run_suite

    calls: list[bool] = []
    monkeypatch.setattr(bench.runner.run.heap, "keep_freed_memory", lambda: calls.append(True) or True)
    tiny_suite["eval"]["metrics"] = ["bpd"]
    df = run_suite(tiny_suite, out=tmp_path, reports=tmp_path / "rep", device="cpu", progress=False)
    assert not df.attrs["failed"] and len(calls) == len(df) >= 1
