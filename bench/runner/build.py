"""Building the adapter of one run: the one place an adapter is constructed for training (the runner, the
tests and the benchmarks all come here), so every adapter gets the run's speed switches explicitly."""

from __future__ import annotations

import torch

from bench.adapter.base import Adapter, get_adapter
from bench.data.datasets import ImageData
from bench.runner.fastpath import FastPath, apply_fast_path
from bench.suite.schema import parse
from bench.suite.spec import RunSpec


def build_adapter(run: RunSpec, data: ImageData, device: torch.device, fast: FastPath) -> Adapter:
    """The run's adapter with its validated config, on `device`, with `fast` applied (layout, optimiser
    kernels, TF32). The global RNG decides the initial weights: seed it first, as the runner does."""
    cls = get_adapter(run.adapter, where=f"adapters.{run.adapter}")
    config = parse(cls.Config, run.adapter_config, f"adapters.{run.adapter}")
    adapter = cls(config, data.info, device)
    apply_fast_path(fast, adapter, device)
    return adapter
