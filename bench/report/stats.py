"""The numbers behind the report: per adapter × strategy cells (mean ± 95% CI, n), the best strategy per
adapter and metric (respecting each metric's direction), and Δ vs scratch with Welch's t-test.

Pure functions over result dicts, shared by the HTML page and the md/tex/csv exports, so every format
shows the same numbers. Templates only display what is computed here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.aggregate import seed_stats
from bench.metrics.info import COST_METRICS, metric_info
from bench.result import RunResult

BASELINE = "scratch"
ALPHA = (0.001, 0.01, 0.05)  # thresholds for ***, **, *
STATUS_ORDER = ("completed", "diverged", "failed", "not_applicable")


@dataclass(frozen=True)
class MetricMeta:
    name: str
    higher_is_better: bool | None  # None: not in the metric table, so no "best" can be claimed
    unit: str = ""
    description: str = ""
    cost: bool = False  # measured by the runner (time, memory, size), not computed from samples

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
    delta: float | None = None  # mean − baseline mean (same adapter)
    p: float | None = None  # Welch's t-test p-value vs the baseline; None: untestable (n < 2 on a side)
    baseline: bool = False
    na: str | None = None  # why there is no number

    @property
    def stars(self) -> str:
        return significance_stars(self.p)

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
            out[name] = MetricMeta(name, info.higher_is_better, info.unit, info.description, cost=info.cost)
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


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch's t-test p-value (unequal variances). None when a side has < 2 values: one seed
    has no spread, so no test is possible and the report says so rather than inventing significance."""
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        # Zero variance on both sides (e.g. a parameter count): the t statistic is undefined; equal
        # constants do not differ, different constants differ with certainty.
        return 1.0 if a[0] == b[0] else 0.0
    # The closed form of scipy.stats.ttest_ind(a, b, equal_var=False) (tests check they agree): scipy's
    # wrapper costs ~5 ms a call, which dominated rendering a 1,000-run suite.
    from scipy.special import stdtr

    na, nb = len(a), len(b)
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / na + vb / nb
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    p = float(2 * stdtr(df, -abs(t)))
    return p if math.isfinite(p) else None


def significance_stars(p: float | None) -> str:
    if p is None:
        return ""
    for k, alpha in enumerate(ALPHA):
        if p < alpha:
            return "*" * (len(ALPHA) - k)
    return ""


def baseline_strategy(rows: list[Row]) -> str | None:
    """The strategy Δ is measured against: one named 'scratch', else any strategy whose task is scratch."""
    names = {r.strategy for r in rows}
    if BASELINE in names:
        return BASELINE
    return next((r.strategy for r in sorted(rows, key=lambda r: r.strategy) if r.task == "scratch"), None)


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


def build_rows(results: list[RunResult], metrics: list[str], meta: dict[str, MetricMeta]) -> list[Row]:
    """One Row per adapter × strategy with a Cell per metric; best and Δ/Welch filled in."""
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
            if not vals:
                c.na = _na_reason(m, group)
            cells[m] = c
        rows.append(Row(adapter, strategy, fam, task, counts, len(group), sorted(r.run_id for r in group), cells))
    mark_best(rows, meta)
    add_deltas(rows, metrics)
    return rows


def mark_best(rows: list[Row], meta: dict[str, MetricMeta]) -> None:
    """Per adapter and metric, mark the strategy with the best mean (ties all marked). Needs a known
    direction and at least two strategies with numbers: a lone strategy is not 'best' of anything."""
    for adapter in sorted({r.adapter for r in rows}):
        mine = [r for r in rows if r.adapter == adapter]
        for m, mm in meta.items():
            if mm.higher_is_better is None:
                continue
            have = [r for r in mine if m in r.cells and r.cells[m].has_value]
            if len(have) < 2:
                continue
            pick = max if mm.higher_is_better else min
            best = pick(r.cells[m].mean for r in have)
            if all(math.isclose(r.cells[m].mean, best, rel_tol=1e-12) for r in have):
                continue  # everyone ties (e.g. the same parameter count): nothing is best
            for r in have:
                r.cells[m].best = math.isclose(r.cells[m].mean, best, rel_tol=1e-12, abs_tol=0.0)


def add_deltas(rows: list[Row], metrics: list[str]) -> None:
    base_name = baseline_strategy(rows)
    if base_name is None:
        return
    for r in rows:
        base = next((b for b in rows if b.adapter == r.adapter and b.strategy == base_name), None)
        if base is None or sum(b.adapter == r.adapter for b in rows) < 2:
            continue  # no baseline, or nothing to compare it with: "baseline" labels would only add noise
        for m in metrics:
            c, b = r.cells[m], base.cells[m]
            if r is base:
                c.baseline = True
                continue
            if c.has_value and b.has_value:
                c.delta = c.mean - b.mean
                c.p = welch_p(c.values, b.values)


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


def fmt_p(p: float | None) -> str:
    if p is None:
        return "untested (needs ≥ 2 completed seeds on both sides)"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def summary_records(rows: list[Row], metrics: list[str]) -> list[dict[str, Any]]:
    """Flat records (one per row) for the csv export: counts, mean/ci95/std/n, best, Δ and p per metric."""
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
                    f"{m}_delta_vs_{BASELINE}": c.delta,
                    f"{m}_welch_p": c.p,
                    f"{m}_na_reason": c.na,
                }
            )
        out.append(rec)
    return out


def as_frame(rows: list[Row], metrics: list[str]) -> pd.DataFrame:
    return pd.DataFrame(summary_records(rows, metrics))
