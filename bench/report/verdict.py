"""The Verdict: the answer the report opens with, drawn from comparisons.csv.

For the suite's headline metric (the confirmatory family): per adapter × strategy, the decision (better /
worse / equivalent / inconclusive) with the test that made it, the relative paired Δ with the simultaneous
interval that agrees with the decision, Holm-adjusted p, P(improvement), the seeds used and, when undecided,
the seeds that would decide it; one plain sentence per adapter; the minimum detectable effect at the suite's
n; and the flags a reader must see before believing a number (diverged runs, samples that
cover fewer modes than the real data, and any metric whose metadata carries a flag threshold, such as a
data-copying test). Pure data for the template, the Markdown export and the heatmap.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.report.stats import MetricMeta
from bench.stats.compare import ALPHA, MIN_PAIRS, POWER
from bench.store.result import RunResult


@dataclass
class VerdictCell:
    adapter: str
    strategy: str
    n_pairs: int = 0
    rel: float = math.nan  # relative Δ (Δ / |baseline mean|)
    rel_low: float = math.nan  # the simultaneous interval (level `level`): excludes 0 exactly when called
    rel_high: float = math.nan
    decision: str = "inconclusive"  # better | worse | equivalent | inconclusive (higher | lower: no direction)
    by: str = ""  # the test that decided it
    level: float = math.nan  # the family's interval level, α / max(1, m − R)
    margin_rel: float = math.nan  # the equivalence margin relative to the baseline mean (NaN: none)
    needed: int | None = None  # paired seeds that would decide it (plug-in), when undecided
    delta: float = math.nan
    p_holm: float = math.nan
    prob: float = math.nan
    mde: float = math.nan
    base_mean: float = math.nan
    significant: bool = False
    better: bool | None = None  # the direction of Δ judged by the metric (None: no direction or Δ = 0)
    why: str = ""  # why the cell is unmarked although it has a number, or why it has none

    @property
    def has_value(self) -> bool:
        return math.isfinite(self.rel)


@dataclass
class Flag:
    adapter: str
    strategy: str
    kind: str  # collapse | memorisation
    text: str


@dataclass
class Verdict:
    metric: str
    direction: str
    baseline: str
    adapters: list[str]
    strategies: list[str]
    cells: dict[tuple[str, str], VerdictCell]
    sentences: dict[str, str]
    mde: dict[str, str]
    flags: list[Flag] = field(default_factory=list)
    n_tests: int = 0  # the headline family's testable comparisons (Holm's m)
    n_called: int = 0
    sequential: bool = False
    max_pairs: int = 0
    note: str = ""  # why nothing is compared (cells empty): the report says so instead of staying silent
    traces: list = field(default_factory=list)  # seqplot.Trace per comparison: its interval as the seeds arrived

    @property
    def compared(self) -> bool:
        return bool(self.cells)


def pct(x: float, signed: bool = True) -> str:
    """A ratio as a percentage with a true minus sign: -0.183 → '−18%'."""
    if not math.isfinite(x):
        return "–"
    v = 100 * x
    digits = 0 if abs(v) >= 10 else 1
    text = f"{abs(v):.{digits}f}%"
    return (("−" if v < 0 else "+") if signed and v != 0 else "") + text


def fmt_p(p: float) -> str:
    return "–" if not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.995 else "1")


def p_is(p: float) -> str:
    """'p_holm = 0.012' or 'p_holm < 0.001'."""
    text = fmt_p(p)
    return f"p_holm {text}" if text.startswith("<") else f"p_holm = {text}"


def interval(c: VerdictCell) -> str:
    """' [−25%, −10%]' (the simultaneous interval), ' [−∞, …]' halves for a sequence still unbounded, or
    nothing when there is no interval (no test: fewer than 3 pairs or zero spread)."""
    if math.isnan(c.rel_low) or math.isnan(c.rel_high):
        return ""
    lo = pct(c.rel_low) if math.isfinite(c.rel_low) else "−∞"
    hi = pct(c.rel_high) if math.isfinite(c.rel_high) else "+∞"
    return f" [{lo}, {hi}]"


def _num(rec: dict[str, Any], key: str) -> float:
    v = rec.get(key)
    try:
        return float(v) if v is not None and v != "" else math.nan
    except (TypeError, ValueError):
        return math.nan


def still_needed(c: VerdictCell) -> str:
    """'~12 seeds' for an undecided comparison, '> 1000' when the plug-in never decides, '' when decided."""
    if c.decision != "inconclusive" or c.why.startswith(("n = ", "untestable", "zero")):
        return ""
    return f"~{c.needed}" if c.needed is not None else "out of reach"


def _cell(rec: dict[str, Any], hib: bool | None) -> VerdictCell:
    c = VerdictCell(
        adapter=str(rec["adapter"]),
        strategy=str(rec["strategy"]),
        n_pairs=int(rec["n_pairs"]),
        rel=float(rec["rel_delta"]),
        rel_low=_num(rec, "rel_sim_low"),
        rel_high=_num(rec, "rel_sim_high"),
        decision=str(rec.get("decision") or "inconclusive"),
        by=str(rec.get("decided_by") or "") if str(rec.get("decided_by")) != "nan" else "",
        level=_num(rec, "sim_level"),
        margin_rel=_num(rec, "margin") / abs(float(rec["baseline_mean"])) if float(rec["baseline_mean"] or 0) else math.nan,
        needed=int(n) if (n := _num(rec, "seeds_needed")) == n else None,
        delta=float(rec["delta"]),
        p_holm=float(rec["p_holm"]),
        prob=float(rec["prob_improvement"]),
        mde=float(rec["mde"]),
        base_mean=float(rec["baseline_mean"]),
        significant=bool(rec["significant"]),
    )
    if hib is not None and math.isfinite(c.delta) and c.delta != 0:
        c.better = (c.delta > 0) == hib
    note = str(rec.get("note") or "")
    if note == "nan":
        note = ""
    if c.n_pairs < MIN_PAIRS:
        c.why = f"n = {c.n_pairs} paired seed(s): at least {MIN_PAIRS} are needed to call a difference"
    elif not math.isfinite(c.p_holm):
        c.why = note or "untestable"
    elif c.decision == "equivalent":
        c.why = f"within ±{pct(c.margin_rel, signed=False)}"
    elif not c.significant:
        c.why = f"{p_is(c.p_holm)} > {ALPHA}"
    # Under sequential seeds a baseline with more seeds than a stopped strategy is the design, not a loss.
    sequential = c.by == "confidence sequence" or math.isfinite(_num(rec, "p_anytime"))
    extra = [
        part
        for part in note.split("; ")
        if part and not part.startswith("untestable") and part not in c.why and not (sequential and "unmatched" in part)
    ]
    c.why = "; ".join([c.why, *extra] if c.why else extra)
    return c


def _sentence(adapter: str, metric: str, cells: list[VerdictCell], n: int) -> str:
    """One plain sentence: what resolves, by how much (with the interval that agrees with the call), what is
    equivalent within the margin, and what does not resolve."""
    if not cells:
        return f"{adapter}: no strategy has a {metric} to compare with the baseline."
    sig = sorted((c for c in cells if c.significant), key=lambda c: -abs(c.rel))
    parts = []
    for c in sig:
        verb = "lowers" if c.delta < 0 else "raises"
        judged = {True: "better", False: "worse", None: ""}[c.better]
        parts.append(
            f"{c.strategy} {verb} {adapter}'s {metric} by {pct(abs(c.rel), signed=False)}"
            f"{interval(c)}{f' ({judged})' if judged else ''}, {p_is(c.p_holm)}, P(improvement) = {c.prob:.2f}"
        )
    same = [c for c in cells if c.decision == "equivalent"]
    if same:
        names = ", ".join(f"{c.strategy} {pct(c.rel)}{interval(c)}" for c in same)
        parts.append(f"{adapter}'s {metric} is equivalent to the baseline's within ±{pct(same[0].margin_rel, signed=False)}: {names}")
    rest = [c for c in cells if c.decision == "inconclusive"]
    if not parts:
        best = max((c for c in cells if c.has_value), key=lambda c: abs(c.rel), default=None)
        text = f"No strategy changes {adapter}'s {metric} detectably at n = {n}"
        if best is not None:
            text += f" (largest estimate: {best.strategy}, {pct(best.rel)}{interval(best)})"
        return text + "."
    # Under sequential seeds each comparison stopped at its own n: say the range, not one n.
    ns = sorted({c.n_pairs for c in rest}) or [n]
    at = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    tail = f"; no other strategy resolves at {at}" if rest else ""
    return "; ".join(parts) + tail + "."


def _mde_text(cells: list[VerdictCell]) -> str:
    """The adapter's median minimum detectable effect, relative to the baseline mean when there is one."""
    vals = [c for c in cells if math.isfinite(c.mde) and c.n_pairs >= 2]
    if not vals:
        return ""
    n = max(c.n_pairs for c in vals)
    rel = [c.mde / abs(c.base_mean) for c in vals if math.isfinite(c.base_mean) and c.base_mean != 0]
    shown = f"±{pct(statistics.median(rel), signed=False)}" if rel else f"±{statistics.median(c.mde for c in vals):.3g}"
    return f"{shown} at n = {n}"


