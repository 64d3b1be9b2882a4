"""Scoring images from elsewhere, and drawing a kept model's evaluation samples.

`score` measures a tensor of images (a released model's samples, a real split) with the same metric functions
and the same domain extractor a run's final evaluation uses, so the numbers sit in one table. Metrics that
need the model itself (a likelihood) are n/a, with the reason. `draw` gives the exact samples a run's final
evaluation measured: the kept weights, the run's seed, the same generator and chunks; `score` of those
equals the run's own numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.core import env, heap
from bench.core.errors import BenchError
from bench.data.datasets import ImageData, load_dataset
from bench.data.style import with_style
from bench.metrics import METRICS, EvalContext, NotApplicable, evaluate
from bench.runner import weights
from bench.runner.build import build_adapter
from bench.runner.fastpath import fast_path
from bench.suite.spec import EvalSpec, RunSpec

NO_MODEL = "needs the model (its log-likelihood), not only its samples"


class _NoModel:
    """Stands where a context expects an adapter: images only, no family of model, nothing to sample."""

    family = "samples"

    def train(self, mode: bool = True) -> None:
        pass


class SampleContext(EvalContext):
    """An EvalContext over given images: nothing is drawn, so a metric asking for more images is n/a."""

    def __init__(self, samples: torch.Tensor, data: ImageData, spec: EvalSpec, device: torch.device, cache_dir: Path, source: str):
        super().__init__(_NoModel(), data, spec, device, cache_dir, seed=0, num_samples=len(samples))  # type: ignore[arg-type]
        self.__dict__["samples"] = samples.cpu()  # the cached_property, filled
        self.source = source

    def _draw(self, n: int) -> torch.Tensor:
        raise NotApplicable(f"needs {n} samples; {self.source} holds {self.num_samples}")


def score(
    samples: torch.Tensor, data: ImageData, spec: EvalSpec, device: torch.device, cache_dir: Path, source: str
) -> tuple[dict[str, float], dict[str, str], dict[str, Any]]:
    """(values, not-applicable reasons, provenance) of `spec.metrics` on `samples` against `data`'s test split."""
    want = tuple(data.train_x.shape[1:])
    if tuple(samples.shape[1:]) != want:
        shape = "×".join(map(str, samples.shape[1:]))
        raise BenchError(
            f"samples are {shape} (C×H×W), the reference is {'×'.join(map(str, want))}",
            file=source,
            fix="give the reference the samples' size and channels, e.g. --reference '{name: digits, image_size: 8}'",
        )
    model_metrics = [m for m in spec.metrics if METRICS.get(m).families is not None]
    ctx = SampleContext(samples, data, spec, torch.device(device), cache_dir, source)
    with env.preserved_rng():
        values, na = evaluate([m for m in spec.metrics if m not in model_metrics], ctx)
    na.update(dict.fromkeys(model_metrics, NO_MODEL))
    return values, na, ctx.info


def draw(run: RunSpec, run_dir: Path, device: torch.device | str, cache_dir: Path, n: int | None = None) -> torch.Tensor:
    """The first `n` (default `eval.num_samples`) samples of the run's final evaluation, from its kept weights."""
    device = torch.device(device)
    env.configure_threads(run.runner.threads)
    heap.keep_freed_memory()  # freed tensors reused, not faulted in again (core/heap.py)
    data = with_style(load_dataset(run.dataset), run.style).to(device)
    adapter = build_adapter(run, data, device, fast_path(run, device))
    weights.load(run_dir, adapter)
    with env.preserved_rng():
        return EvalContext(adapter, data, run.eval, device, cache_dir, run.seed, num_samples=n).samples
