"""Result assembly: the one place the runner builds a run's RunResult and writes it (the failure path, for
runs that raised, is `bench.exec.outcome.failed_result`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from bench.core import env
from bench.runner.state import LoopState
from bench.store import runs as store
from bench.store.result import RunResult
from bench.suite.spec import RunSpec


def assemble(
    run: RunSpec,
    family: str,
    protocol: dict[str, Any],
    device: torch.device,
    state: LoopState,
    *,
    status: str,
    error: str | None = None,
    metrics: dict[str, float] | None = None,
    not_applicable: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """The run's result. `extra`: status-specific provenance (`diverged_at`, `metric_info`)."""
    return RunResult(
        run_id=run.run_id,
        suite=run.suite,
        adapter=run.adapter,
        family=family,
        strategy=run.strategy,
        task=run.strategy_spec.task,
        seed=run.seed,
        protocol=protocol,
        spec=run.resolved(),
        env={"versions": env.versions(), "device": env.device_name(device), "git_commit": env.git_commit()},
        **(extra or {}),
        status=status,
        error=error,
        metrics=dict(metrics or {}),  # non-finite values become null (RunResult)
        not_applicable=not_applicable or {},
        first_losses=state.first_losses,
        pretrain=state.pretrain,
        timings={
            "pretrain": float(state.pretrain.get("seconds", 0.0)),
            "pretrain_cached": bool(state.pretrain.get("cached", False)),
            "train": state.train_seconds,
            "eval": state.eval_seconds,
            "extractor": state.extractor_seconds,  # the data set's one-time extractor cost, when this run paid it
            "compile": state.compile_seconds,
        },
        steps_done=state.step,
        resumed_from=state.resumed_from,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        eval_id=run.eval_id if status == "completed" else None,
    )


def write(run_dir: Path, result: RunResult, history: list[dict[str, Any]], checkpoint: Path) -> None:
    """history.csv, then result.json, written last and atomically (its presence means the run is done);
    then the checkpoint goes, as nothing is left to resume."""
    store.write_history(run_dir / "history.csv", history)
    store.write_result(run_dir, result)
    checkpoint.unlink(missing_ok=True)
