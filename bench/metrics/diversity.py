"""Diversity of a few-shot model: intra-cluster distance, in the spirit of intra-LPIPS (Ojha et al. 2021,
"Few-shot Image Generation via Cross-domain Correspondence", https://arxiv.org/abs/2104.06820, section 4).

The few-shot failure it catches is a model that has learned its k training images and little else: its
samples may score a fine FID against the few images yet be near-copies, so Ojha et al. assign every
generated image to the closest of the k training images and average the pairwise distance within each
cluster. No LPIPS weights exist offline, so distances are taken in the label-free extractor's feature
space (ssl_net.py; always that one, even when the target has labels, since a classifier's features are
trained to forget within-class variation, which is the variation measured here):

1. f = the label-free features of the generated samples and of the training images the model saw (the
   limited split in a few-shot suite), each L2-normalised (LPIPS, too, normalises features), so a
   distance lies in [0, 2].
2. Each sample goes to its nearest training image (Euclidean, ties to the lower index).
3. Per cluster with at least 2 samples: the mean Euclidean distance over its pairs of samples.
4. intra_ssl = the mean over those clusters. Higher is more diverse; 0 is a model that emits k images.

Defined for few-shot training sets only (at most MAX_CENTRES images): with thousands of training images
the clusters would be single samples. Every run also records, under `intra_ssl`, the same statistic of the
real test split (`real`: what a model that generalises like fresh data would reach), the clusters used
and the definition.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable

MAX_CENTRES = 100  # the few-shot sets of the literature hold 10 to 100 images
MIN_CLUSTER = 2
INTRA_DEFINITION = (
    "intra-cluster distance (after Ojha et al. 2021's intra-LPIPS): every generated sample assigned to its nearest "
    "training image in the label-free extractor's L2-normalised features; mean pairwise Euclidean distance within "
    f"each cluster of >= {MIN_CLUSTER} samples, averaged over clusters; training sets of <= {MAX_CENTRES} images"
)


def _mean_pairwise(x: torch.Tensor, chunk: int = 2048) -> float:
    """Mean Euclidean distance over the n(n-1)/2 pairs of rows, in chunks (no n×n matrix for large n)."""
    n = len(x)
    total = 0.0
    for i in range(0, n, chunk):
        total += float(torch.cdist(x[i : i + chunk], x).sum())  # every pair twice, the diagonal's zeros once
    return total / (n * (n - 1))


def intra_cluster_distance(samples: torch.Tensor, centres: torch.Tensor) -> tuple[float, dict[str, Any]]:
    """(intra-cluster distance, per-cluster detail) of sample features against centre features."""
    s, c = (F.normalize(t.double(), dim=1) for t in (samples, centres))
    assign = torch.cat([torch.cdist(chunk, c).argmin(dim=1) for chunk in s.split(4096)])
    sizes = torch.bincount(assign, minlength=len(c))
    values = [_mean_pairwise(s[assign == k]) for k in range(len(c)) if sizes[k] >= MIN_CLUSTER]
    if not values:
        raise NotApplicable(f"no training image is the nearest one for {MIN_CLUSTER} or more samples")
    detail = {"clusters": len(c), "clusters_used": len(values), "largest_cluster": int(sizes.max())}
    return sum(values) / len(values), detail


def ssl_features(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated, real test split) features in the label-free space: the context's own when the target has no
    labels (then ctx.domain is the label-free extractor), else from the label-free extractor trained (and
    cached) beside the classifier."""
    from bench.metrics.ssl import get_ssl_extractor, has_labels

    if not has_labels(ctx.data):
        return ctx.fake_features["features"], ctx.real_features["features"]
    if "ssl_features" not in ctx.cache:
        ext = get_ssl_extractor(ctx.data.reference(), ctx.device, ctx.cache_dir)
        ctx.info["ssl_extractor"] = ext.describe()
        fake = ext.features(ctx.samples)["features"]
        ctx.cache["ssl_features"] = (fake, ext.real_features(ctx.data.test_x, ctx.cache_dir)["features"], ext)
    return ctx.cache["ssl_features"][:2]


def _ssl_train_features(ctx: EvalContext) -> torch.Tensor:
    from bench.metrics.ssl import has_labels

    ext = ctx.domain if not has_labels(ctx.data) else ctx.cache["ssl_features"][2]
    return ext.features(ctx.data.train_x)["features"]


@register_metric("intra_ssl")
def intra_ssl(ctx: EvalContext) -> float:
    n_train = len(ctx.data.train_x)
    if n_train > MAX_CENTRES:
        raise NotApplicable(f"a few-shot metric: the training split has {n_train} images (at most {MAX_CENTRES})")
    fake, real = ssl_features(ctx)
    centres = _ssl_train_features(ctx)
    value, detail = intra_cluster_distance(fake, centres)
    try:
        real_value: float | None = round(intra_cluster_distance(real, centres)[0], 6)
    except NotApplicable:  # a test split too small for any cluster of 2: the run's number still stands
        real_value = None
    ctx.info["intra_ssl"] = {**detail, "real": real_value, "definition": INTRA_DEFINITION}
    return value
