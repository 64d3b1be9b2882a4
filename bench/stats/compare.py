"""Paired comparisons: each strategy against the baseline, paired by seed → comparisons.csv.

Every strategy of an adapter sees, for a given seed, the same initial weights, training-data order,
training noise and evaluation latents (common random numbers; tests/test_compare.py checks it), so
strategy − baseline is measured seed by seed and the seed-to-seed noise they share cancels. Per
(group, strategy ≠ baseline, metric) this module gives the mean paired difference with its unadjusted 95%
t-interval, the paired t-test (scipy.stats.ttest_rel), the probability of improvement of Agarwal et al. 2021
(Mann–Whitney U / (n·m), oriented by the metric's direction), the unpaired (Welch) interval on the same seeds
for contrast, and the minimum detectable effect at this n. The call itself (Holm within the headline family,
each other metric a secondary family; better / worse / equivalent / inconclusive; the simultaneous interval
that agrees with it; anytime-valid under sequential seeds) is bench.stats.calls' (docs/statistics.md).

Pure pandas/scipy over the results table (aggregate.results_frame); torch is never imported here. A
"group" is every identity column that can vary besides strategy and seed: the adapter, plus any swept
suite value that the results table carries as a column named by its path (e.g. `dataset.limit`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.stats.calls import CALL_COLUMNS, Margin, add_calls
from bench.stats.sequential import holm

ALPHA = 0.05
MIN_PAIRS = 3  # fewer paired seeds are never called significant, whatever the p-value (stats.sequential's too)
POWER = 0.8
DEFAULT_BASELINE = "scratch"
AXIS_PREFIXES = ("dataset.", "budget.")  # results columns that are swept suite values (the sweep's hook)
COLUMNS = [
    "adapter",
    "strategy",
    "metric",
    "n_pairs",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "prob_improvement",
    "significant",
    "baseline",
    "baseline_mean",
    "rel_delta",
    "rel_ci_low",
    "rel_ci_high",
    "sd_diff",
    "mde",
    "unpaired_ci_low",
    "unpaired_ci_high",
    "n_unmatched",
    "higher_is_better",
    "p_anytime",
    *CALL_COLUMNS,
    "note",
]


def group_columns(df: pd.DataFrame) -> list[str]:
    """The identity columns a comparison is made within: adapter, then swept values in column order."""
    return ["adapter", *(c for c in df.columns if isinstance(c, str) and c.startswith(AXIS_PREFIXES))]


def prob_improvement(strategy: Sequence[float], baseline: Sequence[float], higher_is_better: bool | None) -> float:
    """P(a run of the strategy beats a run of the baseline), ties counted half (Agarwal et al. 2021):
    the Mann–Whitney U statistic over n·m pairs. NaN when the direction is unknown or a side is empty."""
    x, y = np.asarray(strategy, float), np.asarray(baseline, float)
    if higher_is_better is None or len(x) == 0 or len(y) == 0:
        return math.nan
    if not higher_is_better:
        x, y = -x, -y
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(x, y).statistic) / (len(x) * len(y))


def paired_test(diffs: Sequence[float]) -> tuple[float, float, float, str]:
    """(p, ci_low, ci_high, note) of a paired t-test on strategy − baseline differences.

    With < 2 pairs there is no spread, so no test. Identical differences on every seed have zero variance:
    t is undefined (0/0 or x/0), so p is NaN with the reason, never 0 — the interval is the point itself."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan, math.nan, math.nan, f"untestable: {n} paired seed(s), a test needs >= 2"
    if np.ptp(d) == 0:
        return math.nan, float(d[0]), float(d[0]), "untestable: the same difference on every seed (zero variance)"
    from scipy.stats import ttest_1samp

    res = ttest_1samp(d, 0.0)  # identical to ttest_rel(strategy, baseline) on the paired arrays
    ci = res.confidence_interval(1 - ALPHA)
    return float(res.pvalue), float(ci.low), float(ci.high), ""


