"""A run's identity covers everything that can change a number, or a test here proves the setting changes none;
runs of an earlier version of the suite or of the code are set aside and said aloud, never reused or mixed in."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bench.api import run_suite
from bench.cli import main
from bench.core.errors import BenchError
from bench.store import fingerprint
from bench.store import runs as store
from bench.suite.load import expand, load_suite
from bench.suite.spec import NO_OP_RUNNER_KEYS, derive_seed

CNN = {"z_dim": 8, "width": 8, "max_width": 8, "feature_dim": 16}


def suite(name: str = "ident", **over) -> dict:
    base = {
        "name": name,
        "dataset": {"name": "digits", "classes": [5, 6, 7, 8, 9], "limit": 50},
        "budget": {"steps": 12, "eval_every": 0, "batch_size": 16},
        "eval": {"num_samples": 50, "metrics": ["bpd"]},
        "seeds": [0],
        "adapters": {"cnn_gan": CNN},
        "strategies": {"generative": {"task": "generative", "source": {"name": "digits", "classes": [0, 1, 2, 3, 4]}, "steps": 4}},
        "runner": {"threads": 1, "log_every": 5, "checkpoint_every": 0},
    }
    return {**base, **over}


def stamped(s: dict, device: str = "cpu"):
    return expand(load_suite(s), stamp=lambda r: fingerprint.stamp(r, device))


def test_derived_seeds_are_independent_of_run_seeds() -> None:
    seeds = range(50)
    pre, train = {derive_seed(s, "pretrain") for s in seeds}, {derive_seed(s, "train") for s in seeds}
    assert len(pre) == len(train) == 50 and pre.isdisjoint(train)
    # Never another run's seed + k stream. (Not `pre.isdisjoint(range(2**32))`: set.isdisjoint walks a range
    # element by element, 2**32 of them, which took this test 136 s.)
    assert not any(0 <= s < 2**32 for s in pre | train)
    assert derive_seed(3, "pretrain") == derive_seed(3, "pretrain")  # a documented function, not a draw


@pytest.mark.parametrize(
    "change",
    [
        {"runner": {"threads": 2}},
        {"runner": {"fused_optim": False}},
        {"runner": {"amp": False}},
        {"runner": {"tf32": False}},
        {"runner": {"channels_last": False}},
        {"runner": {"compile": True}},
        {"runner": {"diverge_threshold": 1e6}},
    ],
)
def test_every_switch_that_can_change_a_number_is_in_the_run_id(change: dict) -> None:
    base = stamped(suite())[0]
    other = stamped(suite(runner={**suite()["runner"], **change["runner"]}))[0]
    assert base.run_id != other.run_id


def test_device_type_and_code_are_in_the_run_id() -> None:
    run = stamped(suite())[0]
    assert run.identity["device_type"] == "cpu" and stamped(suite(), "cuda")[0].run_id != run.run_id
    for key in ("harness", "adapter_code"):
        assert dataclasses.replace(run, identity={**run.identity, key: "edited"}).run_id != run.run_id
    assert run.identity["harness"].startswith(importlib.import_module("bench").__version__ + "+")


def test_null_threads_resolve_to_one_number_before_the_run_id() -> None:
    s = suite(runner={"threads": None})
    run = stamped(s)[0]
    assert run.runner.threads == fingerprint.default_threads() >= 1
    assert run.run_id == stamped(suite(runner={"threads": run.runner.threads}))[0].run_id
    assert fingerprint.default_threads() == 1  # one thread whatever the cores: the id is the same on every machine


def test_pretrain_seed_yaml_forms() -> None:
    for ok in ("per_run", "shared", 5):
        strat = {"task": "generative", "source": {"name": "digits"}, "steps": 2, "pretrain_seed": ok}
        assert load_suite(suite(strategies={"g": strat})).strategies["g"].pretrain_seed == ok
    with pytest.raises(BenchError, match="pretrain_seed"):
        load_suite(suite(strategies={"g": {"task": "generative", "source": {"name": "digits"}, "steps": 2, "pretrain_seed": "each"}}))


@pytest.mark.slow
@pytest.mark.parametrize("key", NO_OP_RUNNER_KEYS)
def test_settings_kept_out_of_the_identity_change_no_number(key: str, tmp_path: Path) -> None:
    """log_every, checkpoint_every and keep_weights only move host syncs and file writes: same id, same losses,
    same samples."""
    runs = {}
    values = (True, False) if key == "keep_weights" else (1, 7)
    for value in values:
        s = suite(runner={**suite()["runner"], key: value})
        run_suite(s, out=tmp_path / str(value), reports=tmp_path / "rep", device="cpu", progress=False)
        (res,) = store.list_results(tmp_path / str(value) / s["name"])
        runs[value] = (res, (tmp_path / str(value) / s["name"] / res.run_id / "samples.png").read_bytes())
    (a, png_a), (b, png_b) = (runs[v] for v in values)
    assert a.status == b.status == "completed" and a.run_id == b.run_id
    assert a.first_losses == b.first_losses and a.metrics.get("params") == b.metrics.get("params")
    assert png_a == png_b  # every sample metric is a function of these samples
    assert a.pretrain["cache_key"] == b.pretrain["cache_key"] and a.pretrain["seed"] == derive_seed(0, "pretrain")


ADAPTER = "identity_adapters_under_test"
SOURCE = textwrap.dedent(
    """
    from baselines.dummy import Dummy


    class Mine(Dummy):
        pass
    """
)


@pytest.mark.slow
def test_edited_adapter_sets_old_runs_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Edit an out-of-tree adapter and rerun: new run ids, the old runs moved to .stale/ with one line saying
    what changed, and results.csv holding only the current grid."""
    (tmp_path / f"{ADAPTER}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    s = {
        "name": "stale",
        "dataset": {"name": "digits"},
        "budget": {"steps": 5, "batch_size": 16},
        "eval": {"num_samples": 20, "metrics": ["bpd"]},
        "seeds": [0, 1],
        "adapters": {f"{ADAPTER}:Mine": {}},
        "runner": {"threads": 1},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(s))
    args = ["run", str(path), "--out", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--device", "cpu"]
    try:
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        old = sorted(p.name for p in (tmp_path / "runs" / "stale").iterdir() if p.is_dir())
        (tmp_path / f"{ADAPTER}.py").write_text(SOURCE + "\n    def extra(self):\n        return 1\n")
        fingerprint.adapter_fingerprint.cache_clear()  # a new `bench run` process would hash the file afresh
        second = CliRunner().invoke(main, args)
    finally:
        fingerprint.adapter_fingerprint.cache_clear()
        sys.modules.pop(ADAPTER, None)
    assert second.exit_code == 0, second.output
    assert f"adapter code of {ADAPTER}:Mine changed; 2 old runs moved to" in second.output, second.output
    suite_dir = tmp_path / "runs" / "stale"
    assert sorted(p.name for p in (suite_dir / ".stale").iterdir()) == old
    current = {r.run_id for r in store.list_results(suite_dir)}
    assert len(current) == 2 and current.isdisjoint(old)
    assert "old run" not in first.output  # nothing was stale the first time
    csv_ids = set((suite_dir / "results.csv").read_text().splitlines()[1:][i].split(",")[0] for i in range(2))
    assert csv_ids == current


def test_set_aside_drops_empty_leftovers_and_spares_live_runs(tmp_path: Path) -> None:
    """A run killed before it wrote anything leaves an empty folder: removed (the report would list it as
    unfinished forever). A folder a live launcher holds, on other code, is never touched; nor is a folder
    that is not a run's."""
    from bench.store.stale import set_aside

    empty, held, other = "cnn_gan-scratch-s1-5e7078ea", "vae-scratch-s0-0123abcd", "notes"
    for name in (empty, held, other):
        (tmp_path / name).mkdir()
    (tmp_path / held / "checkpoint.pt").write_bytes(b"x")
    assert set_aside(tmp_path, [], busy=lambda run_id: run_id == held) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [other, held]
    lines = set_aside(tmp_path, [])  # no longer held: an unfinished run of an earlier version, moved aside
    assert len(lines) == 1 and "unfinished or unreadable run of an earlier version" in lines[0]
    assert (tmp_path / ".stale" / held / "checkpoint.pt").is_file() and (tmp_path / other).is_dir()


def _copy_of_the_harness(tmp_path: Path) -> Path:
    import shutil

    root = Path(fingerprint.__file__).resolve().parents[1]
    copy = tmp_path / "bench"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_harness_hash_is_chosen_by_layer(tmp_path: Path) -> None:
    """Statistics, report, executors, locks and the CLI never change a trained model: editing them keeps every
    run id (a finished suite is not redone). Editing the training loop changes them; editing a metric changes
    the evaluation id instead (the kept weights are re-evaluated)."""
    copy = _copy_of_the_harness(tmp_path)
    before = fingerprint.harness_hash(copy)
    for presentation in ("stats/compare.py", "report/verdict.py", "exec/local.py", "store/locks.py", "cli.py", "api.py"):
        (copy / presentation).write_text((copy / presentation).read_text() + "\n# an edit\n")
    assert fingerprint.harness_hash(copy) == before
    for numeric in ("runner/loop.py", "suite/spec.py", "data/datasets.py", "tasks/supervised.py"):
        edited = copy / numeric
        original = edited.read_text()
        edited.write_text(original + "\n# an edit\n")
        assert fingerprint.harness_hash(copy) != before, numeric
        edited.write_text(original)
    # A metric is the evaluation id's: editing one keeps the run ids and changes the evaluation's code hash.
    metrics_before = fingerprint.harness_hash(copy, fingerprint.EVAL_PACKAGES)
    (copy / "metrics" / "fidelity.py").write_text((copy / "metrics" / "fidelity.py").read_text() + "\n# an edit\n")
    assert fingerprint.harness_hash(copy) == before and fingerprint.harness_hash(copy, fingerprint.EVAL_PACKAGES) != metrics_before


def test_every_sub_package_is_on_one_side_of_the_hash() -> None:
    root = Path(fingerprint.__file__).resolve().parents[1]
    subs = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    sides = set(fingerprint.NUMERIC_PACKAGES) | set(fingerprint.PRESENTATION_PACKAGES)
    assert subs == sides and not set(fingerprint.NUMERIC_PACKAGES) & set(fingerprint.PRESENTATION_PACKAGES)


def test_a_statistics_edit_keeps_the_run_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end through `stamp`: the run ids of a suite computed over an edited compare.py equal today's."""
    copy = _copy_of_the_harness(tmp_path)
    monkeypatch.setattr(fingerprint, "_HARNESS", copy)  # the copy, so an edit of the live tree cannot race the test
    fingerprint.harness_fingerprint.cache_clear()
    try:
        ids = [r.run_id for r in stamped(suite())]
        (copy / "stats" / "compare.py").write_text((copy / "stats" / "compare.py").read_text() + "\n# edited\n")
        fingerprint.harness_fingerprint.cache_clear()
        assert [r.run_id for r in stamped(suite())] == ids
        (copy / "runner" / "loop.py").write_text((copy / "runner" / "loop.py").read_text() + "\n# edited\n")
        fingerprint.harness_fingerprint.cache_clear()
        assert [r.run_id for r in stamped(suite())] != ids
    finally:
        fingerprint.harness_fingerprint.cache_clear()
