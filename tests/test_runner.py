"""The runner's stages keep to their own concerns: one data load and one protocol description per run, and
cost metrics measured from the same table that registers them."""

from __future__ import annotations

from pathlib import Path

from bench.api import run_suite
from bench.metrics import METRICS
from bench.metrics.cost import COST_METRICS, RunCost, cost_values
from bench.metrics.info import metric_info
from bench.store import runs as store


def test_one_run_loads_its_data_once_and_describes_the_protocol_once(tmp_path: Path, tiny_suite: dict, monkeypatch) -> None:
    import bench.metrics.protocol
    import bench.runner.run
    from bench.metrics import domain_cache

    calls = {"load": 0, "describe": 0}
    real_load, real_describe = bench.runner.run.load_dataset, bench.metrics.protocol.describe

    def load(*a, **k):
        calls["load"] += 1
        return real_load(*a, **k)

    def describe(*a, **k):
        calls["describe"] += 1
        return real_describe(*a, **k)

    monkeypatch.setattr(bench.runner.run, "load_dataset", load)
    monkeypatch.setattr(bench.metrics.protocol, "describe", describe)
    # As a new process: a classifier memoised by an earlier test would come from another cache folder.
    monkeypatch.setattr(domain_cache, "MEMO", domain_cache.Memo(maxsize=4))
    tiny_suite["eval"]["metrics"] = ["bpd", "modes"]  # modes needs the domain classifier
    df = run_suite(tiny_suite, out=tmp_path, reports=tmp_path / "rep", device="cpu", progress=False)
    assert not df.attrs["failed"]
    assert calls == {"load": 1, "describe": 1}
    (res,) = store.list_results(tmp_path / "tiny")
    # Described when the run ends, after the final evaluation trained the classifier: its accuracy is named.
    assert res.protocol["extractor"]["accuracy"] > 0.5


def test_cost_metrics_are_measured_and_registered_from_one_table(tmp_path: Path, tiny_suite: dict) -> None:
    cost = RunCost(
        pretrain_seconds=2.0,
        train_seconds=4.0,
        eval_seconds=1.0,
        compile_seconds=0.5,
        timed_images=640,
        peak_memory_mb=9.0,
        params=7,
        weights_bytes=96,
    )
    values = cost_values(cost)
    assert list(values) == list(COST_METRICS)
    assert values["total_seconds"] == 6.5 and values["images_per_second"] == 160.0 and values["params"] == 7.0
    assert values["weights_bytes"] == 96.0
    for name in COST_METRICS:  # registered from the torch-free table, which the report reads
        entry = METRICS.get(name)
        assert entry.fn is None and entry.info is metric_info(name) and entry.info.cost
    run_suite(tiny_suite, out=tmp_path, reports=tmp_path / "rep", device="cpu", progress=False)
    (res,) = store.list_results(tmp_path / "tiny")
    assert set(COST_METRICS) <= set(res.metrics)