def mde_legend(v: Verdict) -> str:
    return (
        f"median minimum detectable effect on {v.metric} relative to {v.baseline}'s mean: {POWER:.0%} power, paired t at level "
        f"{ALPHA}/{v.n_tests} (Holm's strictest step in the headline family), from the observed SD of the per-seed differences"
    )


def interval_legend(v: Verdict) -> str:
    """What the interval beside each call is, in one sentence."""
    seq = any(c.by == "confidence sequence" for c in v.cells.values()) or v.sequential
    how = "anytime-valid confidence sequences (valid however many rounds of seeds ran)" if seq else "paired t intervals"
    return (
        f"The {v.metric} comparisons are the confirmatory family ({v.n_tests} tests, Holm); every other metric is secondary, "
        f"in its own family (comparisons.csv). Intervals are simultaneous {how} at level {ALPHA}/{max(1, v.n_tests - v.n_called)} "
        f"(α / (tests − calls)), so an interval excludes 0 exactly when its comparison is called; the unadjusted 95% "
        f"intervals are in comparisons.csv."
    )


def build_verdict(
    comparisons: pd.DataFrame, metric: str, meta: dict[str, MetricMeta], results: list[RunResult], baseline: str | None
) -> Verdict | None:
    """The verdict for `metric`; None only without runs. When the suite has no comparison on `metric` (one
    strategy, no baseline runs, no paired seeds) the verdict has no cells, a `note` saying why, and still the
    flags (a diverged or copying run matters with or without a comparison)."""
    if not results:
        return None
    direction = meta[metric].direction if metric in meta else "direction unknown"
    if comparisons.empty or metric not in set(comparisons["metric"]):
        base = baseline or "scratch"
        return Verdict(metric, direction, base, [], [], {}, {}, {}, flags(results, meta), note=_nothing_compared(results, metric, base))
    hib = meta[metric].higher_is_better if metric in meta else None
    comp = comparisons[comparisons["metric"] == metric]
    cells = {(c.adapter, c.strategy): c for c in (_cell(rec, hib) for rec in comp.to_dict("records"))}
    adapters = sorted({a for a, _ in cells})
    strategies = sorted({s for _, s in cells})
    n_tests = int(((pd.to_numeric(comp["p_value"], errors="coerce").notna()) & (comp["n_pairs"] >= MIN_PAIRS)).sum())
    seq = "p_anytime" in comp.columns and pd.to_numeric(comp["p_anytime"], errors="coerce").notna().any()
    per = {a: [c for (aa, _), c in cells.items() if aa == a] for a in adapters}
    mde = {a: _mde_text(per[a]) for a in adapters}
    sentences = {a: _sentence(a, metric, per[a], max((c.n_pairs for c in per[a]), default=0)) for a in adapters}
    base = str(comp["baseline"].iloc[0]) if "baseline" in comp.columns else (baseline or "scratch")
    return Verdict(
        metric=metric,
        direction=direction,
        baseline=base,
        adapters=adapters,
        strategies=strategies,
        cells=cells,
        sentences=sentences,
        mde=mde,
        flags=flags(results, meta),
        n_tests=n_tests,
        n_called=sum(c.significant for c in cells.values()),
        sequential=bool(seq),
        max_pairs=max((c.n_pairs for c in cells.values()), default=0),
    )


