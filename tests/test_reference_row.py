"""The real-vs-real reference: real training images scored like a run's samples, shown as the table's first row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import bench
from bench import api_score


def test_reference_is_measured_once_and_shown_first(tmp_path: Path, tiny_suite: dict, monkeypatch) -> None:
    suite = {**tiny_suite, "dataset": {"name": "digits", "classes": [5, 6, 7, 8, 9], "limit": 50}}
    suite["eval"] = {"num_samples": 100, "metrics": ["fid_domain", "ct_domain", "bpd"]}
    df = bench.run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "rep", progress=False)
    ref = json.loads((tmp_path / "runs" / "tiny" / "reference.json").read_text())["references"]
    assert len(ref) == 1 and ref[0]["n"] == 100 and ref[0]["dataset"] == "digits"
    floor = ref[0]["metrics"]["fid_domain"]
    # Real images of the same digits sit far closer to the test split than the dummy model's samples do.
    assert math.isfinite(floor) and 0 < floor < float(df["fid_domain"].iloc[0]) / 3
    assert ref[0]["not_applicable"]["ct_domain"] == api_score.NOT_COPYING
    assert "log-likelihood" in ref[0]["not_applicable"]["bpd"]
    html = (tmp_path / "rep" / "tiny" / "index.html").read_text()
    row = html.split('<tbody class="reference">', 1)[1].split("</tbody>", 1)[0]
    assert "real data" in row and "100 training images vs test split" in row and ">n/a<" in row

    def refuse(*_a, **_k):
        raise AssertionError("recomputed although data and evaluation are unchanged")

    monkeypatch.setattr(api_score, "real_reference", refuse)  # a rerun that trains nothing reuses the file
    bench.run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "rep", progress=False)
    again = json.loads((tmp_path / "runs" / "tiny" / "reference.json").read_text())["references"]
    assert again == ref
    # Another eval block re-evaluates the kept weights and replaces the reference by that evaluation's.
    monkeypatch.undo()
    more = {**suite, "eval": {**suite["eval"], "metrics": ["fid_domain", "kid_domain"]}}
    bench.run_suite(more, out=tmp_path / "runs", reports=tmp_path / "rep", progress=False)
    (new,) = json.loads((tmp_path / "runs" / "tiny" / "reference.json").read_text())["references"]  # the current one only
    assert new["key"] != ref[0]["key"] and new["key"].split(":")[0] == ref[0]["key"].split(":")[0]  # same data
    assert new["metrics"]["fid_domain"] == floor and math.isfinite(new["metrics"]["kid_domain"])


def test_a_reference_that_fails_is_recorded_not_fatal(tmp_path: Path, tiny_suite: dict, monkeypatch) -> None:
    def broken(*_a, **_k):
        raise RuntimeError("no extractor\nhere")

    monkeypatch.setattr(api_score, "real_reference", broken)
    df = bench.run_suite(tiny_suite, out=tmp_path / "runs", reports=tmp_path / "rep", progress=False)
    assert (df["status"] == "completed").all()
    (ref,) = json.loads((tmp_path / "runs" / "tiny" / "reference.json").read_text())["references"]
    assert ref["error"] == "no extractor here"
    assert "not computed: no extractor here" in (tmp_path / "rep" / "tiny" / "index.html").read_text()


def test_no_floor_from_the_reference_set_itself(tmp_path: Path, tiny_suite: dict) -> None:
    """A few-shot folder whose reference set is also what the evaluators learn from holds no real image outside
    the test split: the floor would be the set against itself (about 0), so it is n/a with the reason."""
    from test_data_folder import _flat

    few, full = _flat(tmp_path / "few", 8), _flat(tmp_path / "full", 30, start=100)
    suite = {**tiny_suite, "dataset": {"name": "folder", "root": str(few), "reference": str(full)}}
    bench.run_suite(suite, out=tmp_path / "runs", reports=tmp_path / "rep", progress=False)
    (ref,) = json.loads((tmp_path / "runs" / "tiny" / "reference.json").read_text())["references"]
    assert ref["n"] == 0 and ref["metrics"] == {}
    assert "no real images outside the reference set" in ref["not_applicable"]["bpd"]


def test_outside_drops_the_test_images():
    import torch

    pool = torch.arange(24.0).reshape(6, 1, 2, 2)
    kept = api_score._outside(pool, pool[[1, 4]])
    assert kept.shape[0] == 4 and not any(torch.equal(k, pool[1]) or torch.equal(k, pool[4]) for k in kept)
