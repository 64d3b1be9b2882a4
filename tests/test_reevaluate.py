"""Evaluation is not training: the run id leaves the eval block out, finished runs keep their weights, and a
changed eval block re-evaluates them (nothing trained); `bench score` of a run's samples gives its numbers."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.api import run_suite
from bench.api_score import export_samples, score_samples
from bench.cli import main
from bench.core.errors import BenchError
from bench.data.samples import read_samples, write_samples
from bench.runner.weights import FILE
from bench.store import fingerprint
from bench.store import runs as store
from bench.store.fingerprint import what_changed
from bench.suite.load import expand, load_suite

CNN = {"z_dim": 8, "width": 8, "max_width": 8, "feature_dim": 16}
SUITE = {
    "name": "keep",
    "dataset": {"name": "digits"},
    "budget": {"steps": 12, "eval_every": 0, "batch_size": 16},
    "eval": {"num_samples": 50, "metrics": ["fid_domain"]},
    "seeds": [0],
    "adapters": {"cnn_gan": CNN},
    "runner": {"threads": 1},
}


def with_(**over) -> dict:
    s = copy.deepcopy(SUITE)
    for block, values in over.items():
        s[block] = {**s[block], **values}
    return s


def stamped(s: dict):
    (run,) = expand(load_suite(s), stamp=lambda r: fingerprint.stamp(r, "cpu"))
    return run


def test_the_eval_block_is_in_the_evaluation_id_not_the_run_id() -> None:
    base = stamped(SUITE)
    for change in ({"metrics": ["fid_domain", "kid_domain"]}, {"num_samples": 60}, {"kid_subset_size": 10}):
        other = stamped(with_(eval=change))
        assert other.run_id == base.run_id and other.eval_id != base.eval_id, change
    for no_op in ({"batch_size": 7}, {"history_metrics": ["kid_domain"]}, {"metrics": ["fid_domain", "fid_domain"]}):
        assert stamped(with_(eval=no_op)).eval_id == base.eval_id, no_op
    kept = stamped(with_(runner={"keep_weights": False}))
    assert (kept.run_id, kept.eval_id) == (base.run_id, base.eval_id)
    assert stamped(with_(budget={"steps": 13})).run_id != base.run_id  # training still is
    # The metrics' code is the evaluation's: an edited metric re-evaluates, it never retrains.
    edited = dataclasses.replace(base, identity={**base.identity, "eval_code": "edited"})
    assert edited.run_id == base.run_id and edited.eval_id != base.eval_id
    assert dataclasses.replace(base, identity={**base.identity, "harness": "edited"}).run_id != base.run_id


def test_a_changed_eval_block_is_not_a_reason_to_set_a_run_aside() -> None:
    old, new = stamped(SUITE).resolved(), stamped(with_(eval={"metrics": ["kid_domain"]}, budget={"steps": 13})).resolved()
    assert what_changed(old, new) == ["budget.steps 12 -> 13"]


def test_sample_files_read_back_and_bad_ones_are_one_line(tmp_path: Path) -> None:
    x = np.random.RandomState(0).randint(0, 256, (5, 1, 8, 8)).astype(np.uint8)
    import torch

    for target in (tmp_path / "a.npz", tmp_path / "pngs"):
        assert torch.equal(read_samples(write_samples(torch.from_numpy(x), target)), torch.from_numpy(x))
    np.savez(tmp_path / "hwc.npz", x.transpose(0, 2, 3, 1).repeat(3, axis=3))
    assert read_samples(tmp_path / "hwc.npz").shape == (5, 3, 8, 8)
    (tmp_path / "empty").mkdir()
    np.savez(tmp_path / "float.npz", samples=x.astype(np.float32))
    np.savez(tmp_path / "two.npz", a=x, b=x)
    (tmp_path / "pngs" / "000009.png").write_bytes(b"not a png")
    for bad, says in [
        ("empty", "no .png images"),
        ("float.npz", "not uint8"),
        ("two.npz", "holds 2 arrays"),
        ("pngs", "unreadable image"),
        ("nowhere", "not a folder"),
    ]:
        with pytest.raises(BenchError, match=says):
            read_samples(tmp_path / bad)
    res = CliRunner().invoke(main, ["score", str(tmp_path / "two.npz"), "--reference", "digits"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "two.npz" in res.output
    res = CliRunner().invoke(main, ["score", str(tmp_path / "a.npz"), "--reference", "digits", "--metrics", "fid_domian"])
    assert res.exit_code == 2 and "did you mean" in res.output.lower(), res.output
    res = CliRunner().invoke(main, ["eval", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no completed runs" in res.output


# --- end to end, on one finished tiny run ---------------------------------------------------------------


def run(s: dict, out: Path) -> tuple[object, list[str]]:
    lines: list[str] = []
    df = run_suite(s, out=out, reports=out / "rep", device="cpu", progress=False, echo=lines.append)
    assert not df.attrs["failed"], lines
    return df, lines


def fresh(tmp_path: Path, finished: Path, name: str) -> Path:
    """A new out folder with the finished run's cache (its domain extractor), so no test trains one again."""
    out = tmp_path / name
    shutil.copytree(finished / ".cache", out / ".cache")
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    run(SUITE, out)
    return out


