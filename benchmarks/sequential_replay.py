"""The sequential rule's own code (bench.stats.calls + bench.stats.rounds) replayed on SYNTHETIC seeds shaped
like the main job (suites/digits-strategies.yaml): 5 adapters x 4 strategies against scratch, with the
effect sizes issue 22 measured (seeds for 80% power at a fixed n, per comparison). Nothing is trained.

Each replicate draws per-seed differences, starts every cell at `--min` seeds, and runs rounds exactly as
`bench run` does: the headline family's calls (Holm over 20, anytime-valid p-values), then `next_counts`
(only undecided, non-futile cells get seeds, towards the plug-in estimate), until nothing changes. It
reports how many of the 20 comparisons get decided and how many trained runs that took, against the fixed
design of today (5 seeds, 125 runs) under the same Holm family.

    python benchmarks/sequential_replay.py [--reps 200] [--min 3] [--max 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sequential_sim import FAMILY_N80, M_FAMILY, delta_for

from bench.stats.calls import add_calls
from bench.stats.rounds import next_counts
from bench.stats.sequential import ALPHA

BASE_MEAN = 100.0  # the baseline's mean; effects are in units of the SD of the differences, so it only scales


def _frame(cells: list[tuple[str, str]], data: dict, counts: dict) -> tuple[pd.DataFrame, list[np.ndarray]]:
    recs, diffs = [], []
    for a, s in cells:
        k = min(counts[(a, s)], counts[(a, "scratch")])
        d = data[(a, s)][:k]
        recs.append(
            {
                "adapter": a,
                "strategy": s,
                "metric": "fid_domain",
                "n_pairs": k,
                "delta": float(d.mean()),
                "sd_diff": float(d.std(ddof=1)) if k > 1 else np.nan,
                "baseline_mean": BASE_MEAN,
            }
        )
        diffs.append(d)
    return pd.DataFrame(recs), diffs


def replay(rng: np.random.Generator, n_min: int, n_max: int, sequential: bool, max_runs: int | None) -> tuple[int, int, int]:
    """(decided, trained runs, rounds) of one replicate."""
    level = ALPHA / M_FAMILY
    cells, data = [], {}
    for a, n80s in FAMILY_N80.items():
        for i, n80 in enumerate(n80s):
            s = f"s{i}"
            cells.append((a, s))
            data[(a, s)] = -delta_for(n80, level) + rng.standard_normal(n_max)  # lower is better: a drop
    counts = {c: n_min for c in cells} | {(a, "scratch"): n_min for a in FAMILY_N80}
    rounds = 1
    while True:
        frame, diffs = _frame(cells, data, counts)
        comp = add_calls(frame, diffs, {"fid_domain": False}, "fid_domain", sequential=sequential)
        if not sequential:
            break
        new = next_counts(comp, ["adapter"], counts, "scratch", "fid_domain", n_max, max_runs)
        if new == counts:
            break
        counts, rounds = new, rounds + 1
    return int(comp["significant"].sum()), sum(counts.values()), rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--min", type=int, default=3)
    ap.add_argument("--max", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    start = time.perf_counter()
    print("SYNTHETIC seeds shaped like the main job (nothing trained)\n")
    head = f"{'design':<52} | {'decided of 20 (mean)':>20} {'min-max':>8} | {'trained runs (mean)':>19} {'max':>5} | {'rounds':>6}"
    print(head + "\n" + "-" * len(head))
    for name, n_min, n_max, seq, runs in (
        ("fixed n = 5, paired t + Holm (today)", 5, 5, False, None),
        ("fixed n = 10, paired t + Holm", 10, 10, False, None),
        (f"sequential, seeds {{min: {a.min}, max: {a.max}}}", a.min, a.max, True, None),
        (f"sequential, seeds {{min: {a.min}, max: {a.max}, max_runs: 250}}", a.min, a.max, True, 250),
        (f"sequential, seeds {{min: 5, max: {a.max}, max_runs: 250}}", 5, a.max, True, 250),
    ):
        rng = np.random.default_rng(a.seed)
        out = np.array([replay(rng, n_min, n_max, seq, runs) for _ in range(a.reps)])
        print(
            f"{name:<52} | {out[:, 0].mean():>20.1f} {f'{out[:, 0].min()}-{out[:, 0].max()}':>8} | {out[:, 1].mean():>19.0f}"
            f" {out[:, 1].max():>5} | {out[:, 2].mean():>6.1f}"
        )
    print(f"\n(n80 per adapter {FAMILY_N80}; every effect is real; trained runs count the 5 baseline cells; {a.reps} replicates)")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
