"""Pretraining strategies: tasks that initialise an adapter's parts before training.

A strategy is `{task, source, parts, steps, freeze}` applied to the adapter's own part modules, so shapes
always match. This module holds the entry points the runner calls; the tasks live in bench/tasks/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.adapter import Adapter
    from bench.suite import RunSpec, StrategySpec


class StrategyNotApplicable(Exception):
    """This (strategy, adapter) pair does not apply; the message says why. Recorded as n/a, never dropped."""


@dataclass
class PretrainOutcome:
    seconds: float = 0.0  # the cost of producing the checkpoint (the original cost on a cache hit)
    cached: bool = False
    parts: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def check_strategy(name: str, spec: StrategySpec) -> None:
    """Static checks of a strategy block that need no adapter (run by `bench validate`)."""
    where = f"strategies.{name}"
    if spec.task == "scratch":
        if spec.source or spec.steps or spec.parts:
            raise ConfigError("task scratch takes no source, steps or parts", key=where, fix="remove them or set a task")
        return
    if spec.task in ("supervised", "autoencode", "autoregressive", "generative"):
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


def pretrain(adapter: Adapter, run: RunSpec, device: torch.device, cache_dir: Path) -> PretrainOutcome:
    """Apply `run.strategy_spec` to `adapter` in place. Raises StrategyNotApplicable when it does not apply."""
    spec = run.strategy_spec
    if spec.task == "scratch":
        return PretrainOutcome()
    from bench.tasks import run_task

    return run_task(adapter, run, device, Path(cache_dir))


def apply_freeze(adapter: Adapter, freeze: dict[str, int]) -> list[str]:
    """Freeze the first N blocks of each named part (FreezeD). Returns the frozen parameter names."""
    parts = adapter.parts()
    frozen: list[str] = []
    for name, n in freeze.items():
        if name not in parts:
            raise StrategyNotApplicable(f"freeze: {adapter.key} has no part '{name}' (parts: {', '.join(parts)})")
        blocks = parts[name].blocks
        if n > len(blocks):
            raise StrategyNotApplicable(f"freeze: part '{name}' has {len(blocks)} blocks, cannot freeze {n}")
        for i, block in enumerate(blocks[:n]):
            for pname, p in block.named_parameters():
                p.requires_grad_(False)
                frozen.append(f"{name}.blocks[{i}].{pname}")
    return frozen
