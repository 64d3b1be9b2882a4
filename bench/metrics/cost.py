"""Cost metrics. The runner measures them (timing and memory are properties of the run, not of samples);
they are registered here so that suites may name them and reports know their direction and units
(bench.metrics.info holds their rows)."""

from __future__ import annotations

from bench.metrics import register_cost_metric
from bench.metrics.info import COST_METRICS

for _name in COST_METRICS:
    register_cost_metric(_name)