def welch_interval(strategy: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """The unpaired 95% interval of mean(strategy) − mean(baseline) (Welch), for contrast with the paired one."""
    x, y = np.asarray(strategy, float), np.asarray(baseline, float)
    if len(x) < 2 or len(y) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        return math.nan, math.nan
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # a constant side (e.g. modes 5, 5, 5) is exact, not "precision loss"
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = ttest_ind(x, y, equal_var=False).confidence_interval(1 - ALPHA)
    return float(ci.low), float(ci.high)


def mde(sd: float, n: int, m: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable effect of a two-sided paired t-test: the smallest |mean difference| detected with
    probability `power` at level alpha/m (Bonferroni, i.e. Holm's first and strictest step for m tests),
    from the noncentral t distribution (scipy.stats.nct) with n − 1 degrees of freedom. NaN when n < 2."""
    if n < 2 or m < 1 or not math.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 0.0
    from scipy.optimize import brentq
    from scipy.stats import nct, t

    dof, crit = n - 1, float(t.ppf(1 - alpha / (2 * m), n - 1))

    def short(delta: float) -> float:  # power(delta) − target, increasing in delta
        nc = delta * math.sqrt(n) / sd
        wrong_side = float(nct.cdf(-crit, dof, nc))  # negligible; scipy returns NaN far in this tail
        return float(nct.sf(crit, dof, nc)) + (wrong_side if math.isfinite(wrong_side) else 0.0) - power

    hi = sd
    while short(hi) < 0:
        hi *= 2
    return float(brentq(short, 0.0, hi, xtol=sd * 1e-6))


def pick_baseline(strategies: Sequence[str], requested: str | None, tasks: Mapping[str, str] | None = None) -> str | None:
    """The suite's `baseline:`, else `scratch`, else the (alphabetically first) strategy whose task is scratch."""
    names = set(strategies)
    if requested:
        return requested if requested in names else None
    if DEFAULT_BASELINE in names:
        return DEFAULT_BASELINE
    return next((s for s in sorted(names) if (tasks or {}).get(s) == "scratch"), None)


def _completed(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "completed"] if "status" in df.columns else df


def _by_seed(done: pd.DataFrame, strategy: str, metric: str) -> pd.Series:
    """A strategy's finite values of a metric, indexed by seed."""
    part = done[done["strategy"] == strategy]
    vals = pd.to_numeric(part[metric], errors="coerce").to_numpy(float)
    keep = np.isfinite(vals)
    return pd.Series(vals[keep], index=part["seed"].to_numpy()[keep])


def _one(base: pd.Series, other: pd.Series, hib: bool | None) -> tuple[dict, np.ndarray]:
    """One comparison from two seed-indexed series of a metric (NaNs already dropped), and its per-seed
    differences in ascending seed order (the order the confidence sequence reads them in: fixed in advance)."""
    seeds = base.index.intersection(other.index).sort_values()
    unmatched = len(base.index.symmetric_difference(other.index))
    b, s = base.loc[seeds].to_numpy(float), other.loc[seeds].to_numpy(float)
    d = s - b
    n = len(d)
    p, lo, hi, note = paired_test(d)
    base_mean = float(b.mean()) if n else math.nan
    delta = float(d.mean()) if n else math.nan
    rel = (lambda x: x / abs(base_mean)) if n and base_mean != 0 else (lambda x: math.nan)
    ulo, uhi = welch_interval(s, b)
    if not note and unmatched:
        note = f"{unmatched} unmatched seed(s) dropped"
    elif unmatched:
        note += f"; {unmatched} unmatched seed(s) dropped"
    return {
        "n_pairs": n,
        "delta": delta,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "prob_improvement": prob_improvement(s, b, hib),
        "baseline_mean": base_mean,
        "rel_delta": rel(delta),
        "rel_ci_low": rel(lo),
        "rel_ci_high": rel(hi),
        "sd_diff": float(d.std(ddof=1)) if n > 1 else math.nan,
        "unpaired_ci_low": ulo,
        "unpaired_ci_high": uhi,
        "n_unmatched": unmatched,
        "higher_is_better": hib,
        "note": note,
    }, d


def paired(
    df: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, bool | None], baseline: str | None = None
) -> tuple[list[dict], list[np.ndarray], list[str]]:
    """Every comparison's row (without the family's columns) and its per-seed differences, and the group columns."""
    if df.empty or "strategy" not in df.columns:
        return [], [], ["adapter"]
    tasks = dict(zip(df["strategy"], df["task"], strict=False)) if "task" in df.columns else {}
    base_name = pick_baseline(list(df["strategy"].dropna().unique()), baseline, tasks)
    groups = group_columns(df)
    if base_name is None:
        return [], [], groups
    done = _completed(df)
    rows, diffs = [], []
    for key, g in df.groupby(groups, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ident = dict(zip(groups, key, strict=True))
        gd = done.loc[done.index.intersection(g.index)]
        if base_name not in set(g["strategy"]):
            continue
        for strategy in sorted(s for s in g["strategy"].dropna().unique() if s != base_name):
            if "status" in g.columns and (g.loc[g["strategy"] == strategy, "status"] == "not_applicable").all():
                continue  # the pair does not apply (its reason is in results.csv): there is nothing to compare
            for m in metrics:
                if m not in gd.columns:
                    continue
                base, other = _by_seed(gd, base_name, m), _by_seed(gd, strategy, m)
                if base.empty and other.empty:
                    continue  # the metric does not exist for this group (e.g. bpd of a GAN): nothing to compare
                row, d = _one(base, other, directions.get(m))
                rows.append({**ident, "strategy": strategy, "metric": m, "baseline": base_name, **row})
                diffs.append(d)
    return rows, diffs, groups


def comparisons_frame(
    df: pd.DataFrame,
    metrics: Sequence[str],
    directions: Mapping[str, bool | None],
    baseline: str | None = None,
    headline: str | None = None,
    margin: Margin | None = None,
    sequential: bool = False,
) -> pd.DataFrame:
    """comparisons.csv as a frame: one row per (group, strategy ≠ baseline, metric) with a baseline to pair with.

    `df` is the results table (one row per run); only completed runs with a finite value enter. `baseline`
    is the suite's `baseline:` key (None: scratch); `headline` the confirmatory metric (None: the first of
    `metrics`); `margin` the suite's equivalence margin; `sequential` whether seeds were added after looking
    (then the calls use the confidence sequence)."""
    rows, diffs, groups = paired(df, metrics, directions, baseline)
    if not rows:
        return pd.DataFrame(columns=[*groups, *COLUMNS[1:]])
    out = add_calls(pd.DataFrame(rows), diffs, directions, headline or metrics[0], margin, sequential)
    if "p_anytime" not in out.columns:
        out["p_anytime"] = math.nan
    testable = np.isfinite(out["p_value"].to_numpy(float)) & (out["n_pairs"].to_numpy() >= MIN_PAIRS)
    fam = out.assign(_t=testable).groupby("metric")["_t"].transform("sum").to_numpy()  # the family's m
    out["mde"] = [mde(sd, n, max(1, int(m))) for sd, n, m in zip(out["sd_diff"], out["n_pairs"], fam, strict=True)]
    cols = [*groups, *(c for c in COLUMNS if c not in groups)]
    return out[cols].reset_index(drop=True)


__all__ = [
    "comparisons_frame",
    "group_columns",
    "holm",
    "mde",
    "paired",
    "paired_test",
    "pick_baseline",
    "prob_improvement",
    "welch_interval",
]
