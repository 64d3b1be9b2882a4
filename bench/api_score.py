"""`bench score` and `bench sample`: images from any model measured like a run, and a kept model's samples.

`score_samples(SAMPLES, reference)` reads a folder of PNG files or an .npz (bench.data.samples) and measures it
against a data set's test split (or, with split="train", its training split: scoring the real test split
that way gives the real-vs-real floor) with the metric functions and the cached domain extractor that runs
use. `export_samples(RUN_DIR, OUT)` writes the exact samples a run's final evaluation measured, from its kept
weights: scoring them gives the run's own numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from bench.core.errors import BenchError

SPLITS = ("test", "train")
COPYING = "ct_domain"  # the data-copying test compares against the training split: no meaning when it is the reference


def default_metrics() -> list[str]:
    """Every sample metric that needs no downloaded weights (the standard Inception/VGG ones are asked by name)."""
    from bench.metrics.info import METRIC_INFO

    standard = {"fid", "kid", "isc", "precision", "recall"}
    return [m for m, i in METRIC_INFO.items() if not i.cost and m not in standard]


def reference_spec(reference: str) -> Any:
    """A data set name (`digits`), an inline mapping (`{name: digits, image_size: 8}`) or a folder of images."""
    from bench.data.datasets import DATASETS
    from bench.suite.schema import parse
    from bench.suite.spec import DatasetSpec

    if Path(reference).is_dir():
        if "folder" not in DATASETS:
            raise BenchError(
                "a folder reference needs the `folder` data set, which this version lacks", key="--reference", fix="pass a data set name"
            )
        block: Any = {"name": "folder", "root": reference}
    elif reference.lstrip().startswith("{"):
        try:
            block = yaml.safe_load(reference)
        except yaml.YAMLError:
            block = None
        if not isinstance(block, dict):
            raise BenchError("not a mapping", key="--reference", fix="write it like '{name: digits, image_size: 8}'")
    else:
        block = {"name": reference}
    return parse(DatasetSpec, block, "--reference")


def _as_reference(data: Any, split: str) -> Any:
    """The data with its `split` as the reference (the metrics read `test_x`); train: the full training split."""
    if split == "test":
        return data
    full = data.reference()
    return dataclasses.replace(full, test_x=full.train_x, test_y=full.train_y)


def score_samples(
    samples: str | Path,
    reference: str,
    split: str = "test",
    metrics: list[str] | None = None,
    device: str = "auto",
    cache_dir: str | Path = "runs/.cache",
    kid_subset_size: int = 1000,
) -> dict[str, Any]:
    """Measure the images at `samples` against `reference`; returns {metrics, not_applicable, n, reference,
    split, info}. Invalid input (unreadable images, an unknown metric or data set, mismatched sizes) raises
    BenchError before any metric runs."""
    from bench.core.env import pick_device
    from bench.data.datasets import load_dataset
    from bench.data.samples import read_samples
    from bench.metrics import METRICS
    from bench.runner.score import score
    from bench.suite.spec import EvalSpec

    if split not in SPLITS:
        raise BenchError(f"unknown split {split!r}", key="--split", fix="use test or train")
    names = list(metrics) if metrics else default_metrics()
    for m in names:
        METRICS.get(m, where="--metrics")
    images = read_samples(samples)
    spec = reference_spec(reference)
    data = _as_reference(load_dataset(spec, where="--reference"), split)
    measured = [m for m in names if not (split == "train" and m == COPYING)]
    ev = EvalSpec(num_samples=max(2, len(images)), metrics=measured, kid_subset_size=kid_subset_size)
    values, na, info = score(images, data, ev, pick_device(device), Path(cache_dir), str(samples))
    if len(measured) < len(names):
        na[COPYING] = "the reference is the training split; the copying test needs a held-out split (--split test)"
    order = {m: i for i, m in enumerate(names)}
    return {
        "samples": str(samples),
        "n": len(images),
        "reference": dataclasses.asdict(spec),
        "split": split,
        "metrics": dict(sorted(values.items(), key=lambda kv: order[kv[0]])),
        "not_applicable": dict(sorted(na.items(), key=lambda kv: order[kv[0]])),
        "info": info,
    }


def export_samples(run_dir: str | Path, out: str | Path, num: int | None = None, device: str = "auto") -> Path:
    """Write the samples a finished run's final evaluation measured (from its kept weights) to `out`: an .npz
    file, or else a folder of PNG files. `num`: how many (default the run's eval.num_samples)."""
    from bench.core.env import pick_device
    from bench.data.samples import write_samples
    from bench.runner.score import draw
    from bench.store import runs as store
    from bench.suite.spec import runspec_from_dict

    run_dir = Path(run_dir)
    res = store.read_result(run_dir)
    if res is None or res.status != "completed":
        raise BenchError("no completed run here", file=str(run_dir), fix="pass a run folder, runs/<suite>/<run_id>")
    try:
        images = draw(runspec_from_dict(res.spec), run_dir, pick_device(device), run_dir.parent.parent / ".cache", num)
    except (FileNotFoundError, ValueError) as err:
        raise BenchError(
            " ".join(str(err).split())[:300], file=str(run_dir), fix="rerun the suite with runner.keep_weights: true"
        ) from None
    return write_samples(images, out)


# The real-vs-real reference: a scale for "fid_domain 182". The same metrics, extractor and sample count, with
# real training images of the target in place of a model's samples, against the test split the runs are
# measured on: the floor (distances) or ceiling (precision, recall, coverage) a perfect model of this data would
# reach at this sample size. One per (data content, evaluation id), kept in the runs folder's reference.json
# so the report reads it without torch.
NOT_COPYING = "the reference's samples are training images themselves, so the copying test does not apply"


def reference_key(run: Any) -> str:
    """The data's content hash and the evaluation id: a reference is reused exactly when both are the same."""
    return f"{run.identity.get('data', '')}:{run.eval_id}"


def real_reference(run: Any, device: Any, cache_dir: Path) -> dict[str, Any]:
    """Score the first `eval.num_samples` training images of `run`'s target that are not test images (the split's
    own seeded order; the full training split, not a few-shot subset) against its test split with the run's eval
    spec. A target with no such image (a folder whose reference set is also the evaluators' training set) gets
    every metric n/a with the reason."""
    from bench.data.datasets import load_dataset
    from bench.runner.score import score

    data = load_dataset(run.dataset)
    pool = _outside(data.reference().train_x, data.test_x)
    if len(pool) < 2:  # a folder whose reference set is also what the evaluators learn from: nothing held out
        why = "no real images outside the reference set (the evaluators learn from it too), so no real-vs-real floor"
        return {
            "key": reference_key(run),
            "dataset": run.dataset.name,
            "n": 0,
            "metrics": {},
            "not_applicable": dict.fromkeys(run.eval.metrics, why),
        }
    n = min(run.eval.num_samples, len(pool))
    asked = [m for m in run.eval.metrics if m != COPYING]
    spec = dataclasses.replace(run.eval, metrics=asked, num_samples=n)
    values, na, _ = score(pool[:n], data, spec, device, cache_dir, "the real training split")
    if COPYING in run.eval.metrics:
        na[COPYING] = NOT_COPYING
    return {
        "key": reference_key(run),
        "dataset": run.dataset.name,
        "n": n,
        "metrics": {m: values[m] for m in run.eval.metrics if m in values},
        "not_applicable": {m: na[m] for m in run.eval.metrics if m in na},
    }


def _outside(pool: Any, test: Any) -> Any:
    """The images of `pool` whose pixels are not among `test`'s: a floor from the test images themselves is 0."""
    import hashlib

    seen = {hashlib.sha256(t.cpu().contiguous().numpy().tobytes()).digest() for t in test}
    keep = [i for i, t in enumerate(pool) if hashlib.sha256(t.cpu().contiguous().numpy().tobytes()).digest() not in seen]
    return pool[keep]


def write_references(runs: list[Any], suite_dir: Path, device: Any, cache_dir: Path) -> Path:
    """The reference of every distinct (data, evaluation) among `runs`; those already in the file are kept.
    Written atomically. One that cannot be computed is recorded with its reason: the runs stand without it."""
    import json

    from bench.store.files import atomic_write_text
    from bench.store.runs import REFERENCE_FILE

    path = Path(suite_dir) / REFERENCE_FILE
    try:
        have = {r["key"]: r for r in json.loads(path.read_text()).get("references", [])}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        have = {}
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        key = reference_key(run)
        if key in out:
            continue
        if key in have and "error" not in have[key]:
            out[key] = have[key]
            continue
        try:
            out[key] = real_reference(run, device, cache_dir)
        except Exception as err:  # noqa: BLE001 - a reading aid; any failure is recorded, never fatal
            out[key] = {"key": key, "dataset": run.dataset.name, "error": " ".join(str(err).split())[:300]}
    atomic_write_text(path, json.dumps({"references": list(out.values())}, indent=1, sort_keys=True))
    return path
