"""Evaluation during and after training, and the run's cost metrics.

Every evaluation runs inside `env.preserved_rng()`, so a training trajectory never depends on how often it
is evaluated, and its wall time goes to `eval_seconds`, never to training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.adapter.base import Adapter
from bench.core import env
from bench.data.datasets import ImageData
from bench.metrics import METRICS, EvalContext, evaluate
from bench.metrics.cost import RunCost, cost_values
from bench.runner.loop import sync
from bench.runner.state import LoopState
from bench.suite.spec import RunSpec


@dataclass
class FinalEval:
    metrics: dict[str, float]  # every requested metric that applies, then the cost metrics
    not_applicable: dict[str, str]  # metric → the reason it has no number
    info: dict[str, Any]  # provenance the metrics added (e.g. the domain classifier's description)
    samples: torch.Tensor  # the first 64 evaluation samples, uint8 on the CPU, for samples.png


class Evaluator:
    """The evaluations of one run: periodic ones into the history, the final one into the result."""

    def __init__(self, run: RunSpec, device: torch.device, cache_dir: Path):
        self.run, self.device, self.cache_dir = run, torch.device(device), Path(cache_dir)

    def _context(self, adapter: Adapter, data: ImageData) -> EvalContext:
        return EvalContext(adapter, data, self.run.eval, self.device, self.cache_dir, self.run.seed)

    def periodic_names(self) -> list[str]:
        """`eval.history_metrics`, or else every requested metric cheap enough to repeat during training."""
        ev = self.run.eval
        return ev.history_metrics if ev.history_metrics is not None else [m for m in ev.metrics if METRICS.get(m).periodic]

    def _evaluate(self, names: list[str], ctx: EvalContext, state: LoopState) -> tuple[dict[str, float], dict[str, str]]:
        """`names` on `ctx`, timed: the data set's one-time extractor costs apart from this evaluation's."""
        t = time.perf_counter()
        with env.preserved_rng():
            values, na = evaluate(names, ctx)
        sync(self.device)
        state.extractor_seconds += ctx.setup_seconds
        state.eval_seconds += time.perf_counter() - t - ctx.setup_seconds
        return values, na

    def periodic(self, adapter: Adapter, data: ImageData, state: LoopState) -> None:
        values, _ = self._evaluate(self.periodic_names(), self._context(adapter, data), state)
        state.log(values)

    def final(self, adapter: Adapter, data: ImageData, state: LoopState, memory: env.PeakMemory) -> FinalEval:
        ctx = self._context(adapter, data)
        values, na = self._evaluate(self.run.eval.metrics, ctx, state)
        samples = ctx.samples[:64]
        state.log(values)
        values.update(cost_values(run_cost(self.run, state, memory, adapter)))
        return FinalEval(values, na, ctx.info, samples)

    def pairs(self, adapter: Adapter, data: ImageData):
        """A stylize run's fixed evaluation pairs (the ones its final samples were made from)."""
        return self._context(adapter, data).pairs

    def protocol(self, data: ImageData) -> dict[str, Any]:
        """The evaluation protocol, described once, when the run ends: after a final evaluation the domain
        classifier exists, so the description names its test accuracy."""
        from bench.metrics.protocol import describe

        return describe(self.run.eval, data, self.cache_dir)


def run_cost(run: RunSpec, state: LoopState, memory: env.PeakMemory, adapter: Adapter) -> RunCost:
    b = run.budget
    return RunCost(
        pretrain_seconds=float(state.pretrain.get("seconds", 0.0)),
        train_seconds=state.train_seconds,
        eval_seconds=state.eval_seconds,
        compile_seconds=state.compile_seconds,
        timed_images=(b.steps - state.compile_steps) * b.batch_size + state.extra_images,  # compile steps are timed apart
        peak_memory_mb=memory.peak_mb(),
        params=adapter.num_params(),
        weights_bytes=state.weights_bytes,
    )
