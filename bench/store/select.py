"""Which results of a suite folder may share a table: the rules `bench run` applies by setting runs aside
(bench.store.stale), applied on read, so `bench report` (and anything else that lists results) never mixes
numbers that `bench run` would keep apart. Left out, with one line per group saying why:

- a run of another suite (its `suite` is not the name in the folder's suite.yaml: a folder copied in);
- a run of another evaluation protocol than the folder's (the current PROTOCOL_VERSION when any run has it,
  else the newest present), or with none recorded beside runs that have one;
- a run of another suite version than suite.yaml's;
- an older run of the same cell (adapter, strategy, seed, swept point) under another run id: the code or a
  setting changed and the old one was not set aside yet. The newest result stays.

The folder itself is never changed here (the report is read-only on runs; `bench run` moves folders aside).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.store.result import RunResult
from bench.suite.spec import PROTOCOL_VERSION

SHOWN = 3  # run ids named per line


def _suite_yaml(suite_dir: Path) -> dict[str, Any]:
    from bench.suite import yamlsafe

    try:
        data = yamlsafe.load(yamlsafe.read_text(Path(suite_dir) / "suite.yaml"))
    except Exception:  # missing or unreadable: fall back on the results themselves
        return {}
    return data if isinstance(data, dict) else {}


def _protocol(r: RunResult) -> str | None:
    v = (r.spec or {}).get("protocol_version") if isinstance(r.spec, dict) else None
    return None if v is None else str(v)


def _order(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in v.split("."))


def comparable(results: list[RunResult], suite_dir: Path) -> tuple[list[RunResult], list[str]]:
    """(the results that may share one table, one line per group left out)."""
    if not results:
        return results, []
    meta = _suite_yaml(suite_dir)
    name = meta.get("name") if isinstance(meta.get("name"), str) else Counter(r.suite for r in results).most_common(1)[0][0]
    version = meta.get("version", 1) if meta else None
    protocols = {p for r in results if (p := _protocol(r)) is not None}
    protocol = PROTOCOL_VERSION if PROTOCOL_VERSION in protocols or not protocols else max(protocols, key=_order)
    out: dict[str, list[str]] = defaultdict(list)
    kept: list[RunResult] = []
    for r in results:
        spec = r.spec if isinstance(r.spec, dict) else {}
        p = _protocol(r)
        if r.suite != name:
            out[f"of another suite ({r.suite!r}, this folder's suite.yaml says {name!r}: copied in?)"].append(r.run_id)
        elif protocols and p != protocol:
            out[f"of evaluation protocol {p or 'unknown'} (these tables: protocol {protocol})"].append(r.run_id)
        elif version is not None and "suite_version" in spec and spec["suite_version"] != version:
            out[f"of suite version {spec['suite_version']} (suite.yaml: version {version})"].append(r.run_id)
        else:
            kept.append(r)
    cells: dict[str, list[RunResult]] = defaultdict(list)
    for r in kept:
        swept = (r.spec or {}).get("swept", {}) if isinstance(r.spec, dict) else {}
        cells[json.dumps([r.adapter, r.strategy, r.seed, swept], sort_keys=True, default=str)].append(r)
    dropped: set[str] = set()
    for same in cells.values():
        if len(same) > 1:
            newest = max(same, key=lambda r: (r.finished_at or "", r.run_id))
            for r in same:
                if r is not newest:
                    out[f"older than {newest.run_id} for the same adapter, strategy and seed (code or settings changed)"].append(r.run_id)
                    dropped.add(r.run_id)
    kept = [r for r in kept if r.run_id not in dropped]
    lines = []
    for why, ids in out.items():
        shown = ", ".join(ids[:SHOWN]) + (f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")
        lines.append(f"left out {len(ids)} run(s) {why}: {shown}; `bench run` would set them aside")
    return kept, lines


__all__ = ["comparable"]
