"""Memorisation: the data-copying test C_T of Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to
Detect Data-Copying in Generative Models" (AISTATS; https://arxiv.org/abs/2004.05675), in the domain
classifier's feature space.

Why C_T (and not the authenticity score of Alaa et al. 2022, https://arxiv.org/abs/2102.08921): C_T compares
the generated samples with *fresh real data* (the test split), so a model is called a copier only when its
samples sit closer to the training set than unseen real images do. That calibration matters in few-shot
suites, where 100 training images lie close to many test images anyway and an absolute distance threshold
would flag every good model. It is a rank test with a known null distribution (about N(0, 1) per cell), so
its threshold is a Z-score rather than a tuned number, and it needs no extra network.

The statistic, as in the paper and its reference code (github.com/casey-meehan/data-copying):
1. Cells: k-means (CELLS clusters, fixed seed) on the training features T; every point goes to its nearest
   centroid.
2. In each cell, L(x) = distance of x to its nearest training point of that cell, for the test points P and
   the generated points Q of the cell; Z_U = the Mann-Whitney U of L(Q) against L(P) (scipy.stats.mannwhitneyu),
   Z-scored under the null: (U - mn/2) / sqrt(mn(m + n + 1)/12).
3. C_T = the average of the cells' Z_U, weighted by each cell's share of the test split, over the cells that
   hold more than MIN_GENERATED generated samples (the paper's tau = 20 samples).

Reading it: C_T ≈ 0 when the model is as far from its training images as fresh real data is; C_T < 0 when
generated samples are closer (copying); C_T > 0 when they are farther (under-fitting, or simply a poor model).
So higher means less copying, but it is a check rather than a score to maximise. A run is flagged `copying`
when C_T < COPYING_THRESHOLD (-3: three standard errors of a single cell's Z_U, and the weighted average of
several cells is tighter still, so fresh real data practically never crosses it).

The training set is the one the model saw: in a few-shot suite (`limit`), the limited training split.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable
from bench.metrics.info import COPYING_THRESHOLD

CELLS = 5  # k-means cells on the training features; fewer when the training set is tiny
MIN_GENERATED = 20  # a cell enters C_T only with more generated samples than this (the paper's tau)
KMEANS_SEED = 0  # fixed by the protocol, so the cells never depend on the run seed
CT_DEFINITION = (
    f"C_T (Meehan et al. 2020): k-means ({CELLS} cells, seed {KMEANS_SEED}) on the training split's domain features; "
    "per cell, Mann-Whitney U of nearest-training-point distances, generated vs test split, Z-scored; averaged with "
    f"the test split's cell shares over cells with > {MIN_GENERATED} generated samples. 0: like fresh data; "
    f"< {COPYING_THRESHOLD:g}: copying (flagged); > 0: farther from the training set than fresh data"
)


@dataclass(frozen=True)
class CopyingTest:
    ct: float
    cells: list[dict[str, Any]]  # per cell: test share, generated count, Z_U (None when left out)

    @property
    def copying(self) -> bool:
        return self.ct < COPYING_THRESHOLD


# The cells of recent training splits, by their features' bytes: every run on a data set fits the same k-means.
_CELLS: OrderedDict[str, Any] = OrderedDict()
_CELLS_MAX = 4


def _cells(train: np.ndarray) -> Any:
    from sklearn.cluster import KMeans  # imported here: scikit-learn is heavy and only this metric needs it

    key = hashlib.sha256(str(train.shape).encode() + np.ascontiguousarray(train).tobytes()).hexdigest()
    if key not in _CELLS:
        k = max(1, min(CELLS, len(train) // 2))
        _CELLS[key] = KMeans(n_clusters=k, n_init=10, random_state=KMEANS_SEED).fit(train)
        while len(_CELLS) > _CELLS_MAX:
            _CELLS.popitem(last=False)
    _CELLS.move_to_end(key)
    return _CELLS[key]


def _nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return torch.cdist(torch.from_numpy(x), torch.from_numpy(ref)).min(dim=1).values.numpy()


def z_u(generated: np.ndarray, test: np.ndarray, train: np.ndarray) -> float:
    """Z-scored Mann-Whitney U of the distances to the nearest training point: generated (m) vs test (n).
    Negative: generated samples are closer to the training set than test points are."""
    lq, lp = _nearest(generated, train), _nearest(test, train)
    m, n = len(lq), len(lp)
    u = mannwhitneyu(lq, lp, alternative="less").statistic  # U of the first sample: pairs with L(q) > L(p)
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def data_copying(generated: torch.Tensor, test: torch.Tensor, train: torch.Tensor) -> CopyingTest:
    """C_T of generated features against test features, with cells and distances from the training features."""
    q, p, t = (x.double().cpu().numpy() for x in (generated, test, train))
    km = _cells(t)
    cq, cp, ct = km.predict(q), km.predict(p), km.labels_
    weighted, total, cells = 0.0, 0.0, []
    for c in range(km.n_clusters):
        share = float((cp == c).mean())
        count = int((cq == c).sum())
        z = z_u(q[cq == c], p[cp == c], t[ct == c]) if count > MIN_GENERATED and share > 0 else None
        cells.append({"test_share": round(share, 4), "generated": count, "z_u": None if z is None else round(z, 4)})
        if z is not None:
            weighted, total = weighted + share * z, total + share
    if total == 0:
        raise NotApplicable(f"no k-means cell holds both test points and more than {MIN_GENERATED} generated samples")
    return CopyingTest(weighted / total, cells)


def train_features(ctx: EvalContext) -> torch.Tensor:
    """Domain features of the training split the model saw (the limited one in a few-shot suite)."""
    return ctx.train_features["features"]


@register_metric("ct_domain")
def ct_domain(ctx: EvalContext) -> float:
    out = data_copying(ctx.fake_features["features"], ctx.real_features["features"], train_features(ctx))
    ctx.info["ct_domain"] = {"definition": CT_DEFINITION, "copying": out.copying, "threshold": COPYING_THRESHOLD, "cells": out.cells}
    return out.ct
