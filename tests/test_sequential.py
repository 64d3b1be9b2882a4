"""bench.stats.sequential: the t-mixture confidence sequence, the anytime p-value, and the family's calls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from bench.stats.sequential import (
    ALPHA,
    PRIOR_G,
    anytime_p,
    confidence_sequence,
    decide,
    family_calls,
    halfwidth_factor,
    holm,
    log_e_value,
    seeds_needed,
)


@pytest.mark.parametrize(("n", "t"), [(2, 4.0), (3, 1.5), (5, 3.0), (10, 0.7), (25, -2.2)])
def test_e_value_is_the_mixture_of_t_likelihood_ratios(n: int, t: float) -> None:
    """E_n is ∫ nct(t; ν, δ√n) / t(t; ν) dN(δ; 0, g): the likelihood ratio of the t statistic mixed over δ."""
    nu = n - 1
    mix = integrate.quad(lambda d: stats.nct.pdf(t, nu, d * math.sqrt(n)) * stats.norm.pdf(d, 0, math.sqrt(PRIOR_G)), -np.inf, np.inf)[0]
    assert log_e_value(n, t * t) == pytest.approx(math.log(mix / stats.t.pdf(t, nu)), abs=1e-9)


@pytest.mark.parametrize("n", [2, 4, 9])
def test_e_value_has_mean_one_under_the_null(n: int) -> None:
    """A martingale starting at 1: E_0[E_n] = 1 exactly (integrated over the central t density)."""
    mean = integrate.quad(lambda t: math.exp(log_e_value(n, t * t)) * stats.t.pdf(t, n - 1), -np.inf, np.inf, limit=200)[0]
    assert mean == pytest.approx(1.0, abs=1e-6)


def test_halfwidth_solves_e_equals_one_over_level() -> None:
    for n in (5, 8, 20, 40):
        for level in (0.05, 0.0025):
            f = halfwidth_factor(n, level)
            assert math.exp(log_e_value(n, (f * math.sqrt(n)) ** 2)) == pytest.approx(1 / level, rel=1e-9)
    # E_n is bounded by (1 + n g)^((n-1)/2): at n = 3 and level 0.0025 no t reaches 1/level
    assert (1 + 3 * PRIOR_G) ** 1.0 < 400 and halfwidth_factor(3, 0.0025) == math.inf
    assert halfwidth_factor(1, 0.05) == math.inf


def test_cs_is_wider_than_the_fixed_n_interval_and_shrinks() -> None:
    widths = [halfwidth_factor(n, 0.05) for n in (5, 10, 20, 40)]
    assert widths == sorted(widths, reverse=True)
    for n in (5, 10, 40):
        assert halfwidth_factor(n, 0.05) > stats.t.ppf(0.975, n - 1) / math.sqrt(n)


def test_p_and_interval_agree_at_every_level() -> None:
    """p ≤ a exactly when the level-a CS (running intersection) excludes 0."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        d = rng.normal(rng.uniform(-1.5, 1.5), 1.0, rng.integers(3, 25))
        p = anytime_p(d)
        for a in (0.05, 0.01, 0.0025):
            lo, hi = confidence_sequence(d, a)
            assert (p <= a) == (lo > 0 or hi < 0)
            checked += p <= a
    assert checked > 50  # both outcomes were exercised


