"""The call each comparison gets, by family: comparisons.csv's decision columns.

The suite's headline metric is the confirmatory family (Holm within it); every other metric is a secondary
family of its own, labelled so. Within a family, bench.stats.sequential.family_calls gives each comparison
its decision (better / worse / equivalent / inconclusive), the test that made it, and the simultaneous
interval that agrees with it. Under the sequential rule (`seeds: {min, max}`) the p-values are the anytime-valid
ones of the confidence sequence, so the calls stay valid however many rounds ran; with a fixed list of seeds
they are paired t-tests (and TOST for equivalence).

A margin is `10%` (of the group's baseline mean, on every metric) or a number (in the headline metric's
units, so on the headline only). Pure pandas/numpy; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.stats.sequential import ALPHA, family_calls, seeds_needed
from bench.suite.spec import Margin, parse_margin

CONFIRMATORY = "confirmatory"
SECONDARY = "secondary"
CALL_COLUMNS = [
    "family",
    "decision",
    "decided_by",
    "sim_low",
    "sim_high",
    "sim_level",
    "rel_sim_low",
    "rel_sim_high",
    "margin",
    "seeds_needed",
]


def add_calls(
    frame: pd.DataFrame,
    diffs: Sequence[np.ndarray],
    directions: Mapping[str, bool | None],
    headline: str | None,
    margin: Margin | None = None,
    sequential: bool = False,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """`frame` (one row per comparison, with `metric`, `baseline_mean`, `n_pairs`, `sd_diff`, `delta`) and
    each row's per-seed differences in seed order → the frame with p_holm (within its family), `significant`
    and CALL_COLUMNS. Nothing else changes: the unadjusted interval and p stay beside the simultaneous ones."""
    out = frame.copy()
    n = len(out)
    cols: dict[str, list] = {c: [math.nan] * n for c in ("p_holm", "sim_low", "sim_high", "sim_level", "margin")}
    cols.update(family=[""] * n, decision=[""] * n, decided_by=[""] * n, seeds_needed=[None] * n)
    if "p_anytime" not in out.columns and sequential:
        cols["p_anytime"] = [math.nan] * n
    metric = out["metric"].astype(str).to_numpy()
    for name in dict.fromkeys(metric):  # each metric is its own family, in first-seen order
        rows = np.flatnonzero(metric == name)
        margins = [margin.on(name, headline or "", float(out["baseline_mean"].iloc[i])) if margin else math.nan for i in rows]
        hib = directions.get(name)
        calls = family_calls([diffs[i] for i in rows], margins, [hib] * len(rows), sequential, alpha)
        m = sum(math.isfinite(c.p) for c in calls)
        for i, c, mg in zip(rows, calls, margins, strict=True):
            cols["family"][i] = CONFIRMATORY if name == headline else SECONDARY
            cols["decision"][i] = c.decision
            cols["decided_by"][i] = c.by
            cols["p_holm"][i] = c.p_holm
            cols["sim_low"][i], cols["sim_high"][i], cols["sim_level"][i] = c.low, c.high, c.level
            cols["margin"][i] = mg
            if sequential:
                cols["p_anytime"][i] = c.p
            if c.decision == "inconclusive" and not c.why:  # untestable ones (too few pairs, zero spread): none
                sd = float(out["sd_diff"].iloc[i])
                cols["seeds_needed"][i] = seeds_needed(float(out["delta"].iloc[i]), sd, c.n, max(1, m), mg, sequential, alpha)
    for k, v in cols.items():
        out[k] = v
    out["significant"] = out["decision"].isin(["better", "worse", "higher", "lower"])
    base = out["baseline_mean"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(base != 0, np.abs(base), np.nan)
        out["rel_sim_low"] = out["sim_low"].to_numpy(float) / scale
        out["rel_sim_high"] = out["sim_high"].to_numpy(float) / scale
    out["seeds_needed"] = out["seeds_needed"].astype("Int64")
    return out


__all__ = ["CALL_COLUMNS", "CONFIRMATORY", "SECONDARY", "Margin", "add_calls", "parse_margin"]
