"""The strategy types the tasks share: what a pretraining stage returns, its "does not apply" signal, and
the static checks of a strategy block (run by `bench validate`, before any adapter exists).

They live with the tasks, so a task never imports bench.runner.pretrain (the run layer) or bench.suite.load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import ConfigError
from bench.suite.spec import StrategySpec


class StrategyNotApplicable(Exception):
    """This (strategy, adapter) pair does not apply; the message says why. Recorded as n/a, never dropped."""


@dataclass
class PretrainOutcome:
    seconds: float = 0.0  # the cost of producing the checkpoint (the original cost on a cache hit)
    cached: bool = False
    parts: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def check_strategy(name: str, spec: StrategySpec, trains: bool) -> None:
    """Static checks of a strategy block that need no adapter (run by `bench validate`). `trains`: the task
    trains on a source (its row in bench.tasks.BY_NAME has a training function)."""
    where = f"strategies.{name}"
    if spec.task == "scratch":
        if spec.source or spec.steps or spec.parts:
            raise ConfigError("task scratch takes no source, steps or parts", key=where, fix="remove them or set a task")
        return
    if trains:
        if spec.source is None:
            raise ConfigError(f"task {spec.task} needs a source data set", key=f"{where}.source", fix="add source: {name: digits}")
        if spec.steps <= 0:
            raise ConfigError(f"task {spec.task} needs steps > 0", key=f"{where}.steps", fix="add steps: 300")
    if spec.task == "external" and not (spec.path or spec.timm_model):
        raise ConfigError("task external needs path or timm_model", key=where, fix="add path: weights.safetensors")
    if spec.task == "external" and spec.path and spec.timm_model:
        raise ConfigError("task external takes path or timm_model, not both", key=where, fix="keep one of them")
    if spec.mask_ratio > 0 and spec.task != "autoencode":
        raise ConfigError(f"mask_ratio applies to task autoencode, not {spec.task}", key=f"{where}.mask_ratio", fix="remove mask_ratio")
    if spec.sha256 is not None and (len(spec.sha256) != 64 or any(c not in "0123456789abcdef" for c in spec.sha256.lower())):
        raise ConfigError("sha256 must be 64 hex digits", key=f"{where}.sha256")


__all__ = ["PretrainOutcome", "StrategyNotApplicable", "check_strategy"]
