"""EvalContext: the shared, lazily computed inputs of every metric for one evaluation."""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.core.beat import beat
from bench.core.seeds import derive_seed
from bench.metrics.info import NotApplicable  # noqa: F401  (re-exported: metrics import it from here)

if TYPE_CHECKING:
    from bench.adapter.base import Adapter
    from bench.data.datasets import ImageData
    from bench.suite.spec import EvalSpec


# Samples are drawn in chunks of this fixed size: a sampler's random stream depends on how many images each
# call asks for, so tying chunks to `spec.batch_size` would let the batch size change the numbers.
SAMPLE_CHUNK = 250


class EvalContext:
    """Everything a metric may read. Samples and features are computed once and shared.

    Samples are drawn with a generator seeded from the run seed, so an evaluation is repeatable, and
    in chunks of the fixed SAMPLE_CHUNK, and the harness's extractors see chunks of the fixed
    registered.FEATURE_CHUNK, so that the batch size changes speed only, never the numbers.
    """

    def __init__(
        self,
        adapter: Adapter,
        data: ImageData,
        spec: EvalSpec,
        device: torch.device,
        cache_dir: Path,
        seed: int,
        num_samples: int | None = None,
    ):
        self.adapter, self.data, self.spec, self.device = adapter, data, spec, torch.device(device)
        self.cache_dir = Path(cache_dir)
        self.seed = seed
        self.num_samples = num_samples or spec.num_samples
        self.info: dict[str, Any] = {}  # provenance metrics add (e.g. the domain classifier's accuracy)
        self.cache: dict[str, Any] = {}  # intermediate results metrics share (e.g. precision and recall together)
        # Seconds spent obtaining the domain extractor and the real splits' features: training them the first time
        # on a data set, loading them from the cache after. One-time costs of the data set, not of this evaluation,
        # so the runner reports them apart (timings.extractor), never as this run's evaluation time.
        self.setup_seconds = 0.0

    @property
    def family(self) -> str:
        return self.adapter.family

    @cached_property
    def samples(self) -> torch.Tensor:
        """uint8 N×C×H×W generated images, on the CPU."""
        return self._draw(self.num_samples)

    def samples_at_least(self, n: int) -> torch.Tensor:
        """At least `n` generated images, for a metric that needs more than the protocol's `num_samples` (modes
        on digits_stacked). Drawn afresh from the same seed and chunks, so the first `num_samples` equal `samples`
        whenever `num_samples` is a multiple of SAMPLE_CHUNK."""
        if n <= self.num_samples:
            return self.samples
        if self.cache.get("samples_at_least", torch.empty(0)).shape[0] < n:
            self.cache["samples_at_least"] = self._draw(n)
        return self.cache["samples_at_least"]

    @cached_property
    def pairs(self):
        """A stylize run's fixed (content, style) evaluation pairs (bench.data.style.eval_pairs), `num_samples` of them."""
        from bench.data.style import eval_pairs

        return eval_pairs(self.data, self.num_samples)

    def _draw(self, n: int) -> torch.Tensor:
        from bench.adapter.base import CONDITIONAL_FAMILIES, validate_sample

        if self.family in CONDITIONAL_FAMILIES:
            return self._stylize(n)

        gen_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        gen = torch.Generator(device=gen_device).manual_seed(derive_seed(self.seed, "eval"))
        out, left = [], n
        self.adapter.train(False)
        try:
            with torch.inference_mode():
                while left > 0:
                    k = min(left, SAMPLE_CHUNK)
                    beat(f"sample() for the evaluation ({n - left} of {n} drawn)")
                    x = validate_sample(self.adapter.sample(k, gen), k, self.data.info, type(self.adapter).__name__)
                    out.append(x)  # kept on the device: a .cpu() per chunk would wait for each chunk in turn
                    left -= k
        finally:
            self.adapter.train(True)
        # One device-to-host transfer for all chunks.
        return torch.cat(out).cpu()

    def _stylize(self, n: int) -> torch.Tensor:
        """A conditional adapter's outputs on the fixed evaluation pairs, in SAMPLE_CHUNK chunks (no randomness)."""
        from bench.adapter.base import validate_sample

        if n > self.num_samples:
            raise NotApplicable(f"a stylize run has {self.num_samples} fixed evaluation pairs, not {n}")
        pairs, out = self.pairs, []
        self.adapter.train(False)
        try:
            with torch.inference_mode():
                for i in range(0, n, SAMPLE_CHUNK):
                    beat(f"stylize() for the evaluation ({i} of {n} pairs)")
                    c, s = (t[i : i + SAMPLE_CHUNK].to(self.device).float().div(127.5).sub(1.0) for t in (pairs.content, pairs.style))
                    out.append(validate_sample(self.adapter.stylize(c, s), len(c), self.data.info, type(self.adapter).__name__))
        finally:
            self.adapter.train(True)
        return torch.cat(out).cpu()

    @cached_property
    def domain(self):
        """The harness's domain extractor for this data set (trained once, cached by content hash): the domain
        classifier when the target has labels, else the label-free (self-supervised) extractor (metrics/ssl.py)."""
        from bench.metrics.ssl import get_extractor

        clf = self._setup(lambda: get_extractor(self.data, self.device, self.cache_dir))
        self.info["domain_classifier"] = clf.describe()
        return clf

    def _setup(self, fn: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.setup_seconds += time.perf_counter() - t

    @cached_property
    def real_features(self) -> dict[str, torch.Tensor]:
        """Domain features and logits of the real test split (cached on disk by content hash)."""
        domain = self.domain
        return self._setup(lambda: domain.real_features(self.data.test_x, self.cache_dir))

    @cached_property
    def train_features(self) -> dict[str, torch.Tensor]:
        """Domain features and logits of the training split the model saw (the limited one in a few-shot suite),
        cached on disk like the test split's: the same for every run on the data set."""
        domain = self.domain
        return self._setup(lambda: domain.real_features(self.data.train_x, self.cache_dir))

    @cached_property
    def fake_features(self) -> dict[str, torch.Tensor]:
        return self.domain.features(self.samples)
