"""The sweep axis: a list in place of a dataset:/budget: value expands the grid (bench/sweep.py), enters the run
id, becomes a results column, splits comparisons, and gives the report its Δ-against-value figure."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from bench.cli import main
from bench.core.errors import ConfigError
from bench.report.render import render_report
from bench.stats import aggregate
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.load import expand, load_suite, suite_to_dict


def suite(dataset=None, budget=None, **over) -> dict:
    d = {
        "name": "sw",
        "dataset": {"name": "digits", **(dataset or {})},
        "budget": {"steps": 20, "batch_size": 32, **(budget or {})},
        "eval": {"num_samples": 100, "metrics": ["bpd"]},
        "seeds": [0, 1],
        "adapters": {"dummy": {}},
        "strategies": {"scratch": {}, "other": {}},
    }
    d.update(over)
    return d


# --- expansion -------------------------------------------------------------------------------------
def test_grid_is_the_product_and_each_run_holds_its_value():
    s = load_suite(suite({"limit": [25, 100, 400]}, {"steps": [10, 20]}))
    assert s.sweep == {"dataset.limit": [25, 100, 400], "budget.steps": [10, 20]}
    runs = expand(s)
    assert len(runs) == 1 * 2 * 2 * 3 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    for r in runs:
        assert r.dataset.limit == r.swept["dataset.limit"] and r.budget.steps == r.swept["budget.steps"]
        assert f"-limit{r.dataset.limit}-steps{r.budget.steps}-s{r.seed}-" in r.run_id
    assert [r.run_id for r in expand(load_suite(suite({"limit": [25, 100, 400]}, {"steps": [10, 20]})))] == [r.run_id for r in runs]


def test_the_hash_is_the_concrete_specs_and_unswept_ids_do_not_change():
    """A swept run's hash is the one the same scalar suite gives: only the readable part shows the point."""
    swept = {r.run_id for r in expand(load_suite(suite({"limit": [25, 100]})))}
    for limit in (25, 100):
        for r in expand(load_suite(suite({"limit": limit}))):
            assert "limit" not in r.run_id and r.swept == {}
            name, digest = r.run_id.rsplit("-", 1)
            assert f"dummy-{r.strategy}-limit{limit}-s{r.seed}-{digest}" in swept


def test_a_list_valued_key_sweeps_only_as_a_list_of_lists():
    plain = load_suite(suite({"classes": [5, 6]}))
    assert plain.sweep == {} and plain.dataset.classes == [5, 6]
    s = load_suite(suite({"classes": [[5, 6], [5, 6, 7, 8, 9]]}))
    runs = expand(s)
    assert s.sweep == {"dataset.classes": [[5, 6], [5, 6, 7, 8, 9]]} and len(runs) == 2 * 2 * 2
    assert {tuple(r.dataset.classes) for r in runs} == {(5, 6), (5, 6, 7, 8, 9)}
    assert any("-classes5.6.7.8.9-" in r.run_id for r in runs)


def test_the_resolved_copy_loads_again_with_the_same_runs():
    s = load_suite(suite({"limit": [25, 100]}, {"steps": [10, 20]}))
    data = yaml.safe_load(yaml.safe_dump(suite_to_dict(s), sort_keys=False))  # as bench run writes it
    assert data["dataset"]["limit"] == [25, 100] and "sweep" not in data
    assert [r.run_id for r in expand(load_suite(data))] == [r.run_id for r in expand(s)]


def test_only_matches_the_readable_point():
    runs = expand(load_suite(suite({"limit": [25, 100]})), only="dummy-scratch-limit25-*")
    assert [r.dataset.limit for r in runs] == [25, 25]


@pytest.mark.parametrize(
    ("dataset", "budget", "extra", "key", "words"),
    [
        ({"limit": []}, None, {}, "dataset.limit", "empty list"),
        ({"limit": [25, 0]}, None, {}, "dataset.limit[1]", "positive integer"),
        ({"limit": [25, "x"]}, None, {}, "dataset.limit[1]", "expected an integer"),
        ({"limit": [25, 25]}, None, {}, "dataset.limit[1]", "repeated"),
        (None, {"steps": [10, -1]}, {}, "budget", "steps"),
        (None, None, {"eval": {"num_samples": [100, 200], "metrics": ["bpd"]}}, "eval.num_samples", "cannot be swept"),
        (None, None, {"runner": {"threads": [1, 2]}}, "runner.threads", "cannot be swept"),
        ({"limt": [25, 100]}, None, {}, "dataset.limt", "did you mean 'limit'"),
    ],
)
def test_bad_sweeps_name_the_key(dataset, budget, extra, key, words):
    with pytest.raises(ConfigError) as err:
        load_suite(suite(dataset, budget, **extra))
    assert err.value.key.startswith(key) and words in str(err.value)


def test_validate_prints_the_expanded_count_and_errors_exit_2(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite({"limit": [25, 100, 400]})))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert "× 3 dataset.limit (25, 100, 400) = 12 runs" in res.output
    path.write_text(yaml.safe_dump(suite({"limit": [25, -3]})))
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.count("\n") == 1 and f"{path}: dataset.limit[1]:" in res.output


# --- tables and report -------------------------------------------------------------------------------
def result(strategy: str, seed: int, limit: int, fid: float) -> dict:
    return {
        "run_id": f"cnn_gan-{strategy}-limit{limit}-s{seed}-00000000",
        "suite": "sw",
        "adapter": "cnn_gan",
        "family": "gan",
        "strategy": strategy,
        "task": "scratch" if strategy == "scratch" else "supervised",
        "seed": seed,
        "status": "completed",
        "error": None,
        "metrics": {"fid_domain": fid, "total_seconds": 5.0},
        "not_applicable": {},
        "metric_info": {},
        "protocol": {"version": "test"},
        "spec": {"dataset": {"name": "digits", "limit": limit}, "swept": {"dataset.limit": limit}, "eval": {"metrics": ["fid_domain"]}},
        "env": {"versions": {}, "device": "cpu", "git_commit": "abc"},
        "finished_at": "2026-01-01T00:00:00+0000",
    }


