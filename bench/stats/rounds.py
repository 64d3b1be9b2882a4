"""Sequential seeds: after each round, how many seeds each cell (group × strategy) should have next.

Only cells whose headline comparison is still undecided get more, and only while the observed effect and
spread say the cap could still decide them (the plug-in of `seeds_needed`; a comparison that would need more
than `max` seeds is futile and stops). A round jumps towards the plug-in estimate, at most doubling a cell, so
a clear comparison finishes in few rounds and an unclear one is not over-spent. The baseline cell of a group
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
) -> dict[Cell, int]:
    """`have`: seeds each cell has now (its runs of this round included) → seeds each should have after the
    next round. Equal to `have` everywhere when every headline comparison is decided, futile or at the cap."""
    want = dict(have)
    if comparisons.empty:
        return want
    rows = comparisons[(comparisons["metric"] == headline) & (comparisons["decision"] == "inconclusive")]
    for rec in rows.to_dict("records"):
        key = (*(rec[g] for g in groups), rec["strategy"])
        now = have.get(key, 0)
        if now >= n_max:
            continue
        pairs = int(rec["n_pairs"])
        needed = rec.get("seeds_needed")
        if pairs < MIN_PAIRS:  # no test yet (failed or diverged runs): one more seed at a time
            step = MIN_PAIRS - pairs
        elif needed is None or pd.isna(needed) or needed > n_max:
            continue  # futile within the cap: its seeds are better spent elsewhere
        else:
            step = max(1, min(int(needed), 2 * pairs) - pairs)
        want[key] = min(n_max, now + step)
        base = (*key[:-1], baseline)
        want[base] = max(want.get(base, 0), want[key])
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
