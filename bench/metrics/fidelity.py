"""Sample-fidelity metrics in the domain classifier's feature space (`*_domain`).

fid, kid, precision and recall are torch-fidelity's own functions applied to the features of the registered
domain extractor (input1 = generated, input2 = the real test split, as in `calculate_metrics`), so a number
here equals `torch_fidelity.calculate_metrics(input1=..., input2=..., feature_extractor="bench-domain-<hash8>")`
on the same images; FID with rank-deficient covariances (more feature dimensions than images) takes its
trace-sqrt term from a singular value decomposition instead (fid_from_features), within ~1e-6 relative of
torch-fidelity's and without its rounding noise. KID draws torch-fidelity's subsets and applies its `mmd2` to kernel entries computed once
for all subsets (bench.metrics.kid): the same value, to the bit, at a tenth of the work. Density and coverage (Naeem et al. 2020, https://arxiv.org/abs/2002.09797, k = 5) are
not in torch-fidelity and are computed here on the same features.

KID uses subsets of min(eval.kid_subset_size, generated, real) images (KID needs equal-sized subsets, and a
small test split would otherwise make it undefined), KID_SUBSETS of them, drawn with the fixed KID_SEED.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from bench.metrics import register_metric
from bench.metrics.context import EvalContext, NotApplicable
from bench.metrics.kid import kid_mean

KID_SUBSETS = 100
KID_SEED = 2020  # torch-fidelity's default rng_seed: fixed by the protocol, not by the run seed
PRC_NEIGHBORHOOD = 3  # torch-fidelity's default (Kynkäänniemi et al. 2019)
DC_NEIGHBORHOOD = 5  # density/coverage k (Naeem et al. 2020)


def kid_subset_size(requested: int, n_fake: int, n_real: int) -> int:
    return min(requested, n_fake, n_real)


def _pair(ctx: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(generated, real) domain features; input1 and input2 in torch-fidelity's terms."""
    return ctx.fake_features["features"], ctx.real_features["features"]


def _once(ctx: EvalContext, key: str, fn: Any) -> Any:
    if key not in ctx.cache:
        ctx.cache[key] = fn()
    return ctx.cache[key]


def fid_from_features(fake: torch.Tensor, real: torch.Tensor) -> float:
    """torch-fidelity's FID. When the covariances are rank-deficient (feature width d ≥ the smaller sample
    count: the main job's 640 ensemble features against 207 test images), the one term that needs a matrix
    square root, tr sqrt(Σ1 Σ2), comes from the singular values of the n1 × n2 cross matrix instead of the
    eigenvalues of the d × d product (trace_sqrt_product): the same quantity, exact to float64 rounding, and
    about 7x faster there. torch-fidelity's eigenvalues also return d - rank spurious ones of order 1e-14 whose
    square roots (order 1e-7 each) it adds up, which moves its FID by ~1e-6 relative; the other terms (mean
    difference, traces) are torch-fidelity's own. Full-rank cases (each ensemble member's 64 features) keep
    torch-fidelity's computation to the bit."""
    stats_fake, stats_real = fid_features_to_statistics(fake), fid_features_to_statistics(real)
    if fake.shape[1] < min(len(fake), len(real)):
        return float(fid_statistics_to_metric(stats_fake, stats_real, False)[KEY_METRIC_FID])
    (mu1, s1), (mu2, s2) = (stats_fake["mu"], stats_fake["sigma"]), (stats_real["mu"], stats_real["sigma"])
    diff = mu1 - mu2  # as torch-fidelity: the features' dtype (float32 means), then float64 traces
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(fake, real))


def trace_sqrt_product(fake: torch.Tensor, real: torch.Tensor) -> float:
    """tr sqrt(Σ1 Σ2) for the sample covariances of two feature sets. With centred X1 (n1 × d) and X2 (n2 × d),
    Σi = Xiᵀ Xi / (ni - 1), and the eigenvalues of Σ1 Σ2 are those of (X1 X2ᵀ)(X1 X2ᵀ)ᵀ / ((n1 - 1)(n2 - 1))
    plus zeros, so its trace-sqrt is the sum of the singular values of X1 X2ᵀ, scaled: no square root of a
    rounding error (~1e-14) ever enters the sum, unlike sqrt(eigvals(Σ1 Σ2))."""
    x1, x2 = (f.cpu().numpy().astype(np.float64) for f in (fake, real))  # float64, as np.cov computes Σ
    x1, x2 = x1 - x1.mean(axis=0), x2 - x2.mean(axis=0)
    singular = np.linalg.svd(x1 @ x2.T, compute_uv=False)
    return float(singular.sum() / np.sqrt((len(x1) - 1) * (len(x2) - 1)))


