"""The fault sweep's file-system cases: read-only folders, a full disk, a folder or a file in the wrong place,
leftover temp files and file modes (the mounts need root and are skipped without it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _faults import BASE, Case, Outcome, finished, run


# --- file-system faults -------------------------------------------------------------------------------
def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def read_only_case(label: str, prepare: Callable[[Path], Path], where: str = "out") -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        target = prepare(tmp)
        if not mount("--bind", "-o", "ro", str(target), str(target)):
            return Outcome(2, "skipped: cannot bind-mount (needs root)"), None
        try:
            csv = tmp / "runs" / "sweep" / "results.csv"
            before = csv.read_bytes() if csv.is_file() else None
            out = run(tmp, BASE)
            kept = before is None or csv.read_bytes() == before
            return out, None if kept else "earlier results.csv changed"
        finally:
            subprocess.run(["umount", str(target)], check=False)

    return Case(f"fs: read-only {label}", body)


def _empty(name: str) -> Callable[[Path], Path]:
    def prep(tmp: Path) -> Path:
        (tmp / name).mkdir(parents=True, exist_ok=True)
        return tmp / name

    return prep


def _finished_out(tmp: Path) -> Path:
    finished(tmp)
    return tmp / "runs"


def full_disk(tmp: Path) -> tuple[Outcome, str | None]:
    (tmp / "runs").mkdir()
    if not mount("-t", "tmpfs", "-o", "size=24k", "tmpfs", str(tmp / "runs")):
        return Outcome(2, "skipped: cannot mount tmpfs (needs root)"), None
    try:
        return run(tmp, BASE), None
    finally:
        subprocess.run(["umount", str(tmp / "runs")], check=False)


def in_place(label: str, make: Callable[[Path], None], expect: tuple[int, ...]) -> Case:
    def body(tmp: Path) -> tuple[Outcome, str | None]:
        make(tmp)
        return run(tmp, BASE), None

    return Case(f"fs: {label}", body, expect)


def _first_run_dir(tmp: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    # The run id as `bench run` makes it: threads resolved and the code fingerprinted (bench.store.fingerprint).
    from bench.store.fingerprint import stamp
    from bench.suite.load import expand, load_suite

    return tmp / "runs" / "sweep" / expand(load_suite(BASE), stamp=lambda r: stamp(r, "cpu"))[0].run_id


def fs_cases() -> list[Case]:
    return [
        read_only_case("--out folder (empty)", _empty("runs")),
        read_only_case("suite folder (suite.yaml copy)", _empty("runs/sweep")),
        read_only_case("--out of a finished suite (results.csv)", _finished_out),
        read_only_case("--reports folder", _empty("rep")),
        Case("fs: --out on a full 24 KiB tmpfs", full_disk, (1, 2)),
        in_place("a folder where result.json goes", lambda t: (_first_run_dir(t) / "result.json").mkdir(parents=True), (1,)),
        in_place("a folder where results.csv goes", lambda t: (t / "runs" / "sweep" / "results.csv").mkdir(parents=True), (1,)),
        in_place("a folder where index.html goes", lambda t: (t / "rep" / "sweep" / "index.html").mkdir(parents=True), (0,)),
        in_place("a file where the report folder goes", lambda t: (t / "rep").mkdir() or (t / "rep" / "sweep").write_text("x"), (2,)),
        in_place("a file where --out goes", lambda t: (t / "runs").write_text("x"), (2,)),
        in_place("a symlink loop where a run folder goes", lambda t: _loop(_first_run_dir(t)), (1,)),
    ]


def _loop(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(p.name)


# --- leftovers and modes ------------------------------------------------------------------------------
def temp_files(tmp: Path) -> tuple[Outcome, str | None]:
    finished(tmp)
    planted = [tmp / "runs" / "sweep" / ".suite.yaml.x1.tmp", tmp / "rep" / "sweep" / ".index.html.x2.tmp"]
    for p in planted:
        p.write_text("partial")
        os.utime(p, (time.time() - 3600,) * 2)
    out = run(tmp, BASE)
    left = [p.name for p in planted if p.exists()]
    return out, f"left {left}" if left else None


def modes(tmp: Path) -> tuple[Outcome, str | None]:
    old = os.umask(0o022)
    try:
        out = run(tmp, BASE)
    finally:
        os.umask(old)
    files = [tmp / "runs/sweep/suite.yaml", tmp / "runs/sweep/results.csv", tmp / "rep/sweep/index.html"]
    files += list((tmp / "runs" / "sweep").glob("*/result.json"))
    bad = [f"{f.name} {oct(f.stat().st_mode & 0o777)}" for f in files if f.stat().st_mode & 0o777 != 0o644]
    return out, f"modes {bad}" if bad else None


def other_cases() -> list[Case]:
    return [Case("tmp: stale .tmp files swept by a rerun", temp_files, (0,)), Case("mode: files honour umask 022", modes, (0,))]
