"""The verdict heatmap: adapter × strategy, the relative paired Δ of the headline metric against the baseline.

Colour says better (purple) or worse (orange) by the metric's direction, saturating at ±50% (a fixed scale,
so one wild unresolved cell does not wash out the ones that resolve);
a thick black frame and a "*" mark only the comparisons significant after Holm correction with >= 3 pairs.
Every label is plain text (parse_math off), so a `$` in a strategy name is printed, never typeset.
"""

from __future__ import annotations

from pathlib import Path

from bench.report.verdict import Verdict, pct

NO_VALUE = "#eeeeee"
SATURATE = 0.5  # |relative Δ| at full colour


def verdict_heatmap(v: Verdict, path: Path) -> bool:
    """Draw the heatmap to `path` (PNG); False when there is nothing to draw."""
    if not v.cells:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    with matplotlib.rc_context({"text.parse_math": False}):
        return _draw(v, path)


def _draw(v: Verdict, path: Path) -> bool:
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows, cols = v.adapters, v.strategies
    w = max(4.5, 1.25 * len(cols) + 2.4)
    h = max(1.9, 0.62 * len(rows) + 1.5)
    fig = Figure(figsize=(w, h), dpi=100)
    fig.subplots_adjust(left=1.5 / w, right=1 - 0.9 / w, bottom=0.9 / h, top=1 - 0.6 / h)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["PuOr"]  # purple-orange: readable for the common colour-vision deficiencies
    for i, a in enumerate(rows):
        for j, s in enumerate(cols):
            c = v.cells.get((a, s))
            if c is None or not c.has_value:
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=NO_VALUE, edgecolor="white", lw=2))
                ax.text(j + 0.5, i + 0.5, "n/a" if c is None else "no Δ", ha="center", va="center", fontsize=8, color="#777")
                continue
            # Better → the purple end, worse → the orange end; strength grows with |Δ| up to SATURATE.
            goodness = min(abs(c.rel) / SATURATE, 1.0) * (1 if c.better else -1 if c.better is False else 0)
            face = cmap(0.5 + 0.45 * goodness)
            if not c.significant:  # pale: an estimate, not a finding; full colour is kept for what resolves
                face = tuple(0.55 * 1.0 + 0.45 * ch for ch in face[:3])
                goodness *= 0.45
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=face, edgecolor="white", lw=2))
            dark = abs(goodness) > 0.6
            color = "white" if dark else "#222"
            mark = " *" if c.significant else ""
            ax.text(
                j + 0.5, i + 0.42, f"{pct(c.rel)}{mark}", ha="center", va="center", fontsize=9, color=color, weight="bold" if mark else None
            )
            sub = f"n={c.n_pairs}" + ("" if c.n_pairs >= 3 else " (too few)")
            ax.text(j + 0.5, i + 0.74, sub, ha="center", va="center", fontsize=8, color=color)
            if c.significant:
                ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, edgecolor="black", lw=2.2))
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(
        [j + 0.5 for j in range(len(cols))],
        cols,
        fontsize=8,
        rotation=20 if len(cols) > 4 else 0,
        ha="right" if len(cols) > 4 else "center",
    )
    ax.set_yticks([i + 0.5 for i in range(len(rows))], rows, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(f"{v.metric}: relative Δ against {v.baseline} (paired by seed)", fontsize=9)
    fig.text(
        0.5,
        0.02,
        # Two lines: on one, the note was wider than a heatmap of one or two strategies and was cut at both ends.
        f"purple: better, orange: worse ({v.direction}), full at ±{SATURATE:.0%};\n"
        "pale: not significant; * and frame: p_holm < 0.05 with n ≥ 3",
        ha="center",
        fontsize=8,
        color="#555",
    )
    fig.savefig(path)
    return True
