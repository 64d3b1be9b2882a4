"""Cost metrics. The runner measures them (timing and memory are properties of the run, not of samples);
they are registered here so that reports know their direction and units.

`COST_METRICS` is the one definition of the cost metrics: each name with its direction, unit, description
and how its value follows from what the runner measured (`RunCost`). The runner's numbers come from
`cost_values`, so a name cannot be registered without being measured, or measured without being registered.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.metrics import METRICS, Metric


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


@dataclass(frozen=True)
class CostMetric:
    higher_is_better: bool
    unit: str
    description: str
    value: Callable[[RunCost], float]


def _images_per_second(c: RunCost) -> float:
    return c.timed_images / c.train_seconds if c.train_seconds > 0 else math.nan


COST_METRICS: dict[str, CostMetric] = {
    "pretrain_seconds": CostMetric(
        False, "s", "wall time of the pretraining stage (original cost when cached)", lambda c: c.pretrain_seconds
    ),
    "train_seconds": CostMetric(False, "s", "wall time of the training loop, evaluation excluded", lambda c: c.train_seconds),
    "eval_seconds": CostMetric(False, "s", "wall time of all evaluations", lambda c: c.eval_seconds),
    "total_seconds": CostMetric(
        False,
        "s",
        "pretrain + train seconds: the compute a result cost",
        lambda c: c.pretrain_seconds + c.train_seconds + c.compile_seconds,
    ),
    "images_per_second": CostMetric(True, "img/s", "training images processed per second", _images_per_second),
    "peak_memory_mb": CostMetric(False, "MB", "peak CPU RSS, or CUDA max allocated on GPU", lambda c: c.peak_memory_mb),
    "params": CostMetric(False, "", "trainable and frozen parameters of all the adapter's networks", lambda c: float(c.params)),
}


def cost_values(cost: RunCost) -> dict[str, float]:
    """Every cost metric of a run, by name, in COST_METRICS order."""
    return {name: m.value(cost) for name, m in COST_METRICS.items()}


for _name, _m in COST_METRICS.items():
    METRICS.add(_name, Metric(_name, _m.higher_is_better, None, None, _m.description, True, _m.unit))
