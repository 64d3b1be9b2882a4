"""Answers that resolve: anytime-valid intervals for paired differences, and the call each comparison gets.

The confidence sequence (CS) is the t-test's: for Gaussian per-seed differences with unknown mean μ and
unknown spread σ, the scale-invariant likelihood ratio of the standardised effect δ = (μ − μ0)/σ, mixed over
δ ~ N(0, g), is a nonnegative martingale under μ = μ0 (Lai 1976; Wang & Ramdas 2024, Theorem 4.9):

    E_n(μ0) = (1 + n·g)^(−1/2) · [(1 + t²/ν) / (1 + t²/(ν·(1 + n·g)))]^(n/2),   t = √n (x̄ − μ0)/s,  ν = n − 1

(the Bayes factor of the one-sample t-test with a normal prior on δ and the right-Haar prior on σ; E_1 = 1).
By Ville's inequality P(∃n: E_n(μ) ≥ 1/a) ≤ a, so C_n = {μ0: E_n(μ0) < 1/a} covers μ at every n at once,
with probability ≥ 1 − a, whatever rule decided how many seeds to run. Solving E_n = 1/a for t gives C_n in
closed form (`halfwidth_factor`); the running intersection over the prefixes n = 2, 3, … (seed order) is
still a CS. The anytime-valid p-value at 0 is min(1, 1/max_k E_k(0)): p ≤ a exactly when C at level a
excludes 0, so the p-value, the interval and the call never disagree.

The call, within one family of m comparisons (the headline metric's; every other metric is its own,
secondary family): Holm on the p-values (anytime-valid ones under the sequential rule; paired-t ones under a
fixed number of seeds); R of them rejected. Every interval of the family is shown at the level α / max(1, m − R):
every rejected p is ≤ that level and every other one is above it, so an interval excludes zero exactly when
its comparison is called. With R = 0 these are Bonferroni's simultaneous intervals; for the uncalled ones
they are Holm's compatible bounds (Strassburger & Bretz 2008), which is what an equivalence call rests on.
Then: better / worse when the interval excludes 0 (by the metric's direction), equivalent when it lies
inside ±margin, else inconclusive.

Pure numpy/scipy; no torch and no pandas. docs/statistics.md says why the bounds are written here and not
taken from confseq, ville or expectation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
MIN_PAIRS = 3  # fewer paired seeds are never called, whatever the p-value
# Prior variance of the standardised effect δ in the mixture. It only moves where the CS is tightest, never
# its validity. Chosen by benchmarks/sequential_sim.py --tune on simulation seeds >= 100 over the effect sizes
# of issue 22 (δ about 0.4-3): it minimises the mean seeds spent there.
PRIOR_G = 4.0
SEQUENTIAL = "confidence sequence"
FIXED = "t-test"
TOST = "TOST"
N_CAP = 1000  # "seeds still needed" beyond this is reported as not reachable


def log_e_value(n: int, t2: float, g: float = PRIOR_G) -> float:
    """log E_n of the t-mixture martingale at n observations with squared t statistic t2 (E_1 = 1)."""
    return float(log_e_array(np.asarray(n), np.asarray(t2, float), g))


def log_e_array(n: np.ndarray, t2: np.ndarray, g: float = PRIOR_G) -> np.ndarray:
    """log E_n elementwise (broadcast), for simulations: 0 where n < 2, inf where t2 is inf."""
    n = np.asarray(n, float)
    a, nu = 1.0 + n * g, np.maximum(n - 1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = -0.5 * np.log(a) + 0.5 * n * (np.log1p(t2 / nu) - np.log1p(t2 / (nu * a)))
    out = np.where(np.isinf(t2), np.inf, out)
    return np.where(n < 2, 0.0, out)


def halfwidth_factor(n: int, level: float, g: float = PRIOR_G) -> float:
    """f with C_n = x̄ ± f·s at level `level`: the t where E_n = 1/level, over √n. inf when no t is large
    enough (E_n is bounded by (1 + n·g)^((n−1)/2) as t → ∞), so the CS is still the whole line."""
    if n < 2:
        return math.inf
    a, nu = 1.0 + n * g, n - 1.0
    log_k = (0.5 * math.log(a) - math.log(level)) * 2.0 / n  # (1 + u) = K (1 + u/a), u = t²/ν
    if log_k >= math.log(a):
        return math.inf
    k = math.exp(log_k)
    u = (k - 1.0) / (1.0 - k / a)
    return math.sqrt(nu * u / n)


def _prefix_stats(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n, mean and sample SD of every prefix of d (n = 1 has SD NaN)."""
    n = np.arange(1, len(d) + 1)
    mean = np.cumsum(d) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = np.cumsum(d * d) - n * mean * mean
        sd = np.sqrt(np.maximum(ss, 0.0) / (n - 1))
    return n, mean, sd