def _nothing_compared(results: list[RunResult], metric: str, baseline: str) -> str:
    strategies = sorted({r.strategy for r in results})
    if len(strategies) < 2:
        return (
            f"Nothing to compare: every adapter runs one strategy ({strategies[0]}), so this suite tests no "
            "pretraining effect. The adapters are different models; the tables compare them unpaired, with each "
            "mean's interval over seeds."
        )
    if baseline not in strategies:
        return f"Nothing to compare: no run uses the baseline strategy '{baseline}' (the suite's options.baseline)."
    return (
        f"Nothing to compare on {metric}: no strategy has completed seeds with a {metric} number in common with "
        f"{baseline} for the same adapter."
    )


def _real_modes(r: RunResult) -> float | None:
    """How many modes the real data has: recorded by the modes metric, else the target's class list."""
    info = r.metric_info or {}
    if isinstance(info.get("real_modes"), int | float):
        return float(info["real_modes"])
    classes = (r.spec.get("dataset") or {}).get("classes")
    return float(len(classes)) if isinstance(classes, list) and classes else None


def flags(results: list[RunResult], meta: dict[str, MetricMeta]) -> list[Flag]:
    """Per adapter × strategy: runs that diverged, runs whose samples cover fewer modes than the real data,
    and runs below a metric's flag threshold (metadata `flag_below`, e.g. a data-copying statistic)."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.adapter, r.strategy), []).append(r)
    out: list[Flag] = []
    for (a, s), rs in sorted(groups.items()):
        div = [r for r in rs if r.status == "diverged"]
        if div:
            out.append(Flag(a, s, "collapse", f"{len(div)} of {len(rs)} runs diverged"))
        done = [r for r in rs if r.status == "completed"]
        low = []
        for r in done:
            m, real = r.metrics.get("modes"), _real_modes(r)
            if isinstance(m, int | float) and real is not None and m < real:
                low.append(f"s{r.seed}: {m:g}")
        if low:
            out.append(Flag(a, s, "collapse", f"{len(low)} of {len(done)} runs cover fewer modes than the real data ({', '.join(low)})"))
        for name, mm in meta.items():
            if mm.flag_below is None:
                continue
            below = [r for r in done if isinstance(v := r.metrics.get(name), int | float) and v < mm.flag_below]
            if below:
                vals = ", ".join(f"s{r.seed}: {r.metrics[name]:.3g}" for r in below)
                out.append(Flag(a, s, "memorisation", f"{name} below {mm.flag_below:g} in {len(below)} of {len(done)} runs ({vals})"))
    return out


def to_markdown(v: Verdict) -> str:
    """The verdict as Markdown: the sentences, a table of the headline comparisons, and the flags."""

    def esc(x: object) -> str:
        return str(x).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")

    lines = [f"## Verdict: {esc(v.metric)} ({v.direction}) against {esc(v.baseline)}", ""]
    flag_lines = ["", "Flags:", ""] + [f"- {esc(f.adapter)} / {esc(f.strategy)}: {f.kind}: {esc(f.text)}" for f in v.flags]
    if not v.compared:
        return "\n".join([*lines, esc(v.note), *(flag_lines if v.flags else [])]) + "\n"
    lines += [f"- {esc(v.sentences[a])}" for a in v.adapters]
    lines += (
        ["", "Resolution: " + ", ".join(f"{esc(a)} {esc(v.mde[a])}" for a in v.adapters if v.mde[a]) + f" ({esc(mde_legend(v))})."]
        if any(v.mde.values())
        else []
    )
    lines += [
        "",
        "| adapter | strategy | decision | relative Δ [simultaneous CI] | seeds | seeds to decide | p_holm | P(improvement) |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for (a, s), c in sorted(v.cells.items()):
        mark = esc(f"{c.decision}" + (f" ({c.by})" if c.by else (f": {c.why}" if c.why else "")))
        rel = f"{pct(c.rel)}{interval(c)}"
        prob = f"{c.prob:.2f}" if math.isfinite(c.prob) else "–"
        lines.append(f"| {esc(a)} | {esc(s)} | {mark} | {rel} | {c.n_pairs} | {still_needed(c) or '–'} | {fmt_p(c.p_holm)} | {prob} |")
    lines += ["", esc(interval_legend(v))]
    if v.flags:
        lines += flag_lines
    return "\n".join(lines) + "\n"
