"""Report figures (matplotlib, Agg, PNG files beside the page).

The number of figures grows with adapters and metrics, never with runs: learning curves are one figure
per adapter (strategies as lines, mean over seeds), so a 1,000-run suite renders as fast as a 10-run one.
`matplotlib.figure.Figure` is used directly (no pyplot) so no global state or GUI backend is involved.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from bench.metrics.info import metric_info
from bench.report.stats import MetricMeta, Row

History = list[dict[str, float]]  # rows of history.csv, numbers only (blank cells dropped)
SKIP_COLS = {"step", "train_seconds"}
P = ParamSpec("P")
R = TypeVar("R")
MAX_PANELS = 4
MAX_CURVES = 9  # learning-curve panels per adapter, three to a row
SPARSE = 3  # a curve of fewer points is drawn as points with ±1 std bars, not as a line


def _plain_text(fn: Callable[P, R]) -> Callable[P, R]:
    """Draw every label as plain text: strategy and adapter names are user strings, and matplotlib would
    parse a `$` in them as math text (and raise on `a$b`). Text reads the setting when it is created,
    so the whole figure is built inside the context."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper


def _figure(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed; never opens a window
    from matplotlib.figure import Figure

    # Fixed margins instead of a layout engine: constrained/tight layout re-draws the figure to measure
    # it, which was most of the render time.
    return Figure(figsize=(w, h), dpi=90)


def _margins(fig, w: float, h: float, right: float = 0.15, rows: int = 1) -> None:
    fig.subplots_adjust(left=0.7 / w, right=1 - right / w, bottom=0.6 / h, top=1 - 0.55 / h, wspace=0.3, hspace=0.55 if rows > 1 else 0.2)


def strategy_colors(strategies: list[str]) -> dict[str, str]:
    """A stable colour per strategy, the same in every figure of the report."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(strategies) <= 10 else "tab20"]
    return {s: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, s in enumerate(sorted(strategies))}


def curve_columns(histories: list[History], quality: list[str]) -> list[str]:
    """Which history columns to draw: every numeric training column the adapter logged (`loss`, `nll`,
    `loss_d`, `kl`, ...: whatever its train_step returns), then up to two evaluated quality metrics, at most
    MAX_CURVES. A column logged at one step only (eval_every: 0 logs only the final evaluation) is no curve."""
    points: dict[str, set[float]] = defaultdict(set)
    for h in histories:
        for row in h:
            for k in row:
                if k not in SKIP_COLS:
                    points[k].add(row["step"])
    curves = [k for k in points if len(points[k]) > 1]
    training = sorted(k for k in curves if metric_info(k) is None)
    evals = [m for m in quality if m in curves][:2]
    return (training + evals)[:MAX_CURVES]


def mean_curve(histories: list[History], col: str) -> tuple[list[float], list[float], list[float]]:
    """Steps, mean and std over seeds of `col` (steps where any seed logged it)."""
    by_step: dict[float, list[float]] = defaultdict(list)
    for h in histories:
        for row in h:
            v = row.get(col)
            if v is not None and math.isfinite(v):
                by_step[row["step"]].append(v)
    steps = sorted(by_step)
    means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    stds = [
        math.sqrt(sum((v - m) ** 2 for v in by_step[s]) / (len(by_step[s]) - 1)) if len(by_step[s]) > 1 else 0.0
        for s, m in zip(steps, means, strict=True)
    ]
    return steps, means, stds


@_plain_text
def learning_curves(
    adapter: str, histories: dict[str, list[History]], quality: list[str], meta: dict[str, MetricMeta], colors: dict[str, str], path: Path
) -> bool:
    """One figure for one adapter: a panel per curve column (three to a row), a line per strategy (mean over
    seeds, ±1 std band), one legend to the right of the panels. The title is the page's caption, not drawn."""
    cols = curve_columns([h for hs in histories.values() for h in hs], quality)
    if not cols:
        return False
    from matplotlib.lines import Line2D

    ncol = min(len(cols), 3)
    nrow = math.ceil(len(cols) / ncol)
    w, h = 3.0 * ncol + 1.8, 2.4 * nrow + 0.2
    fig = _figure(w, h)
    fig.subplots_adjust(left=0.75 / w, right=1 - 1.9 / w, bottom=0.55 / h, top=1 - 0.35 / h, wspace=0.35, hspace=0.6)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, col in zip(axes, cols, strict=False):
        for strategy, hs in sorted(histories.items()):
            steps, mean, std = mean_curve(hs, col)
            if not steps:
                continue
            if len(steps) < SPARSE:  # two measurements say nothing about the steps between: no line through them
                ax.errorbar(steps, mean, yerr=std if any(std) else None, color=colors[strategy], ls="none", marker="o", ms=4, capsize=3)
                continue
            ax.plot(steps, mean, color=colors[strategy], lw=1.4, marker="o" if len(steps) < 6 else None, ms=3)
            if any(std):
                ax.fill_between(
                    steps,
                    [m - s for m, s in zip(mean, std, strict=True)],
                    [m + s for m, s in zip(mean, std, strict=True)],
                    color=colors[strategy],
                    alpha=0.15,
                    lw=0,
                )
        arrow = f" {meta[col].arrow}" if col in meta and meta[col].arrow else ""
        ax.set_title(f"{col}{arrow}", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colors[s], lw=2, label=f"{s} (n={len(hs)})") for s, hs in sorted(histories.items())]
    fig.legend(handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1 - 1.8 / w, 1 - 0.3 / h))
    fig.savefig(path)
    return True


