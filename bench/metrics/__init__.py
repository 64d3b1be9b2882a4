"""The metric registry. It fits on one screen: name → Metric(info, function).

What a metric is (direction, families, periodic flag, unit) lives in `bench.metrics.info`, a table that
needs no torch; this registry pairs each row with its implementation. Metric functions are pure stages over
an `EvalContext`, which computes shared inputs (samples, features, class predictions) once and caches them.
A metric that does not apply raises `NotApplicable(reason)`, and the result records the reason instead of
a number.

Importing this package stays light (no torch): the context and the metric modules load on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.core.errors import ConfigError
from bench.core.registry import Registry
from bench.metrics.info import METRIC_INFO, MetricInfo

# Conditional families (bench.adapter.base.CONDITIONAL_FAMILIES, named here so this package stays torch-free):
# their outputs depend on given inputs, so a metric of unconditional samples does not apply to them.
CONDITIONAL = ("stylize",)

if TYPE_CHECKING:
    from bench.metrics.context import EvalContext, NotApplicable  # noqa: F401


@dataclass(frozen=True)
class Metric:
    info: MetricInfo
    fn: Callable[[EvalContext], float] | None  # None: filled in by the runner (cost metrics)

    # The table's fields, read through the registry entry by the runner, the suite check and `bench list`.
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def higher_is_better(self) -> bool | None:
        return self.info.higher_is_better

    @property
    def families(self) -> tuple[str, ...] | None:
        return self.info.families

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def periodic(self) -> bool:
        return self.info.periodic

    @property
    def unit(self) -> str:
        return self.info.unit

    @property
    def flag_below(self) -> float | None:
        return self.info.flag_below


def _load() -> None:
    # Every module of this package is imported, so a metric is registered where it is defined and nowhere
    # else: there is no list of metric modules to forget a new one in.
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


METRICS: Registry[Metric] = Registry("metric", _load)


def _info(name: str) -> MetricInfo:
    if name not in METRIC_INFO:
        raise ConfigError(
            f"metric {name!r} has no entry in the metric table",
            key=name,
            fix="add its MetricInfo (direction, description, families) to bench/metrics/info.py",
        )
    return METRIC_INFO[name]


def register_metric(name: str):
    """Decorator for a metric function `fn(ctx) -> float`, registered under its row in the metric table."""
    info = _info(name)

    def deco(fn):
        METRICS.add(name, Metric(info, fn))
        return fn

    return deco


def register_cost_metric(name: str) -> None:
    """A metric the runner measures itself: registered so suites may name it and reports know it."""
    METRICS.add(name, Metric(_info(name), None))


def evaluate(names: list[str], ctx: EvalContext) -> tuple[dict[str, float], dict[str, str]]:
    """Compute `names` on `ctx`. Returns (values, not_applicable reasons). Exceptions other than
    NotApplicable propagate: a broken metric is a failed run, not a silently missing number."""
    from bench.metrics.context import NotApplicable

    values: dict[str, float] = {}
    na: dict[str, str] = {}
    for name in names:
        metric = METRICS.get(name)
        if metric.fn is None:
            continue
        if metric.families is not None and ctx.family not in metric.families:
            na[name] = f"not defined for {ctx.family} models (applies to: {', '.join(metric.families)})"
            continue
        if metric.families is None and ctx.family in CONDITIONAL and not metric.info.cost:
            na[name] = (
                f"not defined for {ctx.family} models: it scores unconditional samples against the target; "
                "a stylize model is scored by content_acc, content_ssim, style_fid, style_stats and style_diversity"
            )
            continue
        try:
            values[name] = float(metric.fn(ctx))
        except NotApplicable as why:
            na[name] = str(why)
    return values, na


def __getattr__(name: str) -> Any:
    # EvalContext and NotApplicable live with torch in bench.metrics.context; load it only when asked.
    if name in ("EvalContext", "NotApplicable"):
        from bench.metrics import context

        return getattr(context, name)
    raise AttributeError(f"module 'bench.metrics' has no attribute {name!r}")


__all__ = ["METRICS", "Metric", "MetricInfo", "EvalContext", "NotApplicable", "register_metric", "evaluate"]
