"""The numbers behind the report: per adapter × strategy cells (mean ± 95% CI, n), the best strategy per
adapter and metric (respecting each metric's direction; only among cells with >= 2 seeds), and Δ against
the baseline from the paired, Holm-corrected comparisons of bench.stats.compare (comparisons.csv).

Pure functions over result dicts, shared by the HTML page and the md/tex/csv exports, so every format
shows the same numbers. Templates only display what is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.metrics.info import COST_METRICS, metric_info
from bench.stats.aggregate import seed_stats
from bench.store.result import RunResult

BASELINE = "scratch"
SIG_MARK = "*"  # called better or worse: Holm within the metric's family (headline: confirmatory), >= 3 paired seeds
STATUS_ORDER = ("completed", "diverged", "failed", "not_applicable")


@dataclass(frozen=True)
class MetricMeta:
    name: str
    higher_is_better: bool | None  # None: not in the metric table, so no "best" can be claimed
    unit: str = ""
    description: str = ""
    cost: bool = False  # measured by the runner (time, memory, size), not computed from samples
    flag_below: float | None = None  # a value below this flags the run in the verdict (e.g. data copying)
    bounds: tuple[float | None, float | None] = (None, None)  # the values the metric can take

    def span(self, mean: float, half: float) -> tuple[float, float]:
        """mean ± half, clipped to the metric's bounds: the interval a figure draws."""
        lo, hi = self.bounds
        return (mean - half if lo is None else max(lo, mean - half), mean + half if hi is None else min(hi, mean + half))

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓", None: "?"}[self.higher_is_better]

    @property
    def direction(self) -> str:
        return {True: "higher is better", False: "lower is better", None: "direction unknown (metric not registered)"}[
            self.higher_is_better
        ]


@dataclass
class Cell:
    mean: float = math.nan
    ci95: float = math.nan
    std: float = math.nan
    n: int = 0
    values: list[float] = field(default_factory=list)
    best: bool = False
    delta: float | None = None  # mean paired difference to the baseline (same adapter, matched seeds)
    p: float | None = None  # Holm-adjusted paired t-test p-value; None: untestable (see `note`)
    significant: bool = False  # p_holm < 0.05 with >= 3 pairs
    n_pairs: int = 0
    note: str = ""  # why a Δ has no test, or how many seeds were unmatched
    baseline: bool = False
    na: str | None = None  # why there is no number
    bound: bool = False  # a likelihood bound (`<metric>_exact` False in the runs' metric_info), marked, never ranked against exact

    @property
    def stars(self) -> str:
        return SIG_MARK if self.significant else ""

    @property
    def has_value(self) -> bool:
        return self.n > 0 and math.isfinite(self.mean)


@dataclass
class Row:
    adapter: str
    strategy: str
    family: str | None
    task: str | None
    counts: dict[str, int]
    n_runs: int
    run_ids: list[str]
    cells: dict[str, Cell]

    @property
    def problems(self) -> str:
        """Runs that gave no numbers, spelled out ('1 diverged, 1 failed'); empty when all completed."""
        return ", ".join(f"{self.counts[s]} {s.replace('_', ' ')}" for s in STATUS_ORDER[1:] if self.counts.get(s))


def metric_meta(names: list[str]) -> dict[str, MetricMeta]:
    """Direction, unit and description of each metric from the metric table (bench.metrics.info, no torch).
    A name the table does not know (an older or out-of-tree metric) gets an unknown direction."""
    out: dict[str, MetricMeta] = {}
    for name in names:
        info = metric_info(name)
        if info is None:
            out[name] = MetricMeta(name, None)
        else:
            out[name] = MetricMeta(
                name, info.higher_is_better, info.unit, info.description, cost=info.cost, flag_below=info.flag_below, bounds=info.bounds
            )
    return out


def ordered_metrics(results: list[RunResult]) -> list[str]:
    """Every metric that any run measured or declared n/a: the suite's eval metrics first (their order),
    then other measured ones, cost metrics last. Metrics that are n/a everywhere still get a column."""
    names: list[str] = []
    for r in results:
        for m in (r.spec.get("eval") or {}).get("metrics") or []:
            if m not in names:
                names.append(m)
    measured = [k for r in results for k, v in r.metrics.items() if v is not None]
    extra = [*dict.fromkeys(measured), *(k for r in results for k in r.not_applicable)]
    for m in extra:
        if m not in names and m not in COST_METRICS:
            names.append(m)
    names = [m for m in names if m not in COST_METRICS]
    return names + [m for m in COST_METRICS if m in extra]


def baseline_strategy(rows: list[Row], requested: str | None = None) -> str | None:
    """The strategy Δ is measured against: the suite's `baseline:`, else 'scratch', else a scratch-task one."""
    from bench.stats.compare import pick_baseline

    return pick_baseline([r.strategy for r in rows], requested, {r.strategy: r.task or "" for r in rows})


