"""Runs left from an earlier version of a suite, or of the code, are moved aside: never reused, never mixed in.

The run id hashes everything that can change a trained model (bench.store.fingerprint), so an edited adapter,
training code or suite gives new run ids. The eval block is not in it (it is the evaluation id's): a run
measured under another eval block keeps its id and is re-evaluated from its kept weights, never set aside. A run folder whose id is not in the current grid is then stale: `set_aside` moves it
to `<suite_dir>/.stale/<run_id>` (kept, not deleted: its numbers may still be wanted) and returns one line
per (adapter, strategy, reason) group saying what changed. results.csv, summary.csv and the report read
only `<suite_dir>/*/result.json`, so they cover exactly the current grid.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench.store import runs as store
from bench.store.fingerprint import what_changed
from bench.suite.spec import RunSpec

STALE = ".stale"
RUN_ID = re.compile(r"-s\d+-[0-9a-f]{8}$")  # how every run id ends: `<adapter>-<strategy>[-<sweep>]-s<seed>-<hash8>`


def _target(root: Path, name: str) -> Path:
    dest, n = root / name, 1
    while dest.exists():  # the same id set aside twice (code edited back and forth): keep both
        dest, n = root / f"{name}.{n}", n + 1
    return dest


def set_aside(suite_dir: Path, grid: list[RunSpec], busy: Callable[[str], bool] = lambda run_id: False) -> list[str]:
    """Move every run folder not in `grid` (the whole grid, not an --only subset) to `.stale/`; say why.
    An empty one (a run killed before it wrote anything) is removed. A folder whose run `busy(run_id)` says a
    live process holds (another launcher, on other code) is left alone."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        return []
    current = {r.run_id for r in grid}
    by_cell = {(r.adapter, r.strategy, r.seed): r for r in grid}
    groups: dict[tuple[str, str, str], int] = defaultdict(int)
    for folder in sorted(p for p in suite_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in current or busy(folder.name):
            continue
        if RUN_ID.search(folder.name) and not any(folder.iterdir()):
            folder.rmdir()  # nothing in it to keep, and the report would list it as an unfinished run
            continue
        res = store.read_result(folder)
        if res is None and not (folder / "checkpoint.pt").is_file() and not (folder / "result.json").is_file():
            continue  # not a run folder of ours
        if res is None:
            adapter, strategy, why = "?", "?", "unfinished or unreadable run of an earlier version"
        else:
            adapter, strategy = res.adapter, res.strategy
            now = by_cell.get((res.adapter, res.strategy, res.seed))
            why = "; ".join(what_changed(res.spec, now.resolved())) if now else "no longer in the suite's grid"
        root = suite_dir / STALE
        root.mkdir(exist_ok=True)
        os.replace(folder, _target(root, folder.name))
        groups[(adapter, strategy, why)] += 1
    return [
        f"stale: {adapter}/{strategy}: {why}; {n} old run{'s' if n > 1 else ''} moved to {suite_dir / STALE}/"
        for (adapter, strategy, why), n in sorted(groups.items())
    ]


__all__ = ["STALE", "set_aside"]
