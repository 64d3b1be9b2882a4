"""Sequential seeds end to end: `seeds: {min, max}` runs in rounds through the ordinary executor, only
undecided cells get seeds, a rerun resumes without training, and `bench plan` reads the folder."""

from __future__ import annotations

import pandas as pd
import pytest

import bench
from bench.core.errors import BenchError


def seq_suite(tiny_suite: dict, **seeds) -> dict:
    return {
        **tiny_suite,
        "name": "seq",
        "seeds": {"min": 3, "max": 6, **seeds},
        "strategies": {
            "scratch": {},
            "gen": {"task": "generative", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 10},
        },
    }


def cell_seeds(df: pd.DataFrame) -> dict[str, list[int]]:
    return {s: sorted(g["seed"]) for s, g in df.groupby("strategy")}


@pytest.mark.slow
def test_rounds_add_seeds_only_while_undecided_and_resume(tmp_path, tiny_suite):
    lines: list[str] = []
    df = bench.run_suite(seq_suite(tiny_suite), out=tmp_path / "runs", reports=tmp_path / "rep", progress=False, echo=lines.append)
    seeds = cell_seeds(df)
    assert seeds["scratch"][:3] == [0, 1, 2] and all(s == list(range(len(s))) for s in seeds.values())  # prefixes
    assert 3 <= len(seeds["gen"]) <= 6 and len(seeds["scratch"]) == len(seeds["gen"])  # the baseline follows
    comp = pd.read_csv(tmp_path / "runs" / "seq" / "comparisons.csv")
    row = comp[comp["metric"] == "bpd"].iloc[0]
    assert row["family"] == "confirmatory" and row["decision"] in ("better", "worse", "equivalent", "inconclusive")
    assert ((row["sim_low"] > 0) or (row["sim_high"] < 0)) == (row["decision"] in ("better", "worse"))
    assert any(line.startswith("round 1:") for line in lines)
    if row["decision"] != "inconclusive":  # decided: no cell went past the round that decided it
        assert len(seeds["gen"]) < 6 or row["n_pairs"] == 6
    # a rerun trains nothing: the same rounds are recomputed from the results on disk
    again: list[str] = []
    df2 = bench.run_suite(seq_suite(tiny_suite), out=tmp_path / "runs", reports=tmp_path / "rep", progress=False, echo=again.append)
    assert cell_seeds(df2) == seeds and not any(": completed" in line for line in again)
    plan = bench.plan_seeds(tmp_path / "runs" / "seq")
    assert list(plan["strategy"]) == ["gen"] and {"seeds_needed", "seeds_needed_fixed", "decision"} <= set(plan.columns)


def test_seed_range_and_margin_are_validated(tmp_path, tiny_suite):
    from bench.suite import load_suite

    s = load_suite(seq_suite(tiny_suite))
    assert s.seed_range is not None and s.seed_range.max == 6 and s.seeds == [0, 1, 2, 3, 4, 5]
    for bad, words in (
        ({"min": 1}, "seeds"),
        ({"min": 8}, "seeds"),
        ({"mx": 3}, "mx"),
    ):
        with pytest.raises(BenchError, match=words):
            load_suite(seq_suite(tiny_suite, **bad))
    for margin in ("ten%", -2, "150%"):
        with pytest.raises(BenchError, match="margin"):
            load_suite({**seq_suite(tiny_suite), "margin": margin})
    assert load_suite({**seq_suite(tiny_suite), "margin": "10%"}).margin == "10%"


def test_until_resolved_turns_a_list_of_seeds_into_rounds(tiny_suite):
    from bench.planning import sequential
    from bench.suite.load import load_suite, suite_to_dict

    fixed = load_suite({**tiny_suite, "seeds": [0, 1, 2, 3, 4]})
    assert sequential(fixed) is fixed  # nothing asked: unchanged
    seq = sequential(fixed, until_resolved=True, max_seeds=12, max_runs=50)
    assert seq.seed_range is not None and (seq.seed_range.min, seq.seed_range.max, seq.seed_range.max_runs) == (5, 12, 50)
    assert seq.seeds == list(range(12)) and suite_to_dict(seq)["seeds"] == {"min": 5, "max": 12, "max_runs": 50}
    assert load_suite(suite_to_dict(seq)).seed_range == seq.seed_range  # the resolved copy loads as sequential
    with pytest.raises(BenchError, match="--until-resolved"):
        sequential(load_suite({**tiny_suite, "seeds": [3, 7]}), until_resolved=True)
    with pytest.raises(BenchError, match="apply to sequential seeds"):
        sequential(fixed, max_seeds=10)
    with pytest.raises(BenchError, match="max-seeds"):
        sequential(fixed, until_resolved=True, max_seeds=4)  # below the first round's 5
