"""Sequential seeds: after each round, how many seeds each cell (group × strategy) should have next.

Only cells whose headline comparison is still undecided get more, and only while the observed effect and
spread say the cap could still decide them (the plug-in of `seeds_needed`; a comparison that would need more
than `max` seeds is futile and stops). A round jumps towards the plug-in estimate, at most doubling a cell, so
a clear comparison finishes in few rounds and an unclear one is not over-spent. Under a budget of runs the
comparisons closest to a decision are served first. The baseline cell of a group
gets as many seeds as its hungriest comparison: the pairs need it. Any rule that only looks at data already
seen keeps the confidence sequence valid (bench.stats.sequential), so this one is free to be pragmatic.
Pure pandas; the executor runs the seeds as ordinary run specs.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from bench.stats.sequential import MIN_PAIRS

Cell = tuple  # (group values..., strategy)


def next_counts(
    comparisons: pd.DataFrame,
    groups: list[str],
    have: Mapping[Cell, int],
    baseline: str,
    headline: str,
    n_max: int,
    max_runs: int | None = None,
) -> dict[Cell, int]:
    """`have`: seeds each cell has now (its runs of this round included) → seeds each should have after the
    next round. Equal to `have` everywhere when every headline comparison is decided, futile or at the cap.
    `max_runs` caps the runs of the compared cells and their baselines: when a round would pass it, the
    comparisons closest to a decision (fewest seeds needed) get their seeds first."""
    want = dict(have)
    if comparisons.empty:
        return want
    head = comparisons[comparisons["metric"] == headline]
    proposals = []  # (priority, cell, seeds)
    for rec in head[head["decision"] == "inconclusive"].to_dict("records"):
        key = (*(rec[g] for g in groups), rec["strategy"])
        now = have.get(key, 0)
        if now >= n_max:
            continue
        pairs = int(rec["n_pairs"])
        needed = rec.get("seeds_needed")
        if pairs < MIN_PAIRS:  # no test yet (failed or diverged runs): the seeds a test needs
            proposals.append((0, key, min(n_max, now + MIN_PAIRS - pairs)))
        elif needed is not None and not pd.isna(needed) and needed <= n_max:
            proposals.append((int(needed), key, min(n_max, now + max(1, min(int(needed), 2 * pairs) - pairs))))
        # else futile within the cap: its seeds are better spent elsewhere
    counted = {(*(r[g] for g in groups), r["strategy"]) for r in head.to_dict("records")}
    counted |= {(*c[:-1], baseline) for c in counted}

    def cost(w: Mapping[Cell, int]) -> int:
        return sum(w.get(c, 0) for c in counted)

    for _, key, seeds in sorted(proposals, key=lambda p: (p[0], str(p[1]))):
        trial = dict(want)
        trial[key] = seeds
        base = (*key[:-1], baseline)
        trial[base] = max(trial.get(base, 0), seeds)
        if max_runs is None or cost(trial) <= max_runs:
            want = trial
    return want


def seed_order(seeds: list[int], n_max: int) -> list[int]:
    """The order cells take seeds in: the suite's list, then the next unused integers, up to n_max seeds."""
    out, nxt = list(seeds[:n_max]), (max(seeds) + 1 if seeds else 0)
    while len(out) < n_max:
        out.append(nxt)
        nxt += 1
    return out


def cap_note(n_max: int, spent: Mapping[Cell, int]) -> str:
    """One line for the terminal: seeds per cell after the rounds."""
    counts = sorted(spent.values())
    if not counts:
        return "no cells"
    return f"seeds per cell {counts[0]}-{counts[-1]} (median {counts[len(counts) // 2]}, cap {n_max}); {sum(counts)} runs"


__all__ = ["cap_note", "next_counts", "seed_order"]
