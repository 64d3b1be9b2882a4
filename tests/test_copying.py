"""ct_domain, the data-copying test C_T (Meehan et al. 2020): a model that returns its training images is
flagged, fresh real data is not, and the statistic's sign and Z-scoring follow the paper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _fixed import Fixed
from scipy.stats import mannwhitneyu

from bench.data.datasets import DatasetSpec, load_dataset
from bench.metrics import METRICS, evaluate
from bench.metrics.context import EvalContext
from bench.metrics.copying import COPYING_THRESHOLD, data_copying, z_u
from bench.suite.load import EvalSpec


@pytest.fixture(scope="module")
def fewshot():
    """digits-strategies' target: digits 5-9, 100 training images."""
    return load_dataset(DatasetSpec("digits", classes=[5, 6, 7, 8, 9], limit=100))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("copying-cache")


def ct(images: torch.Tensor, data, cache_dir, n: int = 500) -> tuple[float, dict]:
    ctx = EvalContext(Fixed(images, data.info), data, EvalSpec(num_samples=n), torch.device("cpu"), cache_dir, seed=0)
    values, na = evaluate(["ct_domain"], ctx)
    assert not na, na
    return values["ct_domain"], ctx.info["ct_domain"]


def test_model_returning_training_images_is_flagged(fewshot, cache_dir):
    value, info = ct(fewshot.train_x, fewshot, cache_dir)  # the 100 images the model saw, cycled
    assert value < COPYING_THRESHOLD and info["copying"] is True
    assert value < METRICS.get("ct_domain").flag_below == COPYING_THRESHOLD  # what the report's verdict flags


def test_fresh_real_data_is_not_flagged(fewshot, cache_dir):
    # The test split itself, and real images of the same classes the model never saw (the training split
    # beyond `limit`): both are as far from the training set as fresh data, so C_T stays near 0.
    value, info = ct(fewshot.test_x, fewshot, cache_dir, n=len(fewshot.test_x))
    assert abs(value) < 1.0 and info["copying"] is False
    unseen = fewshot.full_train[0][len(fewshot.train_x) :]
    value, info = ct(unseen, fewshot, cache_dir, n=len(unseen))
    assert COPYING_THRESHOLD < value < -COPYING_THRESHOLD and info["copying"] is False
    assert value >= METRICS.get("ct_domain").flag_below


def test_reference_is_the_limited_training_set(fewshot, cache_dir):
    # Copying real images the model never saw is not memorisation of *its* training set: not flagged,
    # while the same number of images from its own 100 is.
    unseen = fewshot.full_train[0][len(fewshot.train_x) : len(fewshot.train_x) + 100]
    assert ct(unseen, fewshot, cache_dir)[0] > COPYING_THRESHOLD
    assert ct(fewshot.train_x, fewshot, cache_dir)[0] < COPYING_THRESHOLD


def test_z_u_is_the_z_scored_mann_whitney_u():
    rng = np.random.default_rng(100)
    train, test = rng.normal(size=(200, 4)), rng.normal(size=(80, 4))
    near = train[rng.integers(0, 200, 120)] + 0.01 * rng.normal(size=(120, 4))  # copies with a little noise
    far = 3 * rng.normal(size=(120, 4))
    assert z_u(near, test, train) < -5 < 5 < z_u(far, test, train)
    # By hand: U counts pairs where the generated point is farther from the training set than the test point.
    dq = np.linalg.norm(far[:, None] - train[None], axis=2).min(1)
    dp = np.linalg.norm(test[:, None] - train[None], axis=2).min(1)
    m, n = len(dq), len(dp)
    u = mannwhitneyu(dq, dp).statistic
    assert u == pytest.approx((dq[:, None] > dp[None]).sum() + 0.5 * (dq[:, None] == dp[None]).sum())
    assert z_u(far, test, train) == pytest.approx((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def test_cells_weighted_by_test_share():
    rng = np.random.default_rng(101)
    train = torch.from_numpy(rng.normal(size=(300, 3)))
    out = data_copying(train[:200] + 1e-3, torch.from_numpy(rng.normal(size=(150, 3))), train)
    used = [c for c in out.cells if c["z_u"] is not None]
    assert used and out.copying
    want = sum(c["test_share"] * c["z_u"] for c in used) / sum(c["test_share"] for c in used)
    assert out.ct == pytest.approx(want, rel=1e-3)
    assert sum(c["test_share"] for c in out.cells) == pytest.approx(1.0, abs=1e-3)