def confidence_sequence(diffs: Sequence[float], level: float, g: float = PRIOR_G) -> tuple[float, float]:
    """The running intersection, over prefixes in seed order, of the level-`level` CS for the mean of diffs."""
    d = np.asarray(diffs, float)
    lo, hi = -math.inf, math.inf
    for n, m, s in zip(*_prefix_stats(d), strict=True):
        if n < 2:
            continue
        f = halfwidth_factor(int(n), level, g)
        if math.isfinite(f):
            lo, hi = max(lo, m - f * s), min(hi, m + f * s)
    if lo > hi:  # the intersection emptied: only possible when the model is wrong; keep the last estimate
        lo = hi = float(m)
    return float(lo), float(hi)


def interval_path(diffs: Sequence[float], level: float, sequential: bool, g: float = PRIOR_G) -> list[tuple[int, float, float]]:
    """(n, low, high) for n = 2 … len(diffs): the interval as the seeds arrived, at one level. Under the
    sequential rule the running intersection (what the call saw at each n); otherwise each prefix's t interval
    (what a fixed design of that n would have shown)."""
    d = np.asarray(diffs, float)
    out = []
    for n in range(2, len(d) + 1):
        lo, hi = confidence_sequence(d[:n], level, g) if sequential else t_interval(d[:n], level)
        out.append((n, lo, hi))
    return out


def anytime_p(diffs: Sequence[float], g: float = PRIOR_G) -> float:
    """min(1, 1 / max over prefixes of E_k(0)): valid at any stopping time; NaN with < 2 differences."""
    d = np.asarray(diffs, float)
    if len(d) < 2:
        return math.nan
    best = 0.0
    for n, m, s in zip(*_prefix_stats(d), strict=True):
        if n < 2:
            continue
        t2 = math.inf if s == 0 and m != 0 else (0.0 if s == 0 else float(n * m * m / (s * s)))
        best = max(best, log_e_value(int(n), t2, g))
    return float(min(1.0, math.exp(-best)))


