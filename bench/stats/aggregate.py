"""Aggregation: result.json files → results.csv (one row per run), summary.csv (per adapter × strategy) and
comparisons.csv (each strategy against the baseline, paired by seed; see bench.stats.compare)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.store import runs as store
from bench.store.result import STATUSES, RunResult
from bench.suite.sweep import SWEEPABLE, column_value

ID_COLS = ["run_id", "adapter", "family", "strategy", "task", "seed", "status", "error"]


def results_frame(results: list[RunResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        row = {k: getattr(r, k) for k in ID_COLS}
        row["protocol_version"] = (r.protocol or {}).get("protocol_version")
        row["suite_version"] = r.spec.get("suite_version")
        row["pretrain_cached"] = (r.timings or {}).get("pretrain_cached")
        # The run's point on the suite's sweep, one column per swept key ("dataset.limit"): comparisons and
        # summaries are made within it (bench.stats.compare.group_columns picks these columns up by their prefix).
        row.update({k: column_value(v) for k, v in (r.spec.get("swept") or {}).items()})
        row.update(r.metrics)
        # Exact or bound, for each likelihood metric the run measured (bpd: `bpd_exact` in metric_info): a
        # text column, so it is never averaged, and tables mark a bound rather than rank it against exact values.
        for m, v in r.metrics.items():
            exact = (r.metric_info or {}).get(f"{m}_exact")
            if v is not None and isinstance(exact, bool):
                row[f"{m}_kind"] = "exact" if exact else "bound"
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else ID_COLS)
    order = ["adapter", "strategy", *axis_columns(df), "seed"]
    return df.sort_values(order, kind="stable").reset_index(drop=True) if rows else df


def axis_columns(df: pd.DataFrame) -> list[str]:
    """The swept suite values that the results table carries as columns, e.g. `dataset.limit`."""
    return [c for c in df.columns if isinstance(c, str) and c.split(".", 1)[0] in SWEEPABLE and "." in c]


def kind_columns(df: pd.DataFrame) -> list[str]:
    """`<metric>_kind` columns: exact or bound, per run (results.csv) and per adapter × strategy (summary.csv)."""
    return [c for c in df.columns if isinstance(c, str) and c.endswith("_kind") and c[: -len("_kind")] in df.columns]


BOUND_MARK = "†"  # a likelihood metric that is a bound (bpd: an upper bound on the model's bpd), not exact
BOUND_NOTE = f"{BOUND_MARK} a bound, not exact (bpd: an upper bound on the model's bpd); bounds and exact values are never ranked together"


def metric_columns(df: pd.DataFrame) -> list[str]:
    skip = set(ID_COLS) | {"protocol_version", "suite_version", "pretrain_cached", *axis_columns(df)}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def ci95(std: float, n: int) -> float:
    """Half-width of the 95% t-interval of a mean over n seeds (NaN for n < 2: one seed has no spread)."""
    if n < 2 or not math.isfinite(std):
        return math.nan
    return _t975(n - 1) * std / math.sqrt(n)


@functools.lru_cache(maxsize=256)
def _t975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


@dataclass(frozen=True)
class SeedStats:
    """A metric over the completed seeds of one adapter × strategy: the one definition behind summary.csv and the report."""

    mean: float
    std: float  # sample std (ddof 1); NaN for one seed
    ci95: float  # half-width of the 95% t-interval; NaN for one seed
    n: int


def seed_stats(values: Sequence[float]) -> SeedStats:
    """Mean, sample std, 95% CI half-width and n of finite per-seed values (NaN where undefined).

    numpy's mean and std(ddof=1), which equal pandas' Series.mean()/std() bit for bit (no bottleneck), so
    summary.csv keeps its numbers; and no pandas per cell, so a report over 1,000 runs stays quick."""
    n = len(values)
    if n == 0:
        return SeedStats(math.nan, math.nan, math.nan, 0)
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if n > 1 else math.nan
    return SeedStats(float(arr.mean()), std, ci95(std, n), n)


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per adapter × strategy: counts by status, and mean/std/ci95/n over seeds of every metric.
    Only completed runs enter the statistics; the counts make diverged and failed runs visible."""
    if df.empty:
        return pd.DataFrame(columns=["adapter", "strategy", "n_runs"])
    metrics = metric_columns(df)
    axes = axis_columns(df)
    out = []
    for key, g in df.groupby(["adapter", "strategy", *axes], sort=True, dropna=False):
        adapter, strategy, *point = key
        row = {
            "adapter": adapter,
            "family": g["family"].dropna().iloc[0] if g["family"].notna().any() else None,
            "strategy": strategy,
            **dict(zip(axes, point, strict=True)),
            "n_runs": len(g),
        }
        for s in STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        done = g[g["status"] == "completed"]
        for col in kind_columns(df):
            row[col] = "/".join(sorted(set(done[col].dropna()))) or None
        for m in metrics:
            st = seed_stats(done[m].dropna().astype(float).to_numpy())
            row[f"{m}_mean"] = st.mean
            row[f"{m}_std"] = st.std
            row[f"{m}_ci95"] = st.ci95
            row[f"{m}_n"] = st.n
        out.append(row)
    return pd.DataFrame(out)


