from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from bench.stats.aggregate import ci95, summary_frame, terminal_table
from bench.store import runs as store


def _result(status: str) -> dict:
    return {
        "run_id": "r1",
        "suite": "s",
        "adapter": "dummy",
        "strategy": "scratch",
        "task": "scratch",
        "seed": 0,
        "status": status,
        "metrics": {},
    }


def test_atomic_json_roundtrip_and_corrupt_is_not_trusted(tmp_path):
    run = tmp_path / "r1"
    store.atomic_write_json(run / "result.json", _result("completed"))
    assert store.is_done(run)
    (run / "result.json").write_text('{"run_id": "r1", "status": "compl')  # half-written
    assert store.read_result(run) is None and not store.is_done(run)
    store.atomic_write_json(run / "result.json", _result("failed"))
    assert not store.is_done(run)  # failed runs are retried on rerun
    assert not list(run.glob(".*.tmp"))


def test_non_finite_numbers_are_refused_in_json(tmp_path):
    with pytest.raises(ValueError):
        store.atomic_write_json(tmp_path / "x.json", {"v": float("nan")})


def test_checkpoint_weights_only_and_corrupt(tmp_path):
    p = tmp_path / "checkpoint.pt"
    store.save_checkpoint(p, {"step": 3, "w": torch.ones(2)})
    assert store.load_checkpoint(p)["step"] == 3
    p.write_bytes(p.read_bytes()[:20])
    assert store.load_checkpoint(p) is None


def test_summary_mean_std_ci_and_counts():
    df = pd.DataFrame(
        [
            {
                "run_id": f"a{i}",
                "adapter": "a",
                "family": "gan",
                "strategy": "s",
                "task": "scratch",
                "seed": i,
                "status": "completed",
                "error": None,
                "m": v,
            }
            for i, v in enumerate([1.0, 2.0, 3.0])
        ]
        + [
            {
                "run_id": "a9",
                "adapter": "a",
                "family": "gan",
                "strategy": "s",
                "task": "scratch",
                "seed": 9,
                "status": "diverged",
                "error": "nan",
                "m": None,
            }
        ]
    )
    s = summary_frame(df).iloc[0]
    assert s["m_mean"] == 2.0 and s["m_n"] == 3 and s["n_diverged"] == 1 and s["n_runs"] == 4
    assert math.isclose(s["m_std"], 1.0)
    assert math.isclose(s["m_ci95"], 4.302652729911275 / math.sqrt(3), rel_tol=1e-9)
    assert math.isnan(ci95(1.0, 1))
    text = terminal_table(summary_frame(df), ["m"])
    assert "1 diverged" in text and "2 ± 2.5" in text


def test_results_json_is_strict(tmp_path):
    store.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
