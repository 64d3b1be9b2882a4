"""Modes that inform: each run records the real test split's own coverage and the maximum beside `modes`;
the report marks `modes` saturated (not a headline) when every run and the real data reach the maximum, and
shows the real data's ceiling otherwise; digits_stacked uses at least 26,000 generated samples."""

from __future__ import annotations

import pytest
import torch
from _fixed import Fixed

from bench.data.datasets import DatasetSpec, load_dataset
from bench.metrics import evaluate
from bench.metrics.context import EvalContext
from bench.metrics.modes import MIN_SAMPLES
from bench.report.render import render_report
from bench.report.stats import ceilings, saturated
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.load import EvalSpec


def modes_of(images, data, cache_dir, n) -> tuple[dict, dict, Fixed]:
    adapter = Fixed(images, data.info)
    ctx = EvalContext(adapter, data, EvalSpec(num_samples=n), torch.device("cpu"), cache_dir, seed=0)
    values, na = evaluate(["modes", "modes_kl"], ctx)
    assert not na, na
    return values, ctx.info["modes"], adapter


def test_digits_run_records_real_coverage_and_maximum(tmp_path):
    data = load_dataset(DatasetSpec("digits"))
    values, info, _ = modes_of(data.train_x[data.train_y == 3], data, tmp_path, 200)  # only threes
    assert info == {"samples": 200, "max": 10, "real": 10}
    assert values["modes"] < info["max"] == info["real"]  # a collapsed model is visibly below the real data


def test_stacked_uses_enough_samples_and_reports_the_real_ceiling(tmp_path):
    data = load_dataset(DatasetSpec("digits_stacked"))
    values, info, adapter = modes_of(data.test_x, data, tmp_path, 500)
    assert adapter.drawn == MIN_SAMPLES["digits_stacked"] == info["samples"] == 26_000
    # The generated images are the test split cycled, so they cover exactly what the real data covers,
    # which is well short of 1000 modes: the ceiling is the real data's, not the class count.
    assert values["modes"] == info["real"] < info["max"] == 1000


def result(run: str, modes: float, real: int, top: int = 10) -> RunResult:
    return RunResult.from_json(
        {
            "run_id": run,
            "suite": "t",
            "adapter": run.split("-")[0],
            "family": "gan",
            "strategy": "scratch",
            "task": "scratch",
            "seed": 0,
            "status": "completed",
            "error": None,
            "metrics": {"modes": modes, "fid_domain": 1.0},
            "not_applicable": {},
            "metric_info": {"modes": {"samples": 1000, "max": top, "real": real}},
            "spec": {"eval": {"metrics": ["fid_domain", "modes"]}},
            "env": {},
        }
    )


def test_saturated_only_when_every_run_and_the_real_data_reach_the_maximum():
    full = [result("a-scratch-s0", 10, 10), result("b-scratch-s0", 10, 10)]
    assert "modes" in saturated(full)
    assert saturated([*full[:1], result("b-scratch-s0", 9, 10)]) == {}  # one model misses a class: informative
    assert saturated([result("a-scratch-s0", 10, 9)]) == {}  # the real data itself misses one
    assert saturated([RunResult.from_json({**full[0].to_json(), "status": "failed"})]) == {}
    assert ceilings([result("a-scratch-s0", 800, 841, 1000)]) == {"modes": "the real test split itself reaches 841 of 1000"}


@pytest.mark.parametrize(("models", "headline"), [((10, 10), False), ((10, 7), True)])
def test_report_drops_a_saturated_metric_from_the_headline(tmp_path, models, headline):
    suite_dir = tmp_path / "runs" / "t"
    for i, m in enumerate(models):
        r = result(f"m{i}-scratch-s0-0000000{i}", m, 10)
        store.atomic_write_json(suite_dir / r.run_id / "result.json", r.to_json())
    html = render_report(suite_dir, tmp_path / "rep")["html"].read_text()
    assert ('modes <span class="dir"' in html) is headline
    assert ('id="saturated"' in html) is not headline
    assert ("the real test split itself reaches 10 of 10" in html) is headline
