"""Re-evaluation: a finished run's kept weights measured under another eval block, with nothing trained.

The run id covers training and the evaluation id covers the eval block (bench.suite.spec.eval_fields). When
only metrics were added, only those are computed: the samples are a function of the weights and the run seed
alone (EvalContext draws them from their own generator), so the numbers already in result.json stay valid,
and an added metric is the number the run would have had. When anything else changed (num_samples, the
KID subset, the metrics' code, the protocol), every requested metric is computed afresh.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from bench.core import env, heap
from bench.data.datasets import load_dataset
from bench.data.style import with_style
from bench.metrics import EvalContext, evaluate
from bench.metrics.info import COST_METRICS
from bench.runner import weights
from bench.runner.build import build_adapter
from bench.runner.fastpath import fast_path
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.schema import to_dict
from bench.suite.spec import RunSpec, eval_fields


def _fields_of(spec: dict[str, Any]) -> dict[str, Any]:
    return eval_fields(spec.get("eval") or {}, spec.get("identity") or {}, str(spec.get("protocol_version")))


def plan_metrics(old: RunResult, run: RunSpec) -> tuple[list[str], bool]:
    """(the metrics to compute, whether the old result's metric values stay valid)."""
    before = _fields_of(old.spec)
    after = eval_fields(run.eval, run.identity, run.protocol_version)
    if {k: v for k, v in before.items() if k != "metrics"} == {k: v for k, v in after.items() if k != "metrics"}:
        have = set(old.metrics) | set(old.not_applicable)
        return [m for m in run.eval.metrics if m not in have], True
    return list(run.eval.metrics), False


def reevaluate(run: RunSpec, run_dir: Path, device: torch.device | str, cache_dir: Path) -> RunResult:
    """Measure `run`'s kept weights under `run.eval`, rewrite result.json (atomically) and return it.
    The run must be completed with its weights kept (FileNotFoundError otherwise)."""
    run_dir = Path(run_dir)
    old = store.read_result(run_dir)
    if old is None or old.status != "completed":
        raise FileNotFoundError(f"{run_dir}: no completed result to re-evaluate")
    if old.eval_id == run.eval_id:  # another launcher re-evaluated it while this one waited for its lock
        return old
    t0 = time.perf_counter()
    names, keep_old = plan_metrics(old, run)
    values: dict[str, float] = {}
    na: dict[str, str] = {}
    info: dict[str, Any] = {}
    protocol = old.protocol
    if names:
        device = torch.device(device)
        env.configure_threads(run.runner.threads)
        heap.keep_freed_memory()  # freed tensors reused, not faulted in again (core/heap.py)
        data = with_style(load_dataset(run.dataset), run.style).to(device)
        adapter = build_adapter(run, data, device, fast_path(run, device))
        weights.load(run_dir, adapter)
        ctx = EvalContext(adapter, data, run.eval, device, cache_dir, run.seed)
        with env.preserved_rng():
            values, na = evaluate(names, ctx)
        info = ctx.info
        from bench.metrics.protocol import describe

        protocol = describe(run.eval, data, cache_dir)
    wanted = list(run.eval.metrics)
    kept = {k: v for k, v in old.metrics.items() if keep_old and k in wanted}
    metrics = {m: {**kept, **values}[m] for m in wanted if m in kept or m in values}
    metrics.update({k: v for k, v in old.metrics.items() if k in COST_METRICS})  # the training run's cost stays
    reasons = {**(old.not_applicable if keep_old else {}), **na}
    not_applicable = {m: r for m, r in reasons.items() if m in wanted and m not in metrics}
    spec = dict(old.spec)
    spec["eval"] = to_dict(run.eval)
    spec["protocol_version"] = run.protocol_version
    spec["identity"] = {**(old.spec.get("identity") or {}), **{k: v for k, v in run.identity.items() if k == "eval_code"}}
    entry = {
        "eval_id": run.eval_id,
        "computed": names,
        "seconds": round(time.perf_counter() - t0, 3),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    res = dataclasses.replace(
        old,
        metrics=metrics,
        not_applicable=not_applicable,
        metric_info={**(old.metric_info or {}), **info},
        protocol=protocol,
        spec=spec,
        eval_id=run.eval_id,
        evaluations=[*(old.evaluations or []), entry],
    )
    store.write_result(run_dir, res)
    return res
