"""The sweep figure: the relative paired Δ against the baseline, plotted against the swept suite value.

"Gain from pretraining against target data size" (Transferring GANs, Fig. 4) is the question a sweep of
`dataset.limit` asks. One panel per adapter (and per combination of any further swept values), one line per
strategy, the 95% paired interval as error bars, a dashed zero line, and a filled marker only where the
comparison is significant after Holm correction with >= 3 pairs. The data are comparisons.csv's rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.stats.compare import group_columns

MAX_PANELS = 12


def sweep_axes(comparisons: pd.DataFrame) -> list[str]:
    """The swept columns of a comparisons frame (e.g. `dataset.limit`), in suite order."""
    return [c for c in group_columns(comparisons) if c != "adapter"]


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def delta_vs_sweep(comparisons: pd.DataFrame, metric: str, colors: dict[str, str], path: Path) -> bool:
    """Draw the figure to `path` (PNG); False when the suite sweeps nothing or has no Δ of `metric`."""
    axes = sweep_axes(comparisons)
    if not axes or comparisons.empty:
        return False
    comp = comparisons[(comparisons["metric"] == metric) & comparisons["rel_delta"].notna()]
    if comp.empty:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    with matplotlib.rc_context({"text.parse_math": False}):
        return _draw(comp, axes[0], axes[1:], metric, colors, path)


def _draw(comp: pd.DataFrame, x: str, rest: list[str], metric: str, colors: dict[str, str], path: Path) -> bool:
    from matplotlib.figure import Figure

    panels = list(comp.groupby(["adapter", *rest], sort=True, dropna=False))[:MAX_PANELS]
    xs_all = sorted(comp[x].dropna().unique().tolist(), key=lambda v: (not _numeric([v]), v if _numeric([v]) else str(v)))
    numeric = _numeric(xs_all)
    log = numeric and min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 8  # sizes grow geometrically: equal steps read better
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(xs_all)}
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    w, h = max(7.0, 4.2 * ncol + 1.6), 3.2 * nrow + 1.1  # at least wide enough for the note under the panels
    fig = Figure(figsize=(w, h), dpi=90)
    fig.subplots_adjust(left=0.9 / w, right=1 - 1.5 / w, bottom=1.0 / h, top=1 - 0.7 / h, wspace=0.3, hspace=0.55)
    strategies = sorted(comp["strategy"].unique())
    n_strat = len(strategies)
    span = (max(pos.values()) - min(pos.values())) or 1.0
    for k, (key, g) in enumerate(panels):
        key = key if isinstance(key, tuple) else (key,)
        ax = fig.add_subplot(nrow, ncol, k + 1)
        ax.axhline(0, color="#888", lw=0.8, ls="--")
        for j, s in enumerate(strategies):
            gs = g[g["strategy"] == s].sort_values(x, key=lambda col: col.map(pos))
            if gs.empty:
                continue
            # A small sideways offset per strategy, so error bars at the same x do not hide each other.
            off = j - (n_strat - 1) / 2
            px = [pos[v] * 10 ** (0.02 * off) if log else pos[v] + 0.03 * off * span for v in gs[x]]
            y = gs["rel_delta"].to_numpy(float) * 100
            lo = (gs["rel_delta"] - gs["rel_ci_low"]).to_numpy(float) * 100
            hi = (gs["rel_ci_high"] - gs["rel_delta"]).to_numpy(float) * 100
            c = colors.get(s, "#333")
            ax.errorbar(px, y, yerr=[lo, hi], color=c, marker="o", ms=5, mfc="white", capsize=3, lw=1.4, label=s)
            sig = gs["significant"].astype(bool).to_numpy()
            if sig.any():
                ax.plot([p for p, f in zip(px, sig, strict=True) if f], y[sig], "o", color=c, ms=6)
        if log:
            ax.set_xscale("log")
        ax.set_xticks([pos[v] for v in xs_all], [str(v) for v in xs_all], fontsize=8)
        ax.minorticks_off()
        title = " · ".join([str(key[0]), *(f"{r.split('.', 1)[1]} {v}" for r, v in zip(rest, key[1:], strict=True))])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x.split(".", 1)[1], fontsize=8)
        if k % ncol == 0:
            ax.set_ylabel(f"{metric}: Δ vs {g['baseline'].iloc[0]} (%)", fontsize=8)
        ax.tick_params(labelsize=8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8, frameon=False)
    fig.text(
        0.5,
        0.015,
        "Mean paired difference over seeds within each value, relative to the baseline's mean; bars: 95% CI.\n"
        "Filled marker: significant (p_holm < 0.05 with n ≥ 3); open: not resolved. Below 0: the strategy lowers the metric.",
        ha="center",
        fontsize=7,
        color="#555",
    )
    fig.savefig(path)
    return True


__all__ = ["delta_vs_sweep", "sweep_axes"]