def _na_reason(metric: str, group: list[RunResult]) -> str:
    """Why a cell has no number, from the runs themselves (never a guess)."""
    done = [r for r in group if r.status == "completed"]
    reasons = sorted({r.not_applicable[metric] for r in done if metric in r.not_applicable})
    if reasons:
        return "; ".join(reasons)
    na_runs = [r for r in group if r.status == "not_applicable"]
    if na_runs and len(na_runs) == len(group):
        return "strategy not applicable: " + "; ".join(sorted({r.error or "no reason recorded" for r in na_runs}))
    if not done:
        counts = {s: sum(r.status == s for r in group) for s in STATUS_ORDER[1:]}
        return "no completed run: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    return "not measured by the completed runs"


def _ceiling_infos(results: list[RunResult]) -> dict[str, list[tuple[RunResult, dict]]]:
    """metric → [(result, its metric_info entry)] for completed runs that recorded {"max", "real"} for it."""
    out: dict[str, list[tuple[RunResult, dict]]] = {}
    for r in results:
        if r.status != "completed":
            continue
        for m, info in (r.metric_info or {}).items():
            ok = isinstance(info, dict) and all(isinstance(info.get(k), int | float) for k in ("max", "real"))
            if ok and isinstance(r.metrics.get(m), int | float):
                out.setdefault(m, []).append((r, info))
    return out


def ceilings(results: list[RunResult]) -> dict[str, str]:
    """metric → the real test split's own score beside the maximum, e.g. modes on digits_stacked: 841 of 1000."""
    out = {}
    for m, pairs in _ceiling_infos(results).items():
        seen = sorted({(float(i["real"]), float(i["max"])) for _, i in pairs})
        out[m] = "; ".join(f"the real test split itself reaches {real:g} of {top:g}" for real, top in seen)
    return out


def saturated(results: list[RunResult]) -> dict[str, str]:
    """Metrics that cannot discriminate here → why. A metric is saturated when every completed run and the real
    test split reach its maximum, as recorded by the run itself in `metric_info[<metric>]` ({"max", "real"};
    today `modes`: every digits run, even the independent-pixel dummy, covers 10 of 10 classes)."""
    out: dict[str, str] = {}
    for m, pairs in _ceiling_infos(results).items():
        if all(r.metrics[m] >= i["max"] and i["real"] >= i["max"] for r, i in pairs):
            top = max(float(i["max"]) for _, i in pairs)
            out[m] = (
                f"every completed run ({len(pairs)}) and the real test split reach the maximum, {top:g}: it cannot tell the models apart here"
            )
    return out


def build_rows(
    results: list[RunResult],
    metrics: list[str],
    meta: dict[str, MetricMeta],
    comparisons: pd.DataFrame | None = None,
    baseline: str | None = None,
) -> list[Row]:
    """One Row per adapter × strategy with a Cell per metric; best and the paired Δ filled in.
    `comparisons` is comparisons.csv's frame (None: computed here from `results`)."""
    by_key: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        by_key.setdefault((r.adapter, r.strategy), []).append(r)
    rows: list[Row] = []
    # The baseline leads each adapter's block so every Δ reads against the row above it.
    order = sorted(by_key, key=lambda k: (k[0], k[1] != BASELINE, k[1]))
    for adapter, strategy in order:
        group = by_key[(adapter, strategy)]
        counts = {s: sum(r.status == s for r in group) for s in STATUS_ORDER}
        fam = next((r.family for r in group if r.family), None)
        task = next((r.task for r in group if r.task), None)
        cells: dict[str, Cell] = {}
        for m in metrics:
            vals = [
                float(v)
                for r in sorted(group, key=lambda r: r.seed)
                if r.status == "completed" and (v := r.metrics.get(m)) is not None and math.isfinite(float(v))
            ]
            st = seed_stats(vals)  # the same numbers as summary.csv: one implementation, in aggregate
            c = Cell(mean=st.mean, ci95=st.ci95, std=st.std, n=st.n, values=vals)
            c.bound = any((r.metric_info or {}).get(f"{m}_exact") is False for r in group if r.status == "completed")
            if not vals:
                c.na = _na_reason(m, group)
            cells[m] = c
        rows.append(Row(adapter, strategy, fam, task, counts, len(group), sorted(r.run_id for r in group), cells))
    mark_best(rows, meta)
    if comparisons is None:
        comparisons = comparisons_for(results, meta, baseline)
    add_deltas(rows, metrics, comparisons, baseline)
    return rows


def comparisons_for(
    results: list[RunResult], meta: Mapping[str, MetricMeta], baseline: str | None = None, options: dict | None = None
) -> pd.DataFrame:
    """comparisons.csv's frame for these results: quality metrics only (cost metrics are not compared), with
    the calls the suite's options ask for (the resolved suite.yaml: headline, margin, seeds; see aggregate)."""
    from bench.stats.aggregate import analysis_of, results_frame
    from bench.stats.compare import comparisons_frame

    df = results_frame(results)
    names = [m for m, mm in meta.items() if not mm.cost and m in df.columns]
    opts = {**(options or {}), **({"baseline": baseline} if baseline else {})}
    return comparisons_frame(df, names, {m: meta[m].higher_is_better for m in names}, **analysis_of(opts, names))


