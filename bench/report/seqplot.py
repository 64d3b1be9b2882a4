"""The figure of each headline comparison's interval against seeds: how the answer formed.

One small panel per comparison (adapter × strategy against the baseline), relative Δ on y, paired seeds on x:
the band is the simultaneous interval at the family's final level as the seeds arrived (under the sequential
rule the confidence sequence's running intersection, which is what each round's call saw), the line its
estimate, the dotted lines ±margin, the title the decision. Pure drawing over `Path`s; the numbers come
from bench.stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.report.plots import _figure, _plain_text

MAX_PANELS = 40  # beyond this the figure shows the first ones and says how many it left out
COLORS = {"better": "#1a9850", "worse": "#d73027", "equivalent": "#4575b4", "higher": "#555", "lower": "#555", "inconclusive": "#999"}


@dataclass
class Trace:
    """One comparison's interval as the seeds arrived (relative to the baseline mean)."""

    label: str
    n: list[int]
    est: list[float]
    low: list[float]
    high: list[float]
    margin: float  # relative; NaN: none
    decision: str


def traces(results: pd.DataFrame, comparisons: pd.DataFrame, metric: str, higher_is_better: bool | None) -> list[Trace]:
    """The headline comparisons' intervals as the seeds arrived, from the results table and comparisons.csv's
    frame (its level, decision, margin and baseline mean): the same pairs, in the same seed order."""
    from bench.stats.compare import paired
    from bench.stats.sequential import interval_path

    if comparisons.empty or "sim_level" not in comparisons.columns:
        return []
    head = comparisons[comparisons["metric"] == metric]
    if head.empty:
        return []
    rows, diffs, groups = paired(results, [metric], {metric: higher_is_better}, str(head["baseline"].iloc[0]))
    sequential = "p_anytime" in head.columns and pd.to_numeric(head["p_anytime"], errors="coerce").notna().any()
    by_key = {tuple(r[g] for g in (*groups, "strategy")): d for r, d in zip(rows, diffs, strict=True)}
    out = []
    for rec in head.to_dict("records"):
        d = by_key.get(tuple(rec[g] for g in (*groups, "strategy")))
        base = abs(float(rec["baseline_mean"]))
        level = float(rec["sim_level"])
        if d is None or len(d) < 2 or not base or not math.isfinite(level):
            continue
        path = interval_path(d, level, bool(sequential))
        label = " · ".join(str(rec[g]) for g in groups) + f" / {rec['strategy']}"
        margin = float(rec["margin"]) / base if math.isfinite(float(rec["margin"])) else math.nan
        est = [float(d[:n].mean()) / base for n, _, _ in path]
        out.append(
            Trace(
                label,
                [n for n, _, _ in path],
                est,
                [lo / base for _, lo, _ in path],
                [hi / base for _, _, hi in path],
                margin,
                str(rec["decision"]),
            )
        )
    return out


@_plain_text
def interval_vs_seeds(paths: list[Trace], metric: str, path: Path) -> bool:
    """Write the figure; False (nothing written) when no comparison has two or more paired seeds."""
    shown = [p for p in paths if len(p.n) >= 1][:MAX_PANELS]
    if not shown:
        return False
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    w, h = 2.6 * cols, 1.9 * rows + 0.9
    fig = _figure(w, h)
    fig.subplots_adjust(left=0.5 / w, right=1 - 0.1 / w, bottom=0.45 / h, top=1 - 0.85 / h, wspace=0.35, hspace=0.75)
    for i, p in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        color = COLORS.get(p.decision, "#999")
        lo = [v if math.isfinite(v) else math.nan for v in p.low]
        hi = [v if math.isfinite(v) else math.nan for v in p.high]
        ax.fill_between(p.n, [100 * v for v in lo], [100 * v for v in hi], color=color, alpha=0.25, linewidth=0, step="post")
        ax.plot(p.n, [100 * v for v in p.est], color=color, linewidth=1)
        ax.axhline(0, color="black", linewidth=0.6)
        if math.isfinite(p.margin):
            for s in (-1, 1):
                ax.axhline(100 * s * p.margin, color="#4575b4", linewidth=0.6, linestyle=":")
        finite = [abs(v) for v in (*lo, *hi, *p.est) if math.isfinite(v)]
        lim = min(max(finite, default=0.1), 3.0) * 100 * 1.1 or 10  # a CS that is still the whole line is clipped
        ax.set_ylim(-lim, lim)
        ax.set_title(f"{p.label}\n{p.decision}", fontsize=7, color=color)
        ax.tick_params(labelsize=6)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if i % cols == 0:
            ax.set_ylabel("relative Δ, %", fontsize=6)
        if i >= len(shown) - cols:
            ax.set_xlabel("paired seeds", fontsize=6)
    left = len(paths) - len(shown)
    more = f"; {left} more comparisons in comparisons.csv" if left else ""
    fig.suptitle(f"{metric}: simultaneous interval against paired seeds{more}", fontsize=8)
    fig.savefig(path)
    return True


__all__ = ["Trace", "interval_vs_seeds", "traces"]