def kid_from_features(fake: torch.Tensor, real: torch.Tensor, subset_size: int) -> float:
    """torch-fidelity's KID mean (kid_features_to_metric), from kernel matrices computed once (bench.metrics.kid)."""
    m = kid_subset_size(subset_size, len(fake), len(real))
    return kid_mean(fake, real, KID_SUBSETS, m, KID_SEED)


def prc_from_features(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    out = prc_features_to_metric(fake, real, prc_neighborhood=PRC_NEIGHBORHOOD, save_cpu_ram=len(fake) * len(real) > 10**8, verbose=False)
    return {"precision": float(out[KEY_METRIC_PRECISION]), "recall": float(out[KEY_METRIC_RECALL])}


def _kth_radii(real: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance of each real point to its k-th nearest other real point (the row's 0 to itself is skipped)."""
    return torch.cat([torch.cdist(r, real).kthvalue(k + 1, dim=1).values for r in real.split(chunk)])


def density_coverage(fake: torch.Tensor, real: torch.Tensor, k: int = DC_NEIGHBORHOOD, chunk: int = 2048) -> dict[str, float]:
    """Naeem et al. 2020 (as in their `prdc` code, strict `<`):
    density = 1/(kM) Σ_j Σ_i 1[fake_j inside ball(real_i, r_k(real_i))];
    coverage = 1/N Σ_i 1[some fake inside ball(real_i, r_k(real_i))]."""
    real, fake = real.double(), fake.double()  # float64: ties at the radius are decided the same way every time
    radii = _kth_radii(real, k, chunk)
    hits = 0.0
    covered = torch.zeros(len(real), dtype=torch.bool)
    for f in fake.split(chunk):
        inside = torch.cdist(real, f) < radii[:, None]  # N × chunk
        hits += float(inside.sum())
        covered |= inside.any(dim=1)
    return {"density": hits / (k * len(fake)), "coverage": float(covered.double().mean())}


def member_fids(fake: torch.Tensor, real: torch.Tensor, members: int) -> list[float]:
    """FID in each ensemble member's own feature space (the members' features sit side by side, equal widths)."""
    return [fid_from_features(f, r) for f, r in zip(fake.chunk(members, dim=1), real.chunk(members, dim=1), strict=True)]


@register_metric("fid_domain")
def fid_domain(ctx: EvalContext) -> float:
    fake, real = _pair(ctx)
    k = int(ctx.domain.info.get("members") or 1)
    if k > 1:  # the extractor's own variance, per run: how much one member alone would have said otherwise
        per = member_fids(fake, real, k)
        mean = sum(per) / k
        std = (sum((v - mean) ** 2 for v in per) / (k - 1)) ** 0.5
        ctx.info["fid_domain_members"] = {"values": [round(v, 6) for v in per], "std_over_mean": round(std / mean, 6) if mean else None}
    return fid_from_features(fake, real)


@register_metric("kid_domain")
def kid_domain(ctx: EvalContext) -> float:
    fake, real = _pair(ctx)
    if min(len(fake), len(real)) < 2:
        raise NotApplicable("KID needs at least 2 generated and 2 real images")
    ctx.info["kid_subset_size"] = kid_subset_size(ctx.spec.kid_subset_size, len(fake), len(real))
    return kid_from_features(fake, real, ctx.spec.kid_subset_size)


@register_metric("precision_domain")
def precision_domain(ctx: EvalContext) -> float:
    return _once(ctx, "prc_domain", lambda: prc_from_features(*_pair(ctx)))["precision"]


@register_metric("recall_domain")
def recall_domain(ctx: EvalContext) -> float:
    return _once(ctx, "prc_domain", lambda: prc_from_features(*_pair(ctx)))["recall"]


@register_metric("density_domain")
def density_domain(ctx: EvalContext) -> float:
    return _once(ctx, "dc_domain", lambda: density_coverage(*_pair(ctx)))["density"]


@register_metric("coverage_domain")
def coverage_domain(ctx: EvalContext) -> float:
    return _once(ctx, "dc_domain", lambda: density_coverage(*_pair(ctx)))["coverage"]