def mark_best(rows: list[Row], meta: dict[str, MetricMeta]) -> None:
    """Per adapter and metric, mark the strategy with the best mean (ties all marked). Needs a known
    direction and at least two strategies with >= 2 seeds: a lone strategy is not 'best' of anything, and a
    single seed has no spread to say it is."""
    for adapter in sorted({r.adapter for r in rows}):
        mine = [r for r in rows if r.adapter == adapter]
        for m, mm in meta.items():
            if mm.higher_is_better is None:
                continue
            have = [r for r in mine if m in r.cells and r.cells[m].has_value and r.cells[m].n >= 2]
            if len(have) < 2 or len({r.cells[m].bound for r in have}) > 1:
                continue  # a bound is never 'best' against an exact value (nor the reverse)
            pick = max if mm.higher_is_better else min
            best = pick(r.cells[m].mean for r in have)
            if all(math.isclose(r.cells[m].mean, best, rel_tol=1e-12) for r in have):
                continue  # everyone ties (e.g. the same parameter count): nothing is best
            for r in have:
                r.cells[m].best = math.isclose(r.cells[m].mean, best, rel_tol=1e-12, abs_tol=0.0)


def add_deltas(rows: list[Row], metrics: list[str], comparisons: pd.DataFrame, baseline: str | None = None) -> None:
    """Δ from the paired comparisons; a cell gets one only with >= 2 paired seeds (one pair has no spread)."""
    base_name = baseline_strategy(rows, baseline)
    if base_name is None:
        return
    index: dict[tuple[str, str, str], list[dict]] = {}
    for rec in comparisons.to_dict("records"):
        index.setdefault((str(rec["adapter"]), str(rec["strategy"]), str(rec["metric"])), []).append(rec)
    for r in rows:
        base = next((b for b in rows if b.adapter == r.adapter and b.strategy == base_name), None)
        if base is None or sum(b.adapter == r.adapter for b in rows) < 2:
            continue  # no baseline, or nothing to compare it with: "baseline" labels would only add noise
        for m in metrics:
            c = r.cells[m]
            if r is base:
                c.baseline = True
                continue
            recs = index.get((r.adapter, r.strategy, m), [])
            if len(recs) != 1:  # none, or one per swept value: the table's row has no single Δ
                continue
            rec = recs[0]
            c.n_pairs, c.note = int(rec["n_pairs"]), str(rec.get("note") or "")
            if c.n_pairs >= 2 and math.isfinite(float(rec["delta"])):
                c.delta = float(rec["delta"])
                ph = float(rec["p_holm"])
                c.p = ph if math.isfinite(ph) else None
                c.significant = bool(rec["significant"])


def fmt_num(x: float | None, digits: int = 3) -> str:
    """Compact human number: 3 significant digits, no exponent for everyday magnitudes."""
    if x is None or not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-4:
        return f"{x:.{digits - 1}e}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def fmt_delta(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return ("−" if x < 0 else "+") + fmt_num(abs(x))


def fmt_p(p: float | None, note: str = "") -> str:
    """A Holm-adjusted p-value as the report prints it; None says why there is none."""
    if p is None:
        return note or "untested (needs ≥ 2 paired seeds)"
    return "p_holm < 0.001" if p < 0.001 else f"p_holm = {p:.3f}"


def summary_records(rows: list[Row], metrics: list[str]) -> list[dict[str, Any]]:
    """Flat records (one per row) for the csv export: counts, mean/ci95/std/n, best, paired Δ, p_holm per metric."""
    out = []
    for r in rows:
        rec: dict[str, Any] = {"adapter": r.adapter, "family": r.family, "strategy": r.strategy, "n_runs": r.n_runs}
        rec.update({f"n_{s}": r.counts.get(s, 0) for s in STATUS_ORDER})
        for m in metrics:
            c = r.cells[m]
            rec.update(
                {
                    f"{m}_mean": c.mean if c.has_value else None,
                    f"{m}_ci95": c.ci95 if math.isfinite(c.ci95) else None,
                    f"{m}_std": c.std if math.isfinite(c.std) else None,
                    f"{m}_n": c.n,
                    f"{m}_best": c.best,
                    f"{m}_delta_vs_baseline": c.delta,
                    f"{m}_p_holm": c.p,
                    f"{m}_significant": c.significant,
                    f"{m}_na_reason": c.na,
                }
            )
        out.append(rec)
    return out


def as_frame(rows: list[Row], metrics: list[str]) -> pd.DataFrame:
    return pd.DataFrame(summary_records(rows, metrics))
