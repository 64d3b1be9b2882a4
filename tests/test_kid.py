"""KID from kernel matrices computed once (bench.metrics.kid) equals torch-fidelity's KID to the bit."""

from __future__ import annotations

import pytest
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

from bench.metrics.kid import kid_mean


@pytest.mark.parametrize(("n_fake", "n_real", "dim", "seed"), [(500, 207, 640, 2020), (120, 300, 64, 7), (50, 50, 16, 0)])
def test_kid_equals_torch_fidelity(n_fake: int, n_real: int, dim: int, seed: int) -> None:
    g = torch.Generator().manual_seed(n_fake + dim)
    fake = torch.randn(n_fake, dim, generator=g).relu()  # ReLU features, like the domain extractor's
    real = torch.randn(n_real, dim, generator=g).relu() * 1.1
    m = min(n_fake, n_real)
    ref = kid_features_to_metric(fake, real, kid_subsets=5, kid_subset_size=m, rng_seed=seed, verbose=False)[KEY_METRIC_KID_MEAN]
    assert kid_mean(fake, real, 5, m, seed) == ref
    smaller = m // 2  # subsets smaller than both sides: other rows drawn, still the same values
    ref = kid_features_to_metric(fake, real, kid_subsets=5, kid_subset_size=smaller, rng_seed=seed, verbose=False)[KEY_METRIC_KID_MEAN]
    assert kid_mean(fake, real, 5, smaller, seed) == ref


def test_kid_subset_larger_than_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="larger than the samples"):
        kid_mean(torch.rand(10, 4), torch.rand(20, 4), 5, 11, 0)
