"""Paired comparisons (bench/compare.py): known deltas, Holm against a hand computation, zero variance,
n < 3 never significant, unmatched seeds, the `baseline:`/`headline:` keys, the sweep hook, the MDE, and
the paired design itself (every strategy of an adapter sees the same data order and evaluation latents)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu, nct, t, ttest_ind, ttest_rel

from bench.core.errors import ConfigError
from bench.stats import compare
from bench.suite.load import expand, load_suite

BASE = [40.0, 44.0, 38.0, 47.0, 41.0]  # seed-to-seed spread much larger than the effect's spread


def frame(values: dict[tuple[str, str], list[float | None]], metric: str = "fid_domain", **extra_cols) -> pd.DataFrame:
    """A results table: (adapter, strategy) → one value per seed (None: that seed did not complete)."""
    rows = []
    for (adapter, strategy), vals in values.items():
        for seed, v in enumerate(vals):
            rows.append(
                {
                    "adapter": adapter,
                    "strategy": strategy,
                    "task": "scratch" if strategy == "scratch" else "supervised",
                    "seed": seed,
                    "status": "completed" if v is not None else "failed",
                    metric: v,
                    **{k: c[seed] if isinstance(c, list) else c for k, c in extra_cols.items()},
                }
            )
    return pd.DataFrame(rows)


def compare_one(df: pd.DataFrame, metric: str = "fid_domain", hib: bool | None = False, **kw) -> pd.DataFrame:
    return compare.comparisons_frame(df, [metric], {metric: hib}, **kw)


def test_known_paired_delta_matches_scipy():
    diffs = [-5.0, -4.0, -6.0, -5.5, -4.5]
    sup = [b + d for b, d in zip(BASE, diffs, strict=True)]
    out = compare_one(frame({("g", "scratch"): BASE, ("g", "supervised"): sup}))
    row = out.iloc[0]
    assert list(out.columns[:11]) == [
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
    ]
    ref = ttest_rel(sup, BASE)
    ci = ref.confidence_interval(0.95)
    assert row["n_pairs"] == 5 and row["delta"] == pytest.approx(np.mean(diffs))
    assert row["p_value"] == pytest.approx(ref.pvalue) and row["p_holm"] == pytest.approx(ref.pvalue)  # one test: no correction
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["significant"] and row["baseline"] == "scratch"
    assert row["rel_delta"] == pytest.approx(np.mean(diffs) / np.mean(BASE))
    # Pairing removes the shared seed noise: the Welch interval on the same numbers is far wider and crosses 0.
    welch = ttest_ind(sup, BASE, equal_var=False).confidence_interval(0.95)
    assert (row["unpaired_ci_low"], row["unpaired_ci_high"]) == (pytest.approx(welch.low), pytest.approx(welch.high))
    assert row["unpaired_ci_high"] - row["unpaired_ci_low"] > 4 * (row["ci_high"] - row["ci_low"]) and welch.high > 0
    # Lower is better and every supervised run beats every scratch run? No: seeds overlap across runs.
    u = mannwhitneyu(-np.array(sup), -np.array(BASE)).statistic / 25
    assert row["prob_improvement"] == pytest.approx(u)


def test_holm_against_hand_computation():
    p = [0.01, 0.04, math.nan, 0.03, 0.005]
    # m = 4 testable. Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06.
    adj = compare.holm(p)
    assert adj[[0, 1, 3, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adj[2])
    assert compare.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert compare.holm([]).size == 0


def test_holm_runs_across_every_comparison_of_the_suite():
    a = [b - 5 + 0.2 * i for i, b in enumerate(BASE)]
    c = [b + 0.3 * (-1) ** i for i, b in enumerate(BASE)]
    df = frame({("g", "scratch"): BASE, ("g", "a"): a, ("g", "c"): c, ("h", "scratch"): BASE, ("h", "a"): a})
    out = compare_one(df)
    assert len(out) == 3 and set(out["adapter"]) == {"g", "h"}
    assert out["p_holm"].to_numpy() == pytest.approx(compare.holm(out["p_value"].to_numpy()))
    assert (out["p_holm"] >= out["p_value"]).all()


def test_zero_variance_is_untestable_never_p_zero():
    # The old welch_p([10, 10], [9, 9]) case: a constant shift has no variance, so t is undefined.
    out = compare_one(frame({("g", "scratch"): [10.0, 10.0, 10.0], ("g", "s"): [9.0, 9.0, 9.0]}))
    row = out.iloc[0]
    assert math.isnan(row["p_value"]) and math.isnan(row["p_holm"]) and not row["significant"]
    assert "zero variance" in row["note"] and row["delta"] == -1.0
    p, lo, hi, note = compare.paired_test([0.0, 0.0, 0.0])
    assert math.isnan(p) and lo == hi == 0.0 and note


def test_fewer_than_three_pairs_are_never_significant():
    # Two seeds, a huge and consistent effect: p is small but two pairs cannot be called.
    out = compare_one(frame({("g", "scratch"): [40.0, 60.0], ("g", "s"): [10.0, 30.5]}))
    row = out.iloc[0]
    assert row["n_pairs"] == 2 and row["p_value"] < 0.05 and not row["significant"]
    one = compare_one(frame({("g", "scratch"): [40.0], ("g", "s"): [10.0]})).iloc[0]
    assert one["n_pairs"] == 1 and math.isnan(one["p_value"]) and "needs >= 2" in one["note"]


def test_unmatched_seeds_are_dropped_and_counted():
    sup = [b - 5 + 0.1 * i for i, b in enumerate(BASE)]
    sup[1] = None  # seed 1 failed for the strategy
    base = list(BASE)
    base[3] = None  # seed 3 failed for the baseline
    row = compare_one(frame({("g", "scratch"): base, ("g", "s"): sup})).iloc[0]
    assert row["n_pairs"] == 3 and row["n_unmatched"] == 2 and "2 unmatched" in row["note"]
    assert row["delta"] == pytest.approx(np.mean([-5.0, -4.8, -4.6]))


def test_not_applicable_pairs_give_no_row_and_direction_orients_probability():
    df = frame({("g", "scratch"): BASE, ("g", "s"): [b + 1 for b in BASE]})
    na = frame({("g", "ar"): [1.0] * 5})
    na["status"], na["fid_domain"] = "not_applicable", math.nan
    out = compare_one(pd.concat([df, na]), hib=True)
    assert list(out["strategy"]) == ["s"]
    assert compare.prob_improvement([2, 3], [0, 1], True) == 1.0 and compare.prob_improvement([2, 3], [0, 1], False) == 0.0
    assert compare.prob_improvement([1, 1], [1, 1], True) == 0.5 and math.isnan(compare.prob_improvement([1], [2], None))


def test_baseline_choice_and_no_baseline():
    df = frame({("g", "scratch"): BASE, ("g", "s"): [b - 1 for b in BASE], ("g", "t"): [b - 2 for b in BASE]})
    out = compare_one(df, baseline="s")
    assert set(out["strategy"]) == {"scratch", "t"} and set(out["baseline"]) == {"s"}
    assert out.set_index("strategy").loc["t", "delta"] == pytest.approx(-1.0)
    assert compare_one(frame({("g", "a"): BASE, ("g", "b"): BASE})).empty  # nothing is a baseline
    assert list(compare_one(frame({("g", "a"): BASE})).columns) == compare.COLUMNS


def test_swept_values_are_groups():
    """The sweep's hook: a `dataset.limit` column splits the comparison, and shows in the output."""
    base = frame({("g", "scratch"): BASE * 2, ("g", "s"): [b - 1 for b in BASE] + [b - 3 for b in BASE]})
    base["seed"] = list(range(5)) * 4
    base["dataset.limit"] = ([25] * 5 + [100] * 5) * 2
    out = compare_one(base)
    assert compare.group_columns(base) == ["adapter", "dataset.limit"]
    assert out.set_index("dataset.limit")["delta"].to_dict() == {25: pytest.approx(-1.0), 100: pytest.approx(-3.0)}


