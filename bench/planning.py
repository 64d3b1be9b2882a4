"""Seeds as a plan: `bench run --until-resolved` (a suite run in rounds) and `bench plan` (the seeds each
headline comparison needs, from a pilot or finished run). The statistics are bench.stats' (docs/statistics.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.suite.spec import SeedRange, Suite, with_seed_range

DEFAULT_MAX_SEEDS = 40


def sequential(suite: Suite, until_resolved: bool = False, max_seeds: int | None = None, max_runs: int | None = None) -> Suite:
    """The suite as it will run: unchanged, or in rounds (`seeds: {min, max}` in the suite, or `--until-resolved`
    on a list of seeds 0..k-1, which become the first round). `max_seeds`/`max_runs` override the suite's."""
    if not (until_resolved or max_seeds is not None or max_runs is not None):
        return suite
    plan = suite.seed_range
    if plan is None:
        if not until_resolved:
            raise BenchError(
                "--max-seeds and --max-runs apply to sequential seeds", fix="add --until-resolved, or write seeds: {min: 3, max: N}"
            )
        k = len(suite.seeds)
        if suite.seeds != list(range(k)):
            raise BenchError(
                f"--until-resolved adds seeds k, k+1, … after seeds 0..k-1; this suite has seeds {suite.seeds[:8]}",
                key="seeds",
                fix="use seeds: [0, 1, 2] or seeds: {min: 3, max: 40}",
            )
        n_min, n_max, runs = max(3, k), max(DEFAULT_MAX_SEEDS, k), None
    else:
        n_min, n_max, runs = plan.min, plan.max, plan.max_runs
    try:
        plan = SeedRange(min=n_min, max=n_max if max_seeds is None else max_seeds, max_runs=runs if max_runs is None else max_runs)
    except ValueError as err:
        raise BenchError(str(err), key="--max-seeds", fix=f"pass --max-seeds of at least {n_min} (the first round's seeds)") from None
    from bench.suite import limits

    out = with_seed_range(suite, plan)
    limits.check_suite(out)
    return out


def plan_seeds(source: str | Path, out: str | Path = "runs") -> pd.DataFrame:
    """Per headline comparison of a pilot or finished run: seeds used, the relative Δ, the decision under the
    suite's rule, and the paired seeds that would decide it (`seeds_needed`: under the sequential rule;
    `seeds_needed_fixed`: a fixed design's t interval). `source` is a runs/<suite> folder, or a suite file whose
    folder is under `out`."""
    from bench.stats.aggregate import analysis_of, metric_directions, quality_metrics, results_frame, suite_options
    from bench.stats.compare import comparisons_frame, group_columns
    from bench.store import runs as store

    path = Path(source)
    if path.is_dir():
        suite_dir, options = path, suite_options(path)
    else:
        from bench.suite.load import load_suite, suite_to_dict

        suite = load_suite(path)
        suite_dir, options = Path(out) / suite.name, suite_to_dict(suite)
    results = store.list_results(suite_dir) if suite_dir.is_dir() else []
    if not results:
        raise BenchError(
            "no results to plan from",
            file=str(suite_dir),
            fix="run a pilot first: bench run SUITE (seeds: {min: 3, max: N} stops by itself)",
        )
    df = results_frame(results)
    metrics = quality_metrics(df)
    kw = analysis_of(options, metrics)
    head = kw["headline"]
    if head is None:
        raise BenchError("no quality metric to plan from", file=str(suite_dir), fix="measure a metric such as fid_domain")
    dirs = metric_directions([head])
    rule = comparisons_frame(df, [head], dirs, **kw)
    other = comparisons_frame(df, [head], dirs, **{**kw, "sequential": not kw["sequential"]})
    if rule.empty:
        return rule
    seq, fixed = (rule, other) if kw["sequential"] else (other, rule)
    keep = [*group_columns(df), "strategy", "n_pairs", "rel_delta", "rel_sim_low", "rel_sim_high", "decision", "decided_by"]
    out_df = rule[[c for c in keep if c in rule.columns]].copy()
    out_df["seeds_needed"] = seq["seeds_needed"].to_numpy()
    out_df["seeds_needed_fixed"] = fixed["seeds_needed"].to_numpy()
    out_df.attrs.update(metric=head, sequential=kw["sequential"], baseline=str(rule["baseline"].iloc[0]))
    return out_df


def plan_text(plan: pd.DataFrame) -> str:
    """The plan as a terminal table."""
    if plan.empty:
        return "no comparison against the baseline on the headline metric"

    def pct(x: float) -> str:
        if pd.isna(x):
            return "–"
        return ("+∞" if x > 0 else "−∞") if abs(x) == float("inf") else f"{100 * x:+.0f}%"

    def need(x: object) -> str:
        return "–" if pd.isna(x) else str(int(x))

    header = ["comparison", "seeds", "Δ", "interval", "decision", "seeds to decide (sequential)", "(fixed n)"]
    groups = [c for c in plan.columns if c == "adapter" or "." in c]
    rows = []
    for r in plan.to_dict("records"):
        name = " · ".join(str(r[g]) for g in groups) + f" / {r['strategy']}"
        decided = r["decision"] != "inconclusive"
        rows.append(
            [
                name,
                str(r["n_pairs"]),
                pct(r["rel_delta"]),
                f"[{pct(r['rel_sim_low'])}, {pct(r['rel_sim_high'])}]",
                r["decision"],
                "decided" if decided else need(r["seeds_needed"]),
                "decided" if decided else need(r["seeds_needed_fixed"]),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(
        f"({plan.attrs.get('metric')} against {plan.attrs.get('baseline')}; seeds to decide: total paired seeds at which the interval at "
        "level 0.05/m would exclude 0 or fit inside the margin if further seeds look like these — a plug-in, about an even chance; "
        "– : not within 1000)"
    )
    return "\n".join(lines)


__all__ = ["plan_seeds", "plan_text", "sequential"]
