"""The evaluation's previous implementations, for side-by-side timing and bit-equality checks
(`eval_stages.py --reference`). Each entry replaces one function of the current code for the duration of a
`with reference():` block, so both versions run in one process on the same trained model and the same inputs.

Keep an entry here as long as its replacement is recent, so a before/after can still be measured; delete it
when the current code has been the protocol for a while.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

import numpy as np
import torch


def kid_mmds_ix(fake: torch.Tensor, real: torch.Tensor, subsets: int, subset_size: int, seed: int) -> np.ndarray:
    """bench.metrics.kid.kid_mmds before it gathered with `take`: torch-fidelity's own `k[np.ix_(a, b)]`."""
    from torch_fidelity.metric_kid import kernel_poly, mmd2

    from bench.metrics.kid import POLY

    f1, f2 = fake.cpu().numpy(), real.cpu().numpy()
    n1, n2 = len(f1), len(f2)
    k11, k22, k12 = kernel_poly(f1, f1, **POLY), kernel_poly(f2, f2, **POLY), kernel_poly(f1, f2, **POLY)
    rng = np.random.RandomState(seed)
    out = np.zeros(subsets)
    for i in range(subsets):
        a = rng.choice(n1, subset_size, replace=False)
        b = rng.choice(n2, subset_size, replace=False)
        out[i] = mmd2(k11[np.ix_(a, a)], k12[np.ix_(a, b)], k22[np.ix_(b, b)])
    return out


def fid_torch_fidelity(fake: torch.Tensor, real: torch.Tensor) -> float:
    """FID exactly as torch-fidelity computes it: the non-symmetric eigenvalue problem on sigma1 · sigma2."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats_fake, stats_real = fid_features_to_statistics(fake), fid_features_to_statistics(real)
    return float(fid_statistics_to_metric(stats_fake, stats_real, False)[KEY_METRIC_FID])


# (module, attribute, previous implementation)
REFERENCE = [
    ("bench.metrics.kid", "kid_mmds", kid_mmds_ix),
    ("bench.metrics.fidelity", "fid_from_features", fid_torch_fidelity),
]


@contextmanager
def reference() -> Iterator[None]:
    """Run the block with every REFERENCE implementation in place of the current one."""
    saved = []
    try:
        for mod, attr, fn in REFERENCE:
            m = import_module(mod)
            saved.append((m, attr, getattr(m, attr)))
            setattr(m, attr, fn)
        yield
    finally:
        for m, attr, fn in reversed(saved):
            setattr(m, attr, fn)