def test_mde_has_the_power_it_claims():
    sd, n, m = 2.0, 5, 12
    d = compare.mde(sd, n, m)
    crit = t.ppf(1 - 0.05 / (2 * m), n - 1)
    nc = d * math.sqrt(n) / sd
    assert nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc) == pytest.approx(0.8, abs=1e-4)
    assert compare.mde(sd, 10, m) < d < compare.mde(sd, 5, 100)  # more seeds detect less; more tests need more
    assert math.isnan(compare.mde(sd, 1, m)) and compare.mde(0.0, 5, m) == 0.0
    assert compare.mde(1.0, 2, 200) > 100  # two seeds and many tests: nothing realistic resolves


# --- suite keys -----------------------------------------------------------------------------------
def suite(**over) -> dict:
    d = {
        "name": "t",
        "dataset": {"name": "digits"},
        "eval": {"metrics": ["fid_domain", "bpd"]},
        "adapters": {"dummy": {}},
        "strategies": {"scratch": {}, "other": {}},
    }
    d.update(over)
    return d


def test_baseline_key_is_validated_and_does_not_change_run_ids():
    plain = [r.run_id for r in expand(load_suite(suite()))]
    keyed = load_suite(suite(baseline="other", headline="bpd"))
    assert keyed.baseline == "other" and keyed.headline_metric == "bpd"
    assert [r.run_id for r in expand(keyed)] == plain
    assert load_suite(suite()).headline_metric == "fid_domain"
    with pytest.raises(ConfigError, match="baseline") as err:
        load_suite(suite(baseline="othr"))
    assert "did you mean 'other'" in str(err.value)
    with pytest.raises(ConfigError, match="headline"):
        load_suite(suite(headline="fid_domian"))
    with pytest.raises(ConfigError, match="add kid_domain to eval.metrics"):
        load_suite(suite(headline="kid_domain"))