def test_coverage_holds_at_every_look_while_repeated_t_tests_do_not() -> None:
    """Gaussian differences, looks after every seed up to 30: the CS ever misses μ in ≤ α of sequences;
    the fixed-n t interval looked at every seed misses far more often (why a CS is needed)."""
    rng = np.random.default_rng(1)
    a, reps, n_max = 0.1, 1500, 30
    mu = rng.normal(size=(reps, 1))
    d = mu + rng.uniform(0.1, 5, (reps, 1)) * rng.normal(size=(reps, n_max))
    miss_cs = sum(not lo < m < hi for (lo, hi), m in zip((confidence_sequence(row, a) for row in d), mu[:, 0], strict=True))
    n = np.arange(1, n_max + 1)
    mean = np.cumsum(d, 1) / n
    sd = np.sqrt(np.maximum(np.cumsum(d * d, 1) - n * mean**2, 0) / np.maximum(n - 1, 1))
    half = stats.t.ppf(1 - a / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    miss_t = int(((np.abs(mean - mu) >= half) & (n >= 3)).any(1).sum())
    se = math.sqrt(a * (1 - a) / reps)
    assert miss_cs / reps <= a + 2 * se
    assert miss_t / reps > a + 4 * se


def test_decide() -> None:
    assert decide(0.1, 0.5, math.nan, True) == "better"
    assert decide(0.1, 0.5, math.nan, False) == "worse"
    assert decide(-0.5, -0.1, math.nan, False) == "better"
    assert decide(-0.5, -0.1, math.nan, None) == "lower"
    assert decide(-0.2, 0.3, 0.5, True) == "equivalent"
    assert decide(-0.2, 0.6, 0.5, True) == "inconclusive"
    assert decide(-0.2, 0.3, math.nan, True) == "inconclusive"


def test_family_calls_on_constructed_cases() -> None:
    rng = np.random.default_rng(2)
    clear = -10 + rng.normal(0, 1, 12)  # lower is better: a large drop
    null = rng.normal(0, 0.2, 40)  # tight, centred: equivalent within ±2
    noisy = rng.normal(0.5, 5, 6)
    short = [1.0, 2.0]
    flat = [3.0, 3.0, 3.0]
    for sequential in (True, False):
        calls = family_calls([clear, null, noisy, short, flat], [2.0] * 5, [False] * 5, sequential)
        assert [c.decision for c in calls] == ["better", "equivalent", "inconclusive", "inconclusive", "inconclusive"]
        assert calls[0].by == ("confidence sequence" if sequential else "t-test")
        assert calls[1].by == ("confidence sequence" if sequential else "TOST")
        assert "at least 3" in calls[3].why and calls[4].why == "zero spread"
        assert math.isnan(calls[3].p) and math.isnan(calls[3].low)
        # m counts the three testable comparisons; one rejected, so every interval is at α / 2
        assert calls[0].level == pytest.approx(ALPHA / 2)


def test_intervals_agree_with_the_calls_in_every_family() -> None:
    """The property the report rests on: an interval excludes zero exactly when its comparison is called."""
    rng = np.random.default_rng(3)
    called = 0
    for _ in range(60):
        m = int(rng.integers(2, 21))
        diffs = [rng.normal(rng.choice([0.0, 0.5, 2.0]), 1.0, rng.integers(3, 30)) for _ in range(m)]
        for sequential in (True, False):
            calls = family_calls(diffs, [0.5] * m, [True] * m, sequential)
            for c in calls:
                assert (c.low > 0 or c.high < 0) == (c.decision in ("better", "worse"))
                assert (c.p_holm <= ALPHA) == (c.decision in ("better", "worse"))
                called += c.decision == "better"
            r = sum(c.p_holm <= ALPHA for c in calls)
            assert all(c.level == pytest.approx(ALPHA / max(1, m - r)) for c in calls)
    assert called > 20


def test_holm_matches_the_step_down_definition() -> None:
    p = [0.01, 0.04, 0.03, math.nan, 0.005]
    assert np.allclose(holm(p)[[0, 1, 2, 4]], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(holm(p)[3])


def test_seeds_needed_is_the_first_n_that_would_decide() -> None:
    level = ALPHA / 20
    k = seeds_needed(1.0, 1.0, 3, 20)
    assert k is not None and halfwidth_factor(k, level) < 1.0 and halfwidth_factor(k - 1, level) >= 1.0
    assert seeds_needed(2.0, 1.0, 3, 20) < k < seeds_needed(0.5, 1.0, 3, 20)
    assert seeds_needed(0.5, 1.0, 3, 20, sequential=False) < seeds_needed(0.5, 1.0, 3, 20)
    assert seeds_needed(0.0, 1.0, 3, 20) is None  # no effect and no margin: never decided
    assert seeds_needed(0.0, 1.0, 3, 20, margin=1.0) is not None  # but equivalence within ±1 sd is reachable
