"""Fold statistics match independent computations: hand loops for Newey-West and the autocorrelation, an exact
enumeration for the moving-block bootstrap; no bootstrap interval below 10 folds."""

import math

import numpy as np
import pytest
from scipy import stats

from graphwiz_trader.research.stats import (
    block_bootstrap_interval,
    block_length,
    fold_statistics,
    hac_interval,
    lag1_autocorrelation,
    moving_block_bootstrap_means,
    newey_west_lags,
    newey_west_se,
)

FOLDS = np.array([1.2, 0.8, 1.5, 2.1, 1.9, 0.4, -0.3, 0.2, 1.1, 1.7, 2.4, 1.3])


def newey_west_by_double_loop(x, lags):
    """Var(mean) = (1/n^2) sum_t sum_s w(|t-s|) (x_t - m)(x_s - m), Bartlett w(l) = 1 - l/(L+1) for l <= L."""
    n = len(x)
    m = sum(x) / n
    total = 0.0
    for t in range(n):
        for s in range(n):
            lag = abs(t - s)
            if lag <= lags:
                total += (1 - lag / (lags + 1)) * (x[t] - m) * (x[s] - m)
    return math.sqrt(total / n**2)


@pytest.mark.parametrize("lags", [0, 1, 2, 3])
def test_newey_west_equals_the_double_loop(lags):
    assert newey_west_se(FOLDS, lags) == pytest.approx(newey_west_by_double_loop(list(FOLDS), lags), rel=1e-12)


def test_the_lag_rule_and_the_hac_interval():
    assert [newey_west_lags(n) for n in (2, 3, 4, 10, 12, 40, 100)] == [0, 1, 1, 2, 2, 3, 4]
    lo, hi = hac_interval(FOLDS)
    half = stats.t.ppf(0.975, len(FOLDS) - 1) * newey_west_by_double_loop(list(FOLDS), 2)
    assert (lo, hi) == pytest.approx((FOLDS.mean() - half, FOLDS.mean() + half), rel=1e-12)


def test_lag1_autocorrelation_equals_a_hand_loop():
    x = list(FOLDS)
    m = sum(x) / len(x)
    num = sum((x[t] - m) * (x[t + 1] - m) for t in range(len(x) - 1))
    den = sum((v - m) ** 2 for v in x)
    assert lag1_autocorrelation(FOLDS) == pytest.approx(num / den, rel=1e-12)
    assert lag1_autocorrelation(np.arange(20.0)) > 0.8  # a trend: strongly dependent folds
    assert math.isnan(lag1_autocorrelation([1.0, 2.0]))


def test_the_block_bootstrap_interval_matches_the_exact_resampling_distribution():
    # n = 12 folds -> blocks of round(12^(1/3)) = 2, 6 blocks per resample drawn from 11 overlapping blocks:
    # the exact distribution of the resampled mean has 11^6 equally likely outcomes.
    assert block_length(12) == 2
    block_means = np.array([FOLDS[j:j + 2].mean() for j in range(11)])
    sums = np.zeros(1)
    for _ in range(6):
        sums = np.add.outer(sums, block_means).ravel()
    exact = sums / 6
    lo, hi = block_bootstrap_interval(FOLDS, n_resamples=200_000, seed=3)
    assert lo == pytest.approx(np.quantile(exact, 0.025), abs=0.01)
    assert hi == pytest.approx(np.quantile(exact, 0.975), abs=0.01)
    means = moving_block_bootstrap_means(FOLDS, n_resamples=200_000, seed=3)
    assert means.mean() == pytest.approx(exact.mean(), abs=5 * exact.std() / math.sqrt(200_000))
    assert means.var() == pytest.approx(exact.var(), rel=0.02)


def test_the_block_bootstrap_keeps_blocks_of_consecutive_folds():
    x = np.tile([0.0, 100.0], 6)  # every block of 2 consecutive folds averages exactly 50
    assert np.all(moving_block_bootstrap_means(x, n_resamples=1000, seed=0, block=2) == 50.0)
    assert moving_block_bootstrap_means(x, n_resamples=1000, seed=0, block=1).std() > 5  # i.i.d. draws vary
    assert block_bootstrap_interval(FOLDS, seed=1) == block_bootstrap_interval(FOLDS, seed=1)  # seeded


def test_fewer_than_ten_folds_get_no_bootstrap_interval_and_the_reason():
    st = fold_statistics(FOLDS[:9], seed=0)
    assert st["bootstrap_ci"] is None and st["bootstrap_block"] is None
    assert "9 folds < 10" in st["bootstrap_note"]
    assert block_bootstrap_interval(FOLDS[:9]) is None
    full = fold_statistics(FOLDS, seed=0)
    assert full["bootstrap_ci"] == block_bootstrap_interval(FOLDS, seed=0)
    assert (full["ci_low"], full["ci_high"]) == hac_interval(FOLDS)
    assert full["lag1_autocorr"] == lag1_autocorrelation(FOLDS) and full["hac_lags"] == 2
    assert full["std"] == pytest.approx(np.std(FOLDS, ddof=1))


def test_nan_folds_are_left_out():
    x = np.array([1.0, np.nan, 2.0, 3.0])
    assert fold_statistics(x)["n"] == 3 and fold_statistics(x)["mean"] == 2.0
    assert all(math.isnan(v) for v in hac_interval([1.0]))  # one value: no interval