def test_bad_baseline_from_the_cli_is_one_line_exit_2(tmp_path: Path):
    from click.testing import CliRunner

    from bench.cli import main

    f = tmp_path / "s.yaml"
    f.write_text("name: t\ndataset: {name: digits}\nadapters: {dummy: {}}\nstrategies: {scratch: {}}\nbaseline: nope\n")
    res = CliRunner().invoke(main, ["validate", str(f)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert str(f) in res.output and "baseline" in res.output and len(res.output.strip().splitlines()) == 1


# --- the paired design ------------------------------------------------------------------------------
def _digest(x) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def test_every_strategy_sees_the_same_data_order_and_latents(tmp_path: Path, monkeypatch):
    """Common random numbers: for one seed, scratch and a strategy whose pretraining draws plenty of random
    numbers (whole-model generative pretraining) train on the same batches with the same noise, and are
    evaluated on the same latents. Another seed sees other batches."""
    import torch

    import bench.api
    from baselines.cnn_gan import CNNGAN
    from bench.store import runs as store

    monkeypatch.setattr(bench.api, "render_report", lambda suite_dir, out, **kw: Path(out) / "index.html")
    # Keyed by id(), holding each instance alive: a freed throwaway adapter's id can be reused by the next one,
    # which would merge two instances' logs.
    seen: dict[int, tuple[object, dict[str, list[str]]]] = {}
    train, sample = CNNGAN.train_step, CNNGAN.sample

    def log_of(adapter) -> dict[str, list[str]]:
        return seen.setdefault(id(adapter), (adapter, {"train": [], "sample": []}))[1]

    def rec_train(self, batch, step):
        # The batch, and the next draw of the global RNG that the step's noise comes from.
        log_of(self)["train"].append(_digest(batch.u8) + _digest(torch.get_rng_state()))
        return train(self, batch, step)

    def rec_sample(self, n, generator):
        log_of(self)["sample"].append(_digest(generator.get_state()))
        return sample(self, n, generator)

    monkeypatch.setattr(CNNGAN, "train_step", rec_train)
    monkeypatch.setattr(CNNGAN, "sample", rec_sample)
    s = suite(
        name="crn",
        eval={"num_samples": 20, "metrics": ["bpd"]},  # n/a for a GAN: samples are still drawn, nothing else
        budget={"steps": 4, "eval_every": 0, "batch_size": 8},
        seeds=[0, 1],
        adapters={"cnn_gan": {"z_dim": 8, "width": 8, "max_width": 8, "feature_dim": 8}},
        strategies={"scratch": {}, "gen": {"task": "generative", "source": {"name": "digits", "classes": [0, 1]}, "steps": 3}},
        runner={"threads": 1, "log_every": 2},
    )
    logs: dict[tuple[str, int], dict[str, list[str]]] = {}
    for strategy in ("scratch", "gen"):
        for seed in (0, 1):
            seen.clear()
            bench.api.run_suite(s, out=tmp_path, reports=tmp_path / "rep", device="cpu", only=f"cnn_gan-{strategy}-s{seed}", progress=False)
            # The trained model is the sampled instance that took the 4 budgeted steps; a pretraining copy never
            # samples, and the contract check's throwaway adapter takes one step on a tiny batch.
            (log,) = [v for _, v in seen.values() if v["sample"] and len(v["train"]) == 4]
            logs[(strategy, seed)] = log
    assert all(r.status == "completed" for r in store.list_results(tmp_path / "crn"))
    for seed in (0, 1):
        assert len(logs[("scratch", seed)]["train"]) == 4
        assert logs[("scratch", seed)] == logs[("gen", seed)]
    assert logs[("scratch", 0)]["train"] != logs[("scratch", 1)]["train"]
    assert logs[("scratch", 0)]["sample"] != logs[("scratch", 1)]["sample"]
