"""How much pairing by seed narrows the interval of strategy − baseline, measured on a finished suite.

    python benchmarks/paired_vs_unpaired.py runs/digits-strategies [--metric fid_domain] [--baseline scratch]

Reads the runs' result.json files, computes the comparisons exactly as `comparisons.csv` does, and prints a
Markdown table: per adapter × strategy, n pairs, Δ with its paired 95% interval and width, the unpaired
(Welch) interval and width on the same runs, their ratio, p_holm, P(improvement), MDE, the call, and the
seeds it would take for the observed Δ to resolve if the observed SD of the differences held (the smallest n
with MDE(n) <= |Δ|, Holm over the same number of tests; "> 50" past that). The last line gives the median
width ratio over the rows where both intervals exist.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from bench.stats.aggregate import comparisons_of, results_frame, suite_options
from bench.stats.compare import mde
from bench.store import runs as store

MAX_N = 50


def seeds_to_resolve(delta: float, sd: float, m: int) -> str:
    if not (math.isfinite(delta) and math.isfinite(sd)) or delta == 0:
        return "–"
    n = next((n for n in range(3, MAX_N + 1) if mde(sd, n, m) <= abs(delta)), None)
    return str(n) if n else f"> {MAX_N}"


def fmt(x: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--metric", default="fid_domain")
    ap.add_argument("--baseline", default=None, help="default: the suite's baseline: key, else scratch")
    args = ap.parse_args()
    df = results_frame(store.list_results(args.runs_dir))
    options = suite_options(args.runs_dir)
    comp = comparisons_of(df, {**options, "baseline": args.baseline} if args.baseline else options)
    rows = comp[comp["metric"] == args.metric]
    n_tests = int(rows["p_value"].notna().sum())  # Holm runs within the metric's family
    print(f"{args.metric}: strategy − {rows['baseline'].iloc[0] if len(rows) else '?'}, Holm over {n_tests} tests\n")
    print(
        "| adapter | strategy | n | Δ | paired 95% CI | width | unpaired (Welch) 95% CI | width | paired/unpaired | p_holm | P(impr.) | MDE | called | n to resolve |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|")
    ratios = []
    for r in rows.itertuples():
        pw, uw = r.ci_high - r.ci_low, r.unpaired_ci_high - r.unpaired_ci_low
        ratio = pw / uw if math.isfinite(pw) and math.isfinite(uw) and uw > 0 else math.nan
        if math.isfinite(ratio):
            ratios.append(ratio)
        print(
            f"| {r.adapter} | {r.strategy} | {r.n_pairs} | {fmt(r.delta)} | [{fmt(r.ci_low)}, {fmt(r.ci_high)}] | {fmt(pw)} "
            f"| [{fmt(r.unpaired_ci_low)}, {fmt(r.unpaired_ci_high)}] | {fmt(uw)} | {fmt(ratio, 2)} | {fmt(r.p_holm)} "
            f"| {fmt(r.prob_improvement, 2)} | {fmt(r.mde)} | {'yes' if r.significant else 'no'} "
            f"| {seeds_to_resolve(r.delta, r.sd_diff, n_tests)} |"
        )
    if ratios:
        print(f"\nmedian paired/unpaired width ratio: {statistics.median(ratios):.2f} over {len(ratios)} comparisons")


if __name__ == "__main__":
    main()