@_plain_text
def quality_vs_compute(rows: list[Row], quality: list[str], meta: dict[str, MetricMeta], colors: dict[str, str], path: Path) -> bool:
    """Each adapter × strategy as a point: metric mean against total compute (pretrain + train seconds)."""
    cols = [m for m in quality if any(r.cells[m].has_value for r in rows) and "total_seconds" in rows[0].cells][:MAX_PANELS]
    if not cols:
        return False
    from matplotlib.collections import LineCollection

    markers = "osD^v<>phX*"
    adapters = sorted({r.adapter for r in rows})
    fig = _figure(3.3 * len(cols) + 1.6, 3.0)
    _margins(fig, 3.3 * len(cols) + 1.6, 3.0, right=1.6)
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    for ax, m in zip(axes, cols, strict=True):
        # One LineCollection for all error bars and one scatter per adapter: an errorbar() call per point
        # made this figure the slowest part of a 1,000-run report.
        segs, seg_colors = [], []
        points: dict[str, tuple[list[float], list[float], list[str]]] = {a: ([], [], []) for a in adapters}
        for r in rows:
            c, t = r.cells[m], r.cells["total_seconds"]
            if not (c.has_value and t.has_value):
                continue
            if math.isfinite(t.ci95):
                t_lo, t_hi = meta["total_seconds"].span(t.mean, t.ci95)
                segs.append([(t_lo, c.mean), (t_hi, c.mean)])
                seg_colors.append(colors[r.strategy])
            if math.isfinite(c.ci95):
                lo, hi = meta[m].span(c.mean, c.ci95)
                segs.append([(t.mean, lo), (t.mean, hi)])
                seg_colors.append(colors[r.strategy])
            xs, ys, cs = points[r.adapter]
            xs.append(t.mean), ys.append(c.mean), cs.append(colors[r.strategy])
        if segs:
            ax.add_collection(LineCollection(segs, colors=seg_colors, linewidths=0.8))
        for i, (xs, ys, cs) in enumerate(points.values()):
            if xs:
                ax.scatter(xs, ys, c=cs, marker=markers[i % len(markers)], s=22, zorder=3, edgecolors="white", linewidths=0.4)
        ax.autoscale_view()
        ax.set_title(f"{m} {meta[m].arrow}", fontsize=9)
        ax.set_xlabel("total seconds (pretrain + train)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    drawn = {r.strategy for r in rows if r.cells["total_seconds"].has_value and any(r.cells[m].has_value for m in cols)}
    _legend(axes[-1], {s: c for s, c in colors.items() if s in drawn}, adapters, markers)
    fig.savefig(path)  # the title is the page's caption
    return True


def _legend(ax, colors: dict[str, str], adapters: list[str], markers: str) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=6, label=s) for s, c in colors.items()]
    handles += [Line2D([], [], color="#444", ls="", marker=markers[i % len(markers)], label=a) for i, a in enumerate(adapters)]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.04, 0.5))


@_plain_text
def bar_charts(rows: list[Row], metrics: list[str], meta: dict[str, MetricMeta], colors: dict[str, str], path: Path) -> bool:
    """Grouped bars per metric: adapters on x, strategies as bars, 95% CI error bars."""
    cols = [m for m in metrics if any(r.cells[m].has_value for r in rows)][: 2 * MAX_PANELS]
    if not cols:
        return False
    adapters = sorted({r.adapter for r in rows})
    # Only strategies with a bar: one that is n/a everywhere gets neither a slot nor a legend entry.
    strategies = sorted(s for s in colors if any(r.strategy == s and any(r.cells[m].has_value for m in cols) for r in rows))
    ncol = min(len(cols), 3)
    nrow = math.ceil(len(cols) / ncol)
    width = max(3.2, min(0.12 * len(adapters) * len(strategies) + 1.2, 9.0))
    fig = _figure(width * ncol + 1.4, 2.6 * nrow)
    _margins(fig, width * ncol + 1.4, 2.6 * nrow, right=1.5, rows=nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    bw = 0.8 / max(len(strategies), 1)
    index = {(r.adapter, r.strategy): r for r in rows}
    from matplotlib.collections import LineCollection

    for ax, m in zip(axes, cols, strict=False):
        # One bar() and one LineCollection per panel: per-strategy bar(yerr=...) calls cost a container each.
        xs, ys, cs, segs = [], [], [], []
        for j, s in enumerate(strategies):
            for i, a in enumerate(adapters):
                r = index.get((a, s))
                if r is None or not r.cells[m].has_value:
                    continue
                c = r.cells[m]
                x = i - 0.4 + bw * (j + 0.5)
                xs.append(x), ys.append(c.mean), cs.append(colors[s])
                if math.isfinite(c.ci95):
                    lo, hi = meta[m].span(c.mean, c.ci95)
                    segs.append([(x, lo), (x, hi)])
        ax.bar(xs, ys, bw, color=cs)
        ax.add_collection(LineCollection(segs, colors="black", linewidths=0.7))
        ax.autoscale_view()
        if ys and min(ys) >= 0:  # a non-negative metric: a wide CI (n = 2 seeds) must not push the axis below 0
            ax.set_ylim(bottom=0)
        # Rotated labels anchored at their right end, so long neighbours (transformer_seq, vae) do not overlap.
        tilt = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if len(adapters) > 4 else {}
        ax.set_xticks(range(len(adapters)), adapters, fontsize=7, **tilt)
        ax.set_title(f"{m} {meta[m].arrow}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    from matplotlib.patches import Patch

    # One legend beside the panels, never over a bar; the title is the page's caption.
    fig.legend(
        handles=[Patch(color=colors[s], label=s) for s in strategies],
        fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1 - 1.4 / (width * ncol + 1.4), 0.97),
    )
    fig.savefig(path)
    return True