# Seed noise shared by both strategies (common random numbers); the gain is -8 at 25 images and -1 at 400.
NOISE = [0.0, 3.0, -2.0, 5.0]
GAIN = {25: -8.0, 400: -1.0}


def regime_results() -> list[dict]:
    out = []
    for limit, gain in GAIN.items():
        for seed, e in enumerate(NOISE):
            base = 40.0 + e - limit / 100
            out.append(result("scratch", seed, limit, base))
            out.append(result("supervised", seed, limit, base + gain + 0.1 * seed))
    return out


def write_runs(root: Path, results: list[dict]) -> Path:
    suite_dir = root / "runs" / "sw"
    suite_dir.mkdir(parents=True)
    (suite_dir / "suite.yaml").write_text("name: sw\n")
    for r in results:
        store.atomic_write_json(suite_dir / r["run_id"] / "result.json", r)
    return suite_dir


def test_swept_values_are_columns_and_comparisons_pair_within_them():
    df = aggregate.results_frame([RunResult.from_json(r) for r in regime_results()])
    assert "dataset.limit" in df.columns and "dataset.limit" not in aggregate.metric_columns(df)
    summary = aggregate.summary_frame(df)
    assert sorted(zip(summary["strategy"], summary["dataset.limit"], strict=True)) == [
        ("scratch", 25),
        ("scratch", 400),
        ("supervised", 25),
        ("supervised", 400),
    ]
    assert (summary["fid_domain_n"] == len(NOISE)).all()
    comp = aggregate.comparisons_of(df)
    fid = comp[comp["metric"] == "fid_domain"].set_index("dataset.limit")
    assert set(fid.index) == set(GAIN) and (fid["n_pairs"] == len(NOISE)).all()
    for limit, gain in GAIN.items():  # paired within the value: the shared seed noise cancels exactly
        assert fid.loc[limit, "delta"] == pytest.approx(gain + 0.1 * sum(range(len(NOISE))) / len(NOISE))
        assert fid.loc[limit, "ci_high"] - fid.loc[limit, "ci_low"] < 1.0


def test_the_report_plots_delta_against_the_swept_value(tmp_path: Path):
    suite_dir = write_runs(tmp_path, regime_results())
    out = render_report(suite_dir, tmp_path / "report")["html"]
    html = out.read_text()
    assert "Gain against limit" in html and 'src="img/sweep.png"' in html
    img = Image.open(out.parent / "img" / "sweep.png").convert("RGB")
    assert img.width > 300 and len(img.getcolors(maxcolors=1 << 20)) > 20  # drawn, not blank
    # Tables and the verdict keep the values apart: each value is its own adapter row.
    assert re.search(r"cnn_gan · limit +25<", html) and "cnn_gan · limit 400<" in html
    assert html.index("limit  25<") < html.index("limit 400<")  # padded: numeric order, not string order


def test_no_sweep_no_figure(tmp_path: Path):
    plain = [dict(r, spec={"eval": {"metrics": ["fid_domain"]}}) for r in regime_results() if r["spec"]["swept"]["dataset.limit"] == 25]
    out = render_report(write_runs(tmp_path, plain), tmp_path / "report")["html"]
    assert "sweep.png" not in out.read_text() and not (out.parent / "img" / "sweep.png").exists()


def test_a_swept_suite_runs_end_to_end(tmp_path: Path):
    from bench.api import run_suite

    data = suite({"limit": [30, 60]}, {"steps": 4, "batch_size": 16}, seeds=[0], strategies={"scratch": {}})
    df = run_suite(data, out=tmp_path / "runs", reports=tmp_path / "reports", progress=False)
    assert sorted(df["dataset.limit"]) == [30, 60] and set(df["status"]) == {"completed"}
    table = pd.read_csv(tmp_path / "runs" / "sw" / "results.csv")
    assert sorted(table["dataset.limit"]) == [30, 60]
    assert all(f"-limit{v}-s0-" in i for i, v in zip(table["run_id"], table["dataset.limit"], strict=True))


def test_every_swept_data_set_is_checked_before_any_run(tmp_path: Path):
    """A sweep over data sets fails fast (exit 2) on the one that is missing, not as a failed run later."""
    from bench.api import run_suite
    from bench.core.errors import BenchError

    data = suite({"name": ["digits", "mnist"], "root": str(tmp_path / "nothing")}, seeds=[0], strategies={"scratch": {}})
    assert len(expand(load_suite(data))) == 2
    with pytest.raises(BenchError, match="mnist"):
        run_suite(data, out=tmp_path / "runs", reports=tmp_path / "reports", progress=False)
    assert not (tmp_path / "runs" / "sw").exists()


def test_resource_ceilings_see_every_swept_value_and_the_whole_grid(monkeypatch):
    monkeypatch.setenv("BENCH_LIMITS", "steps=1000,runs=10")
    with pytest.raises(ConfigError) as err:
        load_suite(suite(None, {"steps": [10, 5000]}, seeds=[0]))
    assert err.value.key == "budget.steps[1]"
    with pytest.raises(ConfigError, match="swept values"):
        load_suite(suite({"limit": [25, 50, 100]}))  # 1 × 2 × 2 × 3 = 12 runs > 10
    assert len(expand(load_suite(suite({"limit": [25, 50]})))) == 8