def t_interval(diffs: Sequence[float], level: float) -> tuple[float, float]:
    """The fixed-n two-sided paired t interval at level `level` (coverage 1 − level)."""
    from scipy.stats import t

    d = np.asarray(diffs, float)
    n = len(d)
    if n < 2:
        return -math.inf, math.inf
    half = float(t.ppf(1 - level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return float(d.mean() - half), float(d.mean() + half)


def t_p(diffs: Sequence[float]) -> float:
    from scipy.stats import ttest_1samp

    d = np.asarray(diffs, float)
    return math.nan if len(d) < 2 or np.ptp(d) == 0 else float(ttest_1samp(d, 0.0).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN stays NaN and does not count towards m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    return out


@dataclass(frozen=True)
class Call:
    """One comparison's answer: the decision, the test that made it, and the interval that agrees with it."""

    decision: str  # better | worse | equivalent | inconclusive (higher | lower when the metric has no direction)
    by: str  # the test that decided it ("" when inconclusive)
    low: float  # the simultaneous interval at `level`: it excludes 0 exactly when decision is better/worse
    high: float
    level: float  # the interval's miscoverage level, α / max(1, m − R)
    p: float  # unadjusted (anytime-valid under the sequential rule)
    p_holm: float
    n: int
    why: str = ""  # why there is no call, when there is no test at all


def decide(low: float, high: float, margin: float, higher_is_better: bool | None) -> str:
    """better / worse / equivalent / inconclusive from an interval (excludes 0 first, then inside ±margin)."""
    if low > 0 or high < 0:
        up = low > 0
        if higher_is_better is None:
            return "higher" if up else "lower"
        return "better" if up == higher_is_better else "worse"
    if math.isfinite(margin) and margin > 0 and -margin < low and high < margin:
        return "equivalent"
    return "inconclusive"


def family_calls(
    diffs: Sequence[Sequence[float]],
    margins: Sequence[float],
    directions: Sequence[bool | None],
    sequential: bool,
    alpha: float = ALPHA,
    g: float = PRIOR_G,
) -> list[Call]:
    """The calls of one family: diffs[i] are comparison i's per-seed differences in seed order, margins[i]
    its equivalence margin in the metric's units (NaN: none). Comparisons with < MIN_PAIRS seeds or zero
    spread have no test: they stay inconclusive and do not count towards m."""
    arrays = [np.asarray(d, float) for d in diffs]
    testable = [len(d) >= MIN_PAIRS and np.ptp(d) > 0 for d in arrays]
    p = np.array([(anytime_p(d, g) if sequential else t_p(d)) if ok else math.nan for d, ok in zip(arrays, testable, strict=True)])
    p_adj = holm(p)
    m = int(np.isfinite(p).sum())
    rejected = int(np.sum(p_adj <= alpha))  # p_adj ≤ α ⇔ p ≤ α/max(1, m − R) for exactly these R
    level = alpha / max(1, m - rejected)
    out = []
    for d, ok, pi, pa, margin, hib in zip(arrays, testable, p, p_adj, margins, directions, strict=True):
        if not ok:
            why = f"{len(d)} paired seed(s): at least {MIN_PAIRS} are needed" if len(d) < MIN_PAIRS else "zero spread"
            out.append(Call("inconclusive", "", math.nan, math.nan, level, math.nan, math.nan, len(d), why))
            continue
        lo, hi = confidence_sequence(d, level, g) if sequential else t_interval(d, level)
        if pa <= alpha:  # Holm's call; its interval excludes 0 (up to rounding at the boundary), on this side
            up = lo > 0 or (hi >= 0 and d.mean() > 0)
            decision = ("higher" if up else "lower") if hib is None else ("better" if up == hib else "worse")
        else:
            decision = "equivalent" if decide(lo, hi, margin, hib) == "equivalent" else "inconclusive"
        by = "" if decision == "inconclusive" else (SEQUENTIAL if sequential else (TOST if decision == "equivalent" else FIXED))
        out.append(Call(decision, by, lo, hi, level, float(pi), float(pa), len(d)))
    return out


def seeds_needed(
    mean: float, sd: float, n: int, m: int, margin: float = math.nan, sequential: bool = True, alpha: float = ALPHA, g: float = PRIOR_G
) -> int | None:
    """Paired seeds in total at which a comparison with this observed mean and SD would be decided at the
    family's strictest level α/m, if further seeds behave like the ones so far (a plug-in: about an even
    chance, not a power guarantee). None beyond N_CAP. Under a fixed design: the paired t interval; under
    the sequential rule: the CS, which is wider."""
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd < 0:
        return None
    if sd == 0:
        return max(n, MIN_PAIRS)
    from scipy.stats import t

    level = alpha / max(1, m)
    for k in range(max(n, MIN_PAIRS), N_CAP + 1):
        f = halfwidth_factor(k, level, g) if sequential else float(t.ppf(1 - level / 2, k - 1)) / math.sqrt(k)
        half = f * sd
        if abs(mean) > half or (math.isfinite(margin) and abs(mean) + half < margin):
            return k
    return None


__all__ = [
    "ALPHA",
    "Call",
    "anytime_p",
    "confidence_sequence",
    "decide",
    "family_calls",
    "halfwidth_factor",
    "holm",
    "interval_path",
    "log_e_value",
    "seeds_needed",
    "t_interval",
]
