"""Cost metrics. The runner measures them (timing and memory are properties of the run, not of samples);
they are registered here so that suites may name them and reports know their direction and units.

Their names, directions and units are rows of the torch-free table `bench.metrics.info` (the report reads
it without torch). `VALUES` says how each value follows from what the runner measured (`RunCost`); the
runner's numbers come from `cost_values`, and the import-time check below keeps the two in step, so a
name cannot be registered without being measured, or measured without being registered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.metrics import register_cost_metric
from bench.metrics.info import COST_METRICS


@dataclass(frozen=True)
class RunCost:
    """What the runner measured about one run."""

    pretrain_seconds: float  # the pretraining stage's original cost, also when its checkpoint came from the cache
    train_seconds: float  # the training loop, evaluations and compile steps excluded
    eval_seconds: float
    compile_seconds: float
    timed_images: int  # training images processed in the steps counted by train_seconds
    peak_memory_mb: float
    params: int
    weights_bytes: int  # the final weights as a safetensors file, kept or not (runner.keep_weights)


def _images_per_second(c: RunCost) -> float:
    return c.timed_images / c.train_seconds if c.train_seconds > 0 else math.nan


VALUES: dict[str, Callable[[RunCost], float]] = {
    "pretrain_seconds": lambda c: c.pretrain_seconds,
    "train_seconds": lambda c: c.train_seconds,
    "eval_seconds": lambda c: c.eval_seconds,
    "total_seconds": lambda c: c.pretrain_seconds + c.train_seconds + c.compile_seconds,
    "images_per_second": _images_per_second,
    "peak_memory_mb": lambda c: c.peak_memory_mb,
    "params": lambda c: float(c.params),
    "weights_bytes": lambda c: float(c.weights_bytes),
}
if set(VALUES) != set(COST_METRICS):  # a programming error, caught on import by every test
    raise RuntimeError(f"cost metrics out of step: table {sorted(COST_METRICS)} vs values {sorted(VALUES)}")


def cost_values(cost: RunCost) -> dict[str, float]:
    """Every cost metric of a run, by name, in the table's order."""
    return {name: VALUES[name](cost) for name in COST_METRICS}


for _name in COST_METRICS:
    register_cost_metric(_name)
