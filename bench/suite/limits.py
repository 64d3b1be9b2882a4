"""Stated ceilings on the resource keys of a suite, checked at validation time.

Without them `eval.num_samples: 10**12` or `budget.steps: 2**70` validate, then grow memory until the
machine swaps or run without end. Each ceiling is far above anything the bundled suites or the papers
they follow use (FID is conventionally computed on 50k samples). A suite that really needs more says so
on purpose, in the environment, so a typo never does:

    BENCH_LIMITS="steps=50000000,num_samples=1000000" bench run big.yaml
    BENCH_LIMITS=off bench run huge.yaml        # no ceilings at all
"""

from __future__ import annotations

import math
import os
from typing import Any

from bench.core.errors import ConfigError

ENV = "BENCH_LIMITS"
CEILINGS: dict[str, int] = {
    "steps": 10_000_000,  # budget.steps and every strategy's steps
    "batch_size": 65_536,  # budget, eval and strategy batch sizes
    "num_samples": 200_000,  # eval.num_samples (every run holds them in memory)
    "kid_subset_size": 200_000,
    "seeds": 10_000,  # entries in seeds
    "runs": 100_000,  # adapters × strategies × seeds
}


def ceilings(env: str | None = None) -> dict[str, int]:
    """The ceilings in force: CEILINGS, overridden by $BENCH_LIMITS ("key=value,...", or "off")."""
    text = (os.environ.get(ENV, "") if env is None else env).strip()
    if text.lower() in ("off", "none", "0"):
        return {}
    out = dict(CEILINGS)
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = item.partition("=")
        key = key.strip()
        try:
            number = int(float(value))
        except (ValueError, OverflowError):
            number = -1
        if key not in CEILINGS or number < 1:
            raise ConfigError(
                f"${ENV}: cannot read {item[:60]!r}", fix=f"use key=value pairs with keys {', '.join(CEILINGS)}, or {ENV}=off"
            )
        out[key] = number
    return out


def _check(limits: dict[str, int], kind: str, key: str, value: Any) -> None:
    ceiling = limits.get(kind)
    if ceiling is not None and isinstance(value, int) and value > ceiling:
        digits = len(str(value))
        shown = f"{value:,}" if digits <= 18 else f"a {digits}-digit number"
        raise ConfigError(
            f"{shown} is above the ceiling of {ceiling:,}", key=key, fix=f"lower it, or raise the ceiling on purpose: {ENV}='{kind}=N'"
        )


def check_suite(suite: Any) -> None:
    """Raise ConfigError (naming the key and how to lift the ceiling) when a resource key passes its ceiling."""
    limits = ceilings()
    if not limits:
        return
    _check(limits, "steps", "budget.steps", suite.budget.steps)
    _check(limits, "batch_size", "budget.batch_size", suite.budget.batch_size)
    _check(limits, "num_samples", "eval.num_samples", suite.eval.num_samples)
    _check(limits, "batch_size", "eval.batch_size", suite.eval.batch_size)
    _check(limits, "kid_subset_size", "eval.kid_subset_size", suite.eval.kid_subset_size)
    for name, strat in suite.strategies.items():
        _check(limits, "steps", f"strategies.{name}.steps", strat.steps)
        _check(limits, "batch_size", f"strategies.{name}.batch_size", strat.batch_size)
    _check(limits, "seeds", "seeds", len(suite.seeds))
    # A sweep (bench/sweep.py): every swept budget value meets the same ceiling, and the grid grows by its points.
    sweep = getattr(suite, "sweep", {}) or {}
    for path in ("budget.steps", "budget.batch_size"):
        for i, v in enumerate(sweep.get(path, [])):
            _check(limits, path.split(".")[1], f"{path}[{i}]", v)
    points = math.prod(len(v) for v in sweep.values())
    what = "adapters × strategies × seeds" + (" × swept values" if sweep else "")
    _check(limits, "runs", what, len(suite.adapters) * len(suite.strategies) * len(suite.seeds) * points)


__all__ = ["CEILINGS", "ENV", "ceilings", "check_suite"]
