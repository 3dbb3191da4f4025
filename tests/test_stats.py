"""The report's statistics against scipy.stats on synthetic values (each interval, each test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ghostsweep.orchestrator.report import stats

A = [92.31, 91.87, 92.64, 92.05, 92.42]
B = [92.70, 92.11, 93.02, 92.35, 92.81]


def test_mean_interval_is_scipys_t_interval() -> None:
    got = stats.mean_interval(A)
    low, high = scipy_stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=scipy_stats.sem(A))
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-10)
    assert stats.mean_interval([92.0]) is None


def test_prediction_interval_widens_by_sqrt_one_plus_one_over_n() -> None:
    got = stats.prediction_interval(A)
    s = np.std(A, ddof=1)
    low, high = scipy_stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=s * math.sqrt(1 + 1 / len(A)))
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-10)
    assert got.halfwidth > stats.mean_interval(A).halfwidth * 2


def test_prediction_interval_covers_a_new_run_95_percent_of_the_time() -> None:
    """The reason it exists: a single run falls outside the CI of a 5-seed mean far more often than 5%."""
    rng = np.random.default_rng(0)
    trials = 4000
    runs = rng.normal(92.0, 0.3, (trials, 6))
    inside_pi = sum(stats.prediction_interval(r[:5]).contains(r[5]) for r in runs) / trials
    inside_ci = sum(stats.mean_interval(r[:5]).contains(r[5]) for r in runs) / trials
    assert 0.93 < inside_pi < 0.97
    assert inside_ci < 0.70


def test_welch_interval_and_p_value_match_scipy() -> None:
    got = stats.welch_interval(stats.Sample.of(A), stats.Sample.of(B))
    expected = scipy_stats.ttest_ind(A, B, equal_var=False)
    ci = expected.confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert got.df == pytest.approx(expected.df, abs=1e-10)


def test_paired_interval_matches_scipy_ttest_rel_on_common_seeds() -> None:
    a, b = dict(enumerate(A)), dict(enumerate(B)) | {9: 50.0}  # seed 9 has no pair: left out
    got = stats.paired_interval(a, b)
    expected = scipy_stats.ttest_rel(A, B)
    ci = expected.confidence_interval(0.95)
    assert got.n == 5 and (got.low, got.high) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert stats.paired_interval({0: 1.0}, {0: 2.0, 1: 3.0}) is None


def test_paired_interval_is_narrower_when_seeds_share_noise() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.5, 8)  # data order noise, common to both models of one seed
    a = {s: 92.0 + shared[s] + rng.normal(0, 0.1) for s in range(8)}
    b = {s: 92.3 + shared[s] + rng.normal(0, 0.1) for s in range(8)}
    paired = stats.paired_interval(a, b)
    welch = stats.welch_interval(stats.Sample.of(list(a.values())), stats.Sample.of(list(b.values())))
    assert paired.halfwidth < welch.halfwidth / 2


def test_difference_prediction_interval_by_simulation() -> None:
    got = stats.difference_prediction_interval(A, B)
    sa, sb = np.std(A, ddof=1), np.std(B, ddof=1)
    se = math.sqrt(sa**2 * (1 + 1 / 5) + sb**2 * (1 + 1 / 5))
    assert got.estimate == pytest.approx(np.mean(A) - np.mean(B))
    assert got.halfwidth == pytest.approx(scipy_stats.t.ppf(0.975, got.df) * se)
    assert 4 <= got.df <= 8  # between one sample's df and both together
    rng = np.random.default_rng(2)  # coverage of a new unpaired pair of runs, equal true variances
    inside = 0
    for _ in range(3000):
        a, b = rng.normal(92.0, 0.3, 6), rng.normal(92.3, 0.3, 6)
        inside += stats.difference_prediction_interval(a[:5], b[:5]).contains(a[5] - b[5])
    assert 0.93 < inside / 3000 < 0.975


def test_best_of_one_is_the_prediction_interval_and_best_of_many_is_higher() -> None:
    one, pi = stats.best_of_interval(A, 1), stats.prediction_interval(A)
    assert (one.low, one.high) == pytest.approx((pi.low, pi.high), abs=0.02)
    five = stats.best_of_interval(A, 5)
    assert five.estimate > one.estimate + 0.2 and five.method.startswith("predictive interval of the best of 5")
    # With many seeds the parameters are known: the median of the max of 5 standard normals is Φ⁻¹(0.5^(1/5)).
    many = np.random.default_rng(3).standard_normal(20_000)
    assert stats.best_of_interval(many, 5).estimate == pytest.approx(scipy_stats.norm.ppf(0.5 ** 0.2), abs=0.03)


def test_seeds_for_halfwidth_is_the_smallest_n_that_reaches_it() -> None:
    n = stats.seeds_for_halfwidth(0.3, 0.2)
    halfwidth = lambda k: scipy_stats.t.ppf(0.975, k - 1) * 0.3 / math.sqrt(k)  # noqa: E731
    assert halfwidth(n) <= 0.2 < halfwidth(n - 1)
    assert stats.seeds_for_halfwidth(None, 0.2) is None
    assert stats.seeds_for_halfwidth(5.0, 0.01, max_seeds=100) is None
