"""`bench compare RUNS_A RUNS_B`: two runs folders (two suites, or one suite before and after a change) side by
side, one row per adapter × strategy in both, per metric: A's and B's mean ± 95% CI and B − A with Welch's
unpaired 95% interval. Unpaired on purpose: the two folders' runs share no training noise even at equal seeds
once anything differs, so the paired test of comparisons.csv does not apply across them."""

from __future__ import annotations

import math
from pathlib import Path

from bench.core.errors import BenchError
from bench.metrics.info import metric_info
from bench.stats.aggregate import fmt, seed_stats
from bench.stats.compare import welch_interval
from bench.store import runs as store
from bench.store.result import RunResult


def _values(results: list[RunResult]) -> dict[tuple[str, str], dict[str, list[float]]]:
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in results:
        if r.status != "completed":
            continue
        cell = out.setdefault((r.adapter, r.strategy), {})
        for m, v in r.metrics.items():
            if isinstance(v, int | float) and math.isfinite(v):
                cell.setdefault(m, []).append(float(v))
    return out


def compare_folders(a: Path, b: Path, metrics: list[str] | None = None) -> str:
    """The side-by-side table as text; BenchError when a folder has no results or nothing is in both."""
    got = []
    for d in (a, b):
        results = store.list_results(Path(d)) if Path(d).is_dir() else []
        if not results:
            raise BenchError(f"no finished runs in {d}", file=str(d), fix="give a runs/<suite> folder that `bench run` wrote")
        got.append(_values(results))
    va, vb = got
    pairs = sorted(set(va) & set(vb))
    if not pairs:
        raise BenchError(
            f"{a} and {b} share no adapter × strategy", file=str(b), fix="compare folders that ran the same adapters and strategies"
        )
    seen = [m for p in pairs for m in va[p] if m in vb[p]]
    names = metrics or [m for m in dict.fromkeys(seen) if (i := metric_info(m)) is not None and not i.cost][:3]
    names += [] if metrics else [m for m in ("total_seconds",) if m in seen]
    label = [f"{Path(d).resolve().parent.name}/{Path(d).name}" for d in (a, b)]
    header = ["adapter", "strategy", "metric", f"A: {label[0]}", f"B: {label[1]}", "B − A (Welch 95% CI)"]
    rows = []
    for adapter, strategy in pairs:
        for m in names:
            x, y = va[(adapter, strategy)].get(m, []), vb[(adapter, strategy)].get(m, [])
            if not x or not y:
                continue
            sa, sb = seed_stats(x), seed_stats(y)
            lo, hi = welch_interval(y, x) if len(x) > 1 and len(y) > 1 else (math.nan, math.nan)
            why = " (n < 2: no interval)" if min(len(x), len(y)) < 2 else " (no spread: no interval)"
            diff = f"{sb.mean - sa.mean:+.3g}" + (f" [{lo:+.3g}, {hi:+.3g}]" if math.isfinite(lo) else why)
            info = metric_info(m)
            arrow = {True: "↑", False: "↓"}.get(info.higher_is_better, "") if info else "?"
            rows.append(
                [adapter, strategy, f"{m} {arrow}".strip(), f"{fmt(sa.mean, sa.ci95)} n={sa.n}", f"{fmt(sb.mean, sb.ci95)} n={sb.n}", diff]
            )
    if not rows:
        raise BenchError(f"no metric measured in both {a} and {b}", file=str(b), fix="name one with --metric")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, ["-" * w for w in widths], *rows]]
    only = sorted(set(va) ^ set(vb))
    if only:
        lines.append(f"in one folder only (not compared): {', '.join(f'{x} / {y}' for x, y in only)}")
    return "\n".join(lines)
