"""FID's trace-sqrt term from singular values (bench.metrics.fidelity): torch-fidelity's value to the bit when
the covariances can be full rank, and the exact value, free of torch-fidelity's rounding noise, when they cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

from bench.metrics.fidelity import fid_from_features, trace_sqrt_product


def features(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g).relu() * scale).float()  # ReLU features, like the domain extractor's


def torch_fidelity_fid(fake: torch.Tensor, real: torch.Tensor) -> float:
    return float(fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real), False)[KEY_METRIC_FID])


@pytest.mark.parametrize(("n_fake", "n_real", "d"), [(500, 207, 64), (120, 300, 16)])
def test_full_rank_is_torch_fidelity_to_the_bit(n_fake: int, n_real: int, d: int) -> None:
    fake, real = features(n_fake, d, 1), features(n_real, d, 2, 1.1)
    assert fid_from_features(fake, real) == torch_fidelity_fid(fake, real)


def test_trace_sqrt_is_the_symmetric_eigenvalue_form() -> None:
    # An independent route to tr sqrt(S1 S2): the eigenvalues of the symmetric PSD S2^1/2 S1 S2^1/2.
    fake, real = features(60, 40, 3), features(50, 40, 4, 1.3)
    s1, s2 = (np.cov(x.numpy().astype(np.float64), rowvar=False) for x in (fake, real))
    w, v = np.linalg.eigh(s2)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    expected = np.sqrt(np.clip(np.linalg.eigvalsh(half @ s1 @ half), 0, None)).sum()
    assert trace_sqrt_product(fake, real) == pytest.approx(expected, rel=1e-9)


def test_rank_deficient_is_exact_where_torch_fidelity_is_noisy() -> None:
    # The main job's case at a third of its size (it has 640 features, 500 generated and 207 real images).
    # FID of a set against itself is 0 exactly; the singular-value form gets it to float64 rounding,
    # torch-fidelity's eigenvalues do not. One LAPACK thread, as in a run (a second only waits on a busy machine).
    with threadpool_limits(limits=1):
        real = features(70, 210, 5)
        scale = float(np.trace(np.cov(real.numpy().astype(np.float64), rowvar=False)))
        assert abs(fid_from_features(real, real)) < 1e-10 * scale
        assert abs(torch_fidelity_fid(real, real)) > 1e3 * abs(fid_from_features(real, real))
        # On two different sets the two agree to torch-fidelity's noise (~1e-6 relative), not to the bit.
        fake = features(160, 210, 6, 1.2)
        assert fid_from_features(fake, real) == pytest.approx(torch_fidelity_fid(fake, real), rel=1e-5)