@pytest.mark.slow
def test_adding_a_metric_reevaluates_the_kept_weights_and_trains_nothing(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "added"
    shutil.copytree(finished, out)
    (before,) = store.list_results(out / "keep")
    assert (out / "keep" / before.run_id / FILE).stat().st_size == before.metrics["weights_bytes"] > 0
    _, lines = run(with_(eval={"metrics": ["fid_domain", "kid_domain"]}), out)
    text = "\n".join(lines)
    assert "1 runs (1 already done; 1 metric to evaluate (kid_domain) on 1 kept model)" in text, text
    assert "\n0 runs in" in text and "re-evaluated 1 of 1 runs" in text
    (after,) = store.list_results(out / "keep")
    assert after.run_id == before.run_id and after.metrics["fid_domain"] == before.metrics["fid_domain"]
    assert after.metrics["train_seconds"] == before.metrics["train_seconds"]  # the training run's record, untouched
    assert after.evaluations[-1]["computed"] == ["kid_domain"] and after.eval_id != before.eval_id
    # The added number is the one a run measuring it from the start gets (training is deterministic on CPU).
    new = fresh(tmp_path, finished, "both")
    run(with_(eval={"metrics": ["fid_domain", "kid_domain"]}), new)
    (direct,) = store.list_results(new / "keep")
    assert direct.run_id == after.run_id and direct.metrics["kid_domain"] == after.metrics["kid_domain"]
    # A second run of the same suite has nothing to do.
    _, lines = run(with_(eval={"metrics": ["fid_domain", "kid_domain"]}), out)
    assert "(1 already done)" in lines[0] and not any("re-evaluated" in ln for ln in lines)


@pytest.mark.slow
def test_score_of_a_runs_samples_equals_its_own_numbers(finished: Path, tmp_path: Path) -> None:
    (res,) = store.list_results(finished / "keep")
    npz = export_samples(finished / "keep" / res.run_id, tmp_path / "s.npz")
    got = score_samples(npz, "digits", metrics=["fid_domain", "bpd"], device="cpu", cache_dir=finished / ".cache")
    assert got["n"] == 50 and got["metrics"] == {"fid_domain": res.metrics["fid_domain"]}
    assert "needs the model" in got["not_applicable"]["bpd"]


@pytest.mark.slow
def test_periodic_evaluation_changes_no_weight(finished: Path, tmp_path: Path) -> None:
    """Evaluation during training runs under preserved RNG with its own sampling generator: the same weights."""
    out = fresh(tmp_path, finished, "periodic")
    run(with_(budget={"eval_every": 4}, eval={"history_metrics": ["fid_domain"]}), out)
    (res,) = store.list_results(out / "keep")
    (base,) = store.list_results(finished / "keep")
    assert res.run_id != base.run_id  # eval_every is in the budget: the learning curve is a training product
    assert (out / "keep" / res.run_id / FILE).read_bytes() == (finished / "keep" / base.run_id / FILE).read_bytes()


@pytest.mark.slow
def test_without_kept_weights_a_changed_eval_block_retrains(finished: Path, tmp_path: Path) -> None:
    out = fresh(tmp_path, finished, "nokeep")
    run(with_(runner={"keep_weights": False}), out)
    (res,) = store.list_results(out / "keep")
    (base,) = store.list_results(finished / "keep")
    assert res.run_id == base.run_id and not (out / "keep" / res.run_id / FILE).exists()
    assert res.metrics["weights_bytes"] == base.metrics["weights_bytes"]  # measured whether kept or not
    _, lines = run(with_(runner={"keep_weights": False}, eval={"metrics": ["fid_domain", "kid_domain"]}), out)
    assert "1 runs (0 already done)" in lines[0] and "\n1 runs in" in "\n".join(lines)


@pytest.mark.slow
def test_bench_eval_recomputes_every_metric_when_the_sample_count_changes(finished: Path, tmp_path: Path) -> None:
    out = tmp_path / "explicit"
    shutil.copytree(finished, out)
    (before,) = store.list_results(out / "keep")
    args = ["eval", str(out / "keep"), "--metrics", "fid_domain,kid_domain", "--num-samples", "60", "--device", "cpu"]
    res = CliRunner().invoke(main, [*args, "--reports", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "1 completed runs; 2 metrics to evaluate (fid_domain, kid_domain), 1 of them afresh" in res.output, res.output
    (after,) = store.list_results(out / "keep")
    assert after.evaluations[-1]["computed"] == ["fid_domain", "kid_domain"] and after.spec["eval"]["num_samples"] == 60
    assert after.metrics["fid_domain"] != before.metrics["fid_domain"]  # 60 samples, not 50: measured afresh
    assert after.metrics["train_seconds"] == before.metrics["train_seconds"]
    assert "kid_domain" in (out / "keep" / "results.csv").read_text().splitlines()[0]
