"""Pretraining strategies: tasks that initialise an adapter's parts before training.

A strategy is `{task, source, parts, steps, freeze}` applied to the adapter's own part modules, so shapes
always match. This module holds the entry points the runner calls; the tasks, and the strategy types they
share (StrategyNotApplicable, PretrainOutcome, check_strategy, re-exported here), live in bench/tasks/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench.tasks.strategy import PretrainOutcome, StrategyNotApplicable, check_strategy

if TYPE_CHECKING:
    from bench.adapter.base import Adapter
    from bench.suite.spec import RunSpec


def pretrain(adapter: Adapter, run: RunSpec, device: torch.device, cache_dir: Path, *, fused_optim: bool = False) -> PretrainOutcome:
    """Apply `run.strategy_spec` to `adapter` in place. Raises StrategyNotApplicable when it does not apply.
    `fused_optim`: the run's fused-Adam choice (FastPath.fused_optim), given to the fresh copy a task trains."""
    spec = run.strategy_spec
    if spec.task == "scratch":
        return PretrainOutcome()
    from bench.tasks import run_task

    return run_task(adapter, run, device, Path(cache_dir), fused_optim=fused_optim)


# The parameters DiffFit (Xie et al. 2023, https://arxiv.org/abs/2304.06648) leaves trainable: biases, the
# affine weights of normalisation layers, and scale factors (a parameter named gamma or scale, e.g. the
# per-block γ that ddpm initialises to 1). Everything else in the part stays fixed.
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_SCALE_NAMES = ("gamma", "scale")


def difffit_trainable(module: nn.Module) -> set[str]:
    """Names (as module.named_parameters gives them) of the parameters DiffFit trains."""
    keep = set()
    for mname, mod in module.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            if pname == "bias" or pname in _SCALE_NAMES or isinstance(mod, _NORMS):
                keep.add(f"{mname}.{pname}" if mname else pname)
    return keep


def apply_freeze(adapter: Adapter, freeze: dict[str, int | str]) -> list[str]:
    """Freeze the first N blocks of each named part (FreezeD), or, for `difffit`, every parameter of the part
    but its biases, norms and scales. Returns the frozen parameter names."""
    parts = adapter.parts()
    frozen: list[str] = []
    for name, n in freeze.items():
        if name not in parts:
            raise StrategyNotApplicable(f"freeze: {adapter.key} has no part '{name}' (parts: {', '.join(parts) or 'none'})")
        if n == "difffit":
            keep = difffit_trainable(parts[name].module)
            if not keep:
                raise StrategyNotApplicable(f"freeze: part '{name}' has no bias, norm or scale parameter for difffit to train")
            for pname, p in parts[name].module.named_parameters():
                if pname not in keep:
                    p.requires_grad_(False)
                    frozen.append(f"{name}.{pname}")
            continue
        blocks = parts[name].blocks
        if n > len(blocks):
            raise StrategyNotApplicable(f"freeze: part '{name}' has {len(blocks)} blocks, cannot freeze {n}")
        for i, block in enumerate(blocks[:n]):
            for pname, p in block.named_parameters():
                p.requires_grad_(False)
                frozen.append(f"{name}.blocks[{i}].{pname}")
    return frozen


__all__ = ["PretrainOutcome", "StrategyNotApplicable", "apply_freeze", "check_strategy", "pretrain"]
