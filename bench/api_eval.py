"""Evaluation apart from training: the face of re-evaluation.

`bench run` asks `split_done` which finished runs were measured under another eval block (their result's
`eval_id` is not the suite's): those with kept weights are re-evaluated here (`reevaluate_runs`), in the
launcher's process, under each run's lock; those without (`runner.keep_weights: false`) are trained again.
`bench eval RUNS_DIR` (`eval_runs`) re-evaluates a finished suite folder under an eval block given on the
command line. `bench score` lives in bench/api_score.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.errors import BenchError

if TYPE_CHECKING:
    import pandas as pd

    from bench.store.result import RunResult
    from bench.suite.spec import RunSpec

Echo = Callable[[str], None]


def split_done(runs: list[RunSpec], suite_dir: Path, todo: list[RunSpec]) -> tuple[list[RunSpec], list[RunSpec]]:
    """Of the finished runs of `runs` (not in `todo`), those whose completed result has another evaluation id:
    (to re-evaluate from their kept weights, to train again because no weights were kept)."""
    from bench.runner.weights import FILE
    from bench.store import runs as store

    pending = {r.run_id for r in todo}
    reeval: list[RunSpec] = []
    retrain: list[RunSpec] = []
    for r in runs:
        if r.run_id in pending:
            continue
        res = store.read_result(Path(suite_dir) / r.run_id)
        if res is None or res.status != "completed" or res.eval_id == r.eval_id:
            continue
        (reeval if (Path(suite_dir) / r.run_id / FILE).is_file() else retrain).append(r)
    return reeval, retrain


def describe(runs: list[RunSpec], suite_dir: Path) -> str:
    """`1 metric to evaluate (ct_domain) on 12 kept models`, or '' when there is nothing to re-evaluate."""
    from bench.runner.reevaluate import plan_metrics
    from bench.store import runs as store

    if not runs:
        return ""
    names: dict[str, None] = {}
    full = 0
    for r in runs:
        old = store.read_result(Path(suite_dir) / r.run_id)
        if old is None:
            continue
        todo, incremental = plan_metrics(old, r)
        full += not incremental
        names.update(dict.fromkeys(todo))
    what = f"{len(names)} metric{'s' if len(names) != 1 else ''} to evaluate ({', '.join(names) or 'none: metrics dropped'})"
    if full:
        what = f"{what}, {full} of them afresh (eval settings or metric code changed)"
    return f"{what} on {len(runs)} kept model{'s' if len(runs) != 1 else ''}"


def reevaluate_runs(runs: list[RunSpec], suite_dir: Path, device: Any, cache_dir: Path, echo: Echo) -> list[RunResult]:
    """Re-evaluate each run's kept weights under its own (the suite's) eval block; one line per run. A run
    whose re-evaluation raises keeps its old result and is named (the suite then exits 1); the rest go on."""
    from bench.runner.reevaluate import reevaluate
    from bench.store import claims, locks

    out, t0 = [], time.perf_counter()
    for i, r in enumerate(runs, 1):
        try:
            with locks.held(claims.run_lock(suite_dir, r.run_id)):
                res = reevaluate(r, Path(suite_dir) / r.run_id, device, cache_dir)
        except Exception as err:  # a broken metric or unreadable weights: this run only
            echo(f"[eval {i}/{len(runs)}] {r.run_id}: failed — {type(err).__name__}: {' '.join(str(err).split())}"[:400])
            continue
        out.append(res)
        computed = (res.evaluations or [{}])[-1].get("computed") or ["metrics dropped"]
        echo(f"[eval {i}/{len(runs)}] {r.run_id}: {', '.join(computed)}")
    if runs:
        secs = time.perf_counter() - t0
        echo(f"re-evaluated {len(out)} of {len(runs)} runs from their kept weights in {secs:.1f}s (nothing trained for it)")
    return out


def eval_runs(
    runs_dir: str | Path,
    metrics: list[str] | None = None,
    num_samples: int | None = None,
    device: str = "auto",
    reports: str | Path = "reports",
    echo: Echo = lambda _: None,
) -> pd.DataFrame:
    """Re-evaluate every completed run of a suite folder (runs/<suite>) from its kept weights, under its own
    eval block with `metrics` and/or `num_samples` replaced; rewrite the tables and the report. Trains
    nothing. Returns the results table (`.attrs['failed']`: re-evaluations that raised)."""
    from bench.core.env import pick_device
    from bench.metrics import METRICS
    from bench.store import runs as store
    from bench.store.fingerprint import eval_fingerprint
    from bench.suite.spec import runspec_from_dict

    suite_dir = Path(runs_dir)
    results = [r for r in store.list_results(suite_dir) if r.status == "completed"] if suite_dir.is_dir() else []
    if not results:
        raise BenchError("no completed runs here", file=str(suite_dir), fix="pass the runs/<suite> folder of a suite that has run")
    for m in metrics or []:
        METRICS.get(m, where="--metrics")  # unknown: one line with a did-you-mean
    if num_samples is not None and num_samples < 2:
        raise BenchError(f"--num-samples must be >= 2, got {num_samples}", fix="pass e.g. --num-samples 1000")
    runs = []
    for res in results:
        run = runspec_from_dict(res.spec)
        ev = dataclasses.replace(
            run.eval, **({"metrics": list(metrics)} if metrics else {}), **({"num_samples": num_samples} if num_samples else {})
        )
        runs.append(dataclasses.replace(run, eval=ev, identity={**run.identity, "eval_code": eval_fingerprint()}))
    todo = [r for r, res in zip(runs, results, strict=True) if r.eval_id != res.eval_id]
    echo(
        f"{suite_dir.name}: {len(results)} completed runs; {describe(todo, suite_dir) or 'every run is evaluated under this eval block already'}"
    )
    done = reevaluate_runs(todo, suite_dir, pick_device(device), suite_dir.parent / ".cache", echo)
    from bench.report import render_report
    from bench.stats.aggregate import write_tables

    df, _ = write_tables(suite_dir)  # results.csv, summary.csv, comparisons.csv over the new numbers
    report = render_report(suite_dir, Path(reports) / suite_dir.name)["html"]
    echo(f"report: {Path(report).resolve().as_uri()}")
    df.attrs["failed"] = len(todo) - len(done)
    return df
