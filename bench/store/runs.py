"""Run folders, atomic writes and resume.

Layout (the run folder is the unit of resume and of distribution):
    <out>/<suite>/suite.yaml                resolved copy
    <out>/<suite>/<run_id>/result.json      written atomically, last; a valid one means the run is done
    <out>/<suite>/<run_id>/history.csv
    <out>/<suite>/<run_id>/samples.png
    <out>/<suite>/<run_id>/checkpoint.pt    while running (weights_only-loadable), removed when done
    <out>/<suite>/<run_id>/weights.safetensors  the final weights, kept (runner.keep_weights), for re-evaluation
    <out>/<suite>/results.csv, summary.csv
    <out>/<suite>/reference.json            the real-vs-real reference (bench.api_score), read by the report
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Re-exported: callers of the run layer keep writing through `store.atomic_write_json` and friends.
from bench.store.files import (  # noqa: F401
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    dir_mode,
    file_mode,
    json_safe,
    read_json,
    remove_stale_writes,
    umask,
)
from bench.store.result import DONE_STATUSES, STATUSES, InvalidResult, RunResult  # noqa: F401

Warn = Callable[[str], None]
REFERENCE_FILE = "reference.json"  # written by the faces (bench.api_score), read by the report: one name for both


def read_result(run_dir: Path, warn: Warn | None = None) -> RunResult | None:
    """A run's result, or None when it is missing or not trustworthy: unparsable, another run's
    (run_id is the folder name), or not the shape of a RunResult (a field of the wrong type, an unknown
    status, metrics that are not a name -> number mapping). `warn` hears why a present file was rejected."""
    run_dir = Path(run_dir)
    path = run_dir / "result.json"
    obj = read_json(path)
    if obj is None:
        if warn is not None and path.is_file():
            warn(f"{path}: not a JSON object; skipped (the run is redone on the next `bench run`)")
        return None
    try:
        res = RunResult.from_json(obj)
    except InvalidResult as err:
        if warn is not None:
            warn(f"{path}: {err}; skipped (the run is redone on the next `bench run`)")
        return None
    if res.run_id != run_dir.name:
        if warn is not None:
            warn(f"{path}: run_id {res.run_id!r} is not its folder's name; skipped")
        return None
    return res


def is_done(run_dir: Path) -> bool:
    res = read_result(run_dir)
    return res is not None and res.done


def write_result(run_dir: Path, result: RunResult) -> None:
    atomic_write_json(Path(run_dir) / "result.json", result.to_json())  # last: its presence means done


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    import torch  # lazily: `bench report` needs no torch

    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict | None:
    """Load with weights_only=True (no pickled code runs); a corrupt or foreign file is ignored (the run is
    redone from the start) rather than trusted. The runner also starts over when the contents do not fit."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated zip, bad magic, disallowed type: all mean "not trustworthy"
        return None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return None
    return state


def remove_partial_writes(run_dir: Path) -> None:
    """Delete temp files a killed writer left behind (`.<name>.*.tmp`); the real files are untouched."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def list_results(suite_dir: Path, warn: Warn | None = None, mix: bool = False) -> list[RunResult]:
    """Every readable result.json under a suite folder that may share its tables, in run_id order: runs of
    another suite, protocol or suite version, and older runs of a cell, are left out (bench.store.select;
    `mix=True` keeps them). `warn` hears about unreadable files and, one line per group, what was left out."""
    from bench.store.select import comparable

    out = []
    for p in sorted(Path(suite_dir).glob("*/result.json")):
        res = read_result(p.parent, warn)
        if res is not None:
            out.append(res)
    if mix:
        return out
    kept, lines = comparable(out, Path(suite_dir))
    for line in lines if warn is not None else ():
        warn(line)
    return kept


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv: one row per log or eval point; columns are the union of the rows' keys, in first-seen order."""
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols or ["step"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