def write_tables(suite_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = results_frame(store.list_results(suite_dir))
    summary = summary_frame(df)
    store.atomic_write_text(Path(suite_dir) / "results.csv", store.csv_text(df))
    store.atomic_write_text(Path(suite_dir) / "summary.csv", store.csv_text(summary))
    comparisons = comparisons_of(df, suite_options(suite_dir))
    store.atomic_write_text(Path(suite_dir) / "comparisons.csv", store.csv_text(comparisons))
    return df, summary


def suite_options(suite_dir: Path) -> dict:
    """The resolved suite.yaml of a runs folder as a dict ({} when missing or unreadable: tables still get written)."""
    import yaml

    try:
        data = yaml.safe_load((Path(suite_dir) / "suite.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def metric_directions(names: list[str]) -> dict[str, bool | None]:
    """higher_is_better per metric from the torch-free metric table; None for one it does not know."""
    from bench.metrics.info import metric_info

    return {n: (info.higher_is_better if (info := metric_info(n)) else None) for n in names}


def quality_metrics(df: pd.DataFrame) -> list[str]:
    """Metric columns computed from samples: cost metrics (seconds, memory, size) are not compared."""
    from bench.metrics.info import COST_METRICS

    return [m for m in metric_columns(df) if m not in COST_METRICS]


def comparisons_of(df: pd.DataFrame, options: dict | None = None) -> pd.DataFrame:
    """comparisons.csv for a results table: every strategy against the baseline on every quality metric, with
    the calls the suite's options (the resolved suite.yaml: baseline, headline, margin, seeds) ask for."""
    from bench.stats.compare import comparisons_frame

    metrics = quality_metrics(df) if not df.empty else []
    return comparisons_frame(df, metrics, metric_directions(metrics), **analysis_of(options or {}, metrics))


def headline_of(options: dict, metrics: list[str]) -> str | None:
    """The confirmatory metric: the suite's `headline:`, else fid_domain when measured, else the first of the
    suite's eval metrics that was measured, else the first metric."""
    named = options.get("headline")
    if isinstance(named, str) and named in metrics:
        return named
    if "fid_domain" in metrics:
        return "fid_domain"
    listed = (options.get("eval") or {}).get("metrics") if isinstance(options.get("eval"), dict) else None
    return next((m for m in listed or [] if m in metrics), metrics[0] if metrics else None)


def analysis_of(options: dict, metrics: list[str]) -> dict:
    """comparisons_frame's keywords from a resolved suite.yaml: baseline, headline, margin, sequential."""
    from bench.suite.spec import parse_margin

    baseline = options.get("baseline") if isinstance(options.get("baseline"), str) else None
    try:
        margin = parse_margin(options.get("margin"))
    except ValueError:  # a hand-edited suite.yaml: the tables still get written, without equivalence
        margin = None
    return {
        "baseline": baseline,
        "headline": headline_of(options, metrics),
        "margin": margin,
        "sequential": isinstance(options.get("seeds"), dict),
    }


def fmt(mean: float, ci: float, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if abs(mean) >= 1000:  # counts and throughputs: whole numbers read better than 1.58e+03
        m, c = f"{mean:.0f}", None if ci is None or math.isnan(ci) else f"{ci:.0f}"
    else:  # an interval ≥ 10 in whole numbers (519, not 5.2e+02), like the report
        m, c = f"{mean:.{digits}g}", None if ci is None or math.isnan(ci) else f"{ci:.0f}" if abs(ci) >= 10 else f"{ci:.2g}"
    return m if c is None else f"{m} ± {c}"


def terminal_table(summary: pd.DataFrame, metrics: list[str]) -> str:
    """A plain-text table for the terminal: one row per adapter × strategy, mean ± 95% CI."""
    if summary.empty:
        return "(no results)"
    cols = [m for m in metrics if f"{m}_mean" in summary.columns]
    header = ["adapter", "strategy", "runs", *cols]
    rows = []
    for _, r in summary.iterrows():
        status = f"{r['n_completed']}/{r['n_runs']}"
        extra = [f"{r[f'n_{s}']} {s}" for s in ("diverged", "failed", "not_applicable") if r.get(f"n_{s}", 0)]
        if extra:
            status += " (" + ", ".join(extra) + ")"
        cells = [fmt(r[f"{m}_mean"], r[f"{m}_ci95"]) + (BOUND_MARK if _is_bound(r, m) else "") for m in cols]
        rows.append([str(r["adapter"]), str(r["strategy"]), status, *cells])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    marked = any(BOUND_MARK in c for row in rows for c in row[3:])
    return "\n".join([line, sep, *body, *([BOUND_NOTE] if marked else [])])


def _is_bound(r: pd.Series, metric: str) -> bool:
    kind = r.get(f"{metric}_kind")
    return isinstance(kind, str) and "bound" in kind
