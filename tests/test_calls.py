"""bench.stats.calls (families, margins, decision columns) and bench.stats.rounds (who gets seeds next)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_1samp

from bench.stats.calls import CONFIRMATORY, SECONDARY, Margin, add_calls, parse_margin
from bench.stats.rounds import next_counts, seed_order


def _frame(rows: list[tuple[str, str, np.ndarray, float]]) -> tuple[pd.DataFrame, list[np.ndarray]]:
    recs, diffs = [], []
    for strategy, metric, d, base in rows:
        recs.append(
            {
                "adapter": "a",
                "strategy": strategy,
                "metric": metric,
                "n_pairs": len(d),
                "delta": float(d.mean()),
                "sd_diff": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
                "baseline_mean": base,
            }
        )
        diffs.append(d)
    return pd.DataFrame(recs), diffs


def test_parse_margin() -> None:
    assert parse_margin("10%") == Margin(0.10, True)
    assert parse_margin(" 2.5 % ") == Margin(0.025, True)
    assert parse_margin(3) == Margin(3.0, False)
    assert parse_margin(None) is None
    for bad in ("10", "0%", "100%", "ten%", -1, 0, True, float("nan"), [10]):
        with pytest.raises(ValueError, match="margin"):
            parse_margin(bad)
    assert Margin(0.1, True).on("kid", "fid", -40.0) == pytest.approx(4.0)
    assert math.isnan(Margin(2.0, False).on("kid", "fid", 40.0)) and Margin(2.0, False).on("fid", "fid", 40.0) == 2.0


def test_headline_is_its_own_family_and_secondaries_theirs() -> None:
    """Holm's m counts only the family's comparisons: three secondary tests do not dilute the headline."""
    rng = np.random.default_rng(0)
    strong = np.array([-1.2, -0.3, -0.9, -0.1, -1.5, -0.6])  # p = 0.017: called with m = 2, not with m = 6
    rows = [("s1", "fid", strong, 40.0), ("s2", "fid", rng.normal(0, 1, 6), 40.0)]
    rows += [(f"s{i}", "kid", rng.normal(0, 1, 6), 1.0) for i in range(4)]
    frame, diffs = _frame(rows)
    out = add_calls(frame, diffs, {"fid": False, "kid": False}, headline="fid")
    assert list(out["family"]) == [CONFIRMATORY] * 2 + [SECONDARY] * 4
    assert out.loc[0, "decision"] == "better" and out.loc[0, "decided_by"] == "t-test"
    assert out.loc[0, "p_holm"] == pytest.approx(2 * ttest_1samp(strong, 0).pvalue)  # Holm within a family of 2
    assert set(out.loc[2:, "sim_level"]) == {0.05 / 4}  # the secondary family: 4 tests, none called
    # the interval agrees with the call in every row
    excl = (out["sim_low"] > 0) | (out["sim_high"] < 0)
    assert (excl == out["significant"]).all()


def test_margin_makes_equivalence_and_seeds_needed_fill_only_undecided() -> None:
    rng = np.random.default_rng(1)
    tight = rng.normal(0, 0.5, 20)  # baseline mean 100, margin 10% = ±10: equivalent
    vague = rng.normal(1, 20, 4)
    frame, diffs = _frame([("s1", "fid", tight, 100.0), ("s2", "fid", vague, 100.0)])
    for sequential in (False, True):
        out = add_calls(frame, diffs, {"fid": False}, headline="fid", margin=parse_margin("10%"), sequential=sequential)
        assert list(out["decision"]) == ["equivalent", "inconclusive"]
        assert out.loc[0, "margin"] == pytest.approx(10.0)
        assert pd.isna(out.loc[0, "seeds_needed"]) and (pd.isna(out.loc[1, "seeds_needed"]) or out.loc[1, "seeds_needed"] > 4)
        assert ("p_anytime" in out.columns) == sequential
        assert out.loc[0, "decided_by"] == ("confidence sequence" if sequential else "TOST")


def _comparisons(decisions: list[tuple[str, str, int, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"adapter": "a", "strategy": s, "metric": "fid", "decision": d, "n_pairs": n, "seeds_needed": k} for s, d, n, k in decisions]
    )


def test_next_counts_adds_seeds_only_where_undecided_and_reachable() -> None:
    comp = _comparisons(
        [
            ("done", "better", 3, None),
            ("close", "inconclusive", 3, 5),
            ("far", "inconclusive", 3, 8),
            ("beyond", "inconclusive", 3, 12),
            ("futile", "inconclusive", 3, None),
            ("short", "inconclusive", 1, None),
        ]
    )
    have = {("a", s): 3 for s in ("scratch", "done", "close", "far", "beyond", "futile", "short")}
    want = next_counts(comp, ["adapter"], have, "scratch", "fid", n_max=10)
    assert want[("a", "done")] == 3 and want[("a", "futile")] == 3 and want[("a", "beyond")] == 3  # beyond: 12 > cap
    assert want[("a", "close")] == 5  # straight to the plug-in estimate
    assert want[("a", "far")] == 6  # at most doubling the pairs
    assert want[("a", "short")] == 5  # failed runs left 1 pair: the 2 missing for a test
    assert want[("a", "scratch")] == 6  # the baseline follows its hungriest comparison


def test_next_counts_stops_at_the_cap_and_when_all_decided() -> None:
    comp = _comparisons([("x", "inconclusive", 9, 10)])
    have = {("a", "scratch"): 9, ("a", "x"): 9}
    assert next_counts(comp, ["adapter"], have, "scratch", "fid", n_max=10)[("a", "x")] == 10
    assert next_counts(comp, ["adapter"], {("a", "scratch"): 10, ("a", "x"): 10}, "scratch", "fid", n_max=10) == {
        ("a", "scratch"): 10,
        ("a", "x"): 10,
    }
    # other metrics never ask for seeds
    assert next_counts(comp.assign(metric="kid"), ["adapter"], have, "scratch", "fid", n_max=10) == have


def test_seed_order() -> None:
    assert seed_order([0, 1, 2], 5) == [0, 1, 2, 3, 4]
    assert seed_order([7, 3], 4) == [7, 3, 8, 9]
    assert seed_order([0, 1, 2, 3], 2) == [0, 1]


def test_next_counts_under_a_budget_serves_the_closest_first() -> None:
    comp = _comparisons([("near", "inconclusive", 3, 4), ("mid", "inconclusive", 3, 6), ("far", "inconclusive", 3, 9)])
    have = {("a", s): 3 for s in ("scratch", "near", "mid", "far")}
    free = next_counts(comp, ["adapter"], have, "scratch", "fid", n_max=10)
    assert sum(free.values()) == 6 + 4 + 6 + 6  # scratch follows the hungriest (6)
    tight = next_counts(comp, ["adapter"], have, "scratch", "fid", n_max=10, max_runs=17)
    assert tight[("a", "near")] == 4 and tight[("a", "scratch")] == 4  # 4 + 4 + 3 + 3 = 14; mid would make it 19
    assert tight[("a", "mid")] == 3 and tight[("a", "far")] == 3
    assert sum(tight.values()) <= 17
