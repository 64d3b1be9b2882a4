"""RunResult: one typed result, compatible with the result.json files written before it existed, and a
mistyped file is never trusted (the store redoes the run, `bench report` skips it with one warning line)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.store import runs as store
from bench.store.result import InvalidResult, RunResult

RUN_ID = "dummy-scratch-s0-0a1b2c3d"


def completed_json() -> dict:
    """A completed result.json with exactly the keys the runner wrote before RunResult existed."""
    return {
        "run_id": RUN_ID,
        "suite": "tiny",
        "adapter": "dummy",
        "family": "autoregressive",
        "strategy": "scratch",
        "task": "scratch",
        "seed": 0,
        "protocol": {"protocol_version": "1", "num_samples": 100},
        "spec": {"suite": "tiny", "adapter": "dummy", "seed": 0, "eval": {"metrics": ["bpd"]}},
        "env": {"versions": {"torch": "2"}, "device": "cpu", "git_commit": None},
        "metric_info": {"domain_classifier": {"accuracy": 0.97}},
        "status": "completed",
        "error": None,
        "metrics": {"bpd": 2.5, "fid_domain": None, "params": 10.0},
        "not_applicable": {"modes": "needs a classifier"},
        "first_losses": {"nll": 2.83},
        "pretrain": {"frozen": 0},
        "timings": {"pretrain": 0.0, "pretrain_cached": False, "train": 1.5, "eval": 0.5, "compile": 0.0},
        "steps_done": 20,
        "resumed_from": [],
        "finished_at": "2026-01-01T00:00:00+0000",
    }


def failed_json() -> dict:
    """A failed result.json as bench.exec.outcome.failed_result wrote it: no family, protocol or timings."""
    return {
        "run_id": RUN_ID,
        "suite": "tiny",
        "adapter": "dummy",
        "strategy": "scratch",
        "task": "scratch",
        "seed": 0,
        "status": "failed",
        "error": "RuntimeError: boom",
        "traceback": "Traceback (most recent call last):\n...",
        "metrics": {},
        "not_applicable": {},
        "spec": {"suite": "tiny"},
        "env": {"versions": {}, "device": "cpu", "git_commit": None},
        "finished_at": "2026-01-01T00:00:00+0000",
    }


@pytest.mark.parametrize("make", [completed_json, failed_json])
def test_files_written_before_the_type_read_and_write_back_unchanged(make) -> None:
    obj = make()
    res = RunResult.from_json(obj)
    assert res.to_json() == obj  # same keys, same values: files stay compatible both ways
    if obj["status"] == "completed":
        assert list(res.to_json()) == list(obj)  # and the runner's key order
    assert RunResult.from_json(json.loads(json.dumps(res.to_json()))) == res


def test_attributes_and_done() -> None:
    res = RunResult.from_json(completed_json())
    assert res.adapter == "dummy" and res.seed == 0 and res.metrics["bpd"] == 2.5 and res.done
    assert not RunResult.from_json(failed_json()).done


def test_non_finite_metrics_become_null_in_memory_and_on_disk(tmp_path: Path) -> None:
    res = dataclasses.replace(RunResult.from_json(completed_json()), metrics={"bpd": float("nan"), "x": float("inf"), "y": 1.0})
    assert res.metrics == {"bpd": None, "x": None, "y": 1.0}
    store.write_result(tmp_path / RUN_ID, res)  # strict JSON: would raise on NaN
    assert store.read_result(tmp_path / RUN_ID) == res


def test_a_newer_writers_extra_field_is_ignored() -> None:
    assert RunResult.from_json({**completed_json(), "verdict": {"x": 1}}) == RunResult.from_json(completed_json())


MISTYPED = {
    "env_string": ("env", "cpu"),
    "spec_string": ("spec", "resolved"),
    "timings_string": ("timings", "1.5s"),
    "protocol_string": ("protocol", "1"),
    "metric_info_string": ("metric_info", "acc 0.97"),
    "seed_abc": ("seed", "abc"),
    "seed_bool": ("seed", True),
    "seed_float": ("seed", 1.5),
    "adapter_list": ("adapter", ["dummy"]),
    "metrics_list": ("metrics", [1.0]),
    "metric_string": ("metrics", {"bpd": "2.5"}),
    "metric_bool": ("metrics", {"bpd": True}),
    "na_reason_number": ("not_applicable", {"modes": 1}),
    "status_unknown": ("status", "done"),
    "status_number": ("status", 1),
    "resumed_from_strings": ("resumed_from", ["10"]),
    "steps_done_string": ("steps_done", "20"),
    "error_list": ("error", ["boom"]),
    "synthetic_string": ("synthetic", "yes"),
}


def test_every_field_is_checked_and_ordered() -> None:
    from bench.store import result

    names = {f.name for f in dataclasses.fields(RunResult)}
    assert set(result._CHECKS) == set(result._EXPECTED) == set(result._ORDER) == names


@pytest.mark.parametrize("case", sorted(MISTYPED))
def test_mistyped_fields_raise_one_clear_error(case: str) -> None:
    key, value = MISTYPED[case]
    with pytest.raises(InvalidResult) as err:
        RunResult.from_json({**completed_json(), key: value})
    message = str(err.value)
    assert key in message and "\n" not in message, message


@pytest.mark.parametrize("key", ["run_id", "adapter", "seed", "status"])
def test_missing_required_field(key: str) -> None:
    obj = completed_json()
    del obj[key]
    with pytest.raises(InvalidResult, match=key):
        RunResult.from_json(obj)


@pytest.mark.parametrize("obj", [[], "completed", None, 3])
def test_not_an_object(obj) -> None:
    with pytest.raises(InvalidResult, match="JSON object"):
        RunResult.from_json(obj)


@pytest.mark.parametrize("case", sorted(MISTYPED))
def test_store_treats_a_mistyped_result_as_unfinished(tmp_path: Path, case: str) -> None:
    key, value = MISTYPED[case]
    run_dir = tmp_path / RUN_ID
    store.atomic_write_json(run_dir / "result.json", {**completed_json(), key: value})
    heard: list[str] = []
    assert store.read_result(run_dir, heard.append) is None and not store.is_done(run_dir)
    assert store.list_results(tmp_path) == []
    assert len(heard) == 1 and str(run_dir / "result.json") in heard[0]


def test_bench_report_skips_invalid_results_with_one_warning_line(tmp_path: Path) -> None:
    suite_dir = tmp_path / "runs" / "tiny"
    good = completed_json()
    store.atomic_write_json(suite_dir / RUN_ID / "result.json", good)
    bad_id = "dummy-scratch-s1-0a1b2c3d"
    store.atomic_write_json(suite_dir / bad_id / "result.json", {**good, "run_id": bad_id, "seed": 1, "env": "cpu"})
    res = CliRunner().invoke(main, ["report", str(suite_dir), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and bad_id in warnings[0] and "env" in warnings[0], res.output
    assert "Traceback" not in res.output
    csv = (suite_dir / "results.csv").read_text()
    assert RUN_ID in csv and bad_id not in csv
    assert (tmp_path / "rep" / "index.html").is_file()
