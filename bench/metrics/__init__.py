"""The metric registry. It fits on one screen: name → Metric(direction, families, function).

Metric functions are pure stages over an `EvalContext`, which computes shared inputs (samples, features,
class predictions) once and caches them. A metric that does not apply raises `NotApplicable(reason)`, and
the result records the reason instead of a number.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from bench.metrics.context import EvalContext, NotApplicable
from bench.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    fn: Callable[[EvalContext], float] | None  # None: filled in by the runner (cost metrics)
    families: tuple[str, ...] | None = None  # None: every family
    description: str = ""
    periodic: bool = True  # cheap enough to compute at every periodic evaluation
    unit: str = ""
    flag_below: float | None = None  # the report flags a run whose value falls below this (e.g. data copying)


def _load() -> None:
    for mod in ("cost", "likelihood", "fidelity", "modes", "standard"):
        importlib.import_module(f"bench.metrics.{mod}")


METRICS: Registry[Metric] = Registry("metric", _load)


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    families=None,
    description: str = "",
    periodic: bool = True,
    unit: str = "",
    flag_below: float | None = None,
):
    """Decorator for a metric function `fn(ctx) -> float`. `flag_below`: a threshold under which the report's
    verdict flags the run (e.g. a data-copying statistic), beside the numbers."""

    def deco(fn):
        METRICS.add(
            name,
            Metric(
                name,
                higher_is_better,
                fn,
                tuple(families) if families else None,
                description or (fn.__doc__ or "").strip().split("\n")[0],
                periodic,
                unit,
                flag_below,
            ),
        )
        return fn

    return deco


def evaluate(names: list[str], ctx: EvalContext) -> tuple[dict[str, float], dict[str, str]]:
    """Compute `names` on `ctx`. Returns (values, not_applicable reasons). Exceptions other than
    NotApplicable propagate: a broken metric is a failed run, not a silently missing number."""
    values: dict[str, float] = {}
    na: dict[str, str] = {}
    for name in names:
        metric = METRICS.get(name)
        if metric.fn is None:
            continue
        if metric.families is not None and ctx.family not in metric.families:
            na[name] = f"not defined for {ctx.family} models (applies to: {', '.join(metric.families)})"
            continue
        try:
            values[name] = float(metric.fn(ctx))
        except NotApplicable as why:
            na[name] = str(why)
    return values, na


__all__ = ["METRICS", "Metric", "EvalContext", "NotApplicable", "register_metric", "evaluate"]
