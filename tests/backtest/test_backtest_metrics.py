"""Metrics equal hand-computed values on tiny series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.metrics import compute_metrics, drawdown_series, sharpe_confidence_interval


def _eq(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="1D", tz="UTC"))


def test_metrics_match_hand_computed_values_on_a_three_bar_series() -> None:
    # returns from 100: +10%, -10%, +10%  -> 110, 99, 108.9
    m = compute_metrics(_eq([110.0, 99.0, 108.9]), periods_per_year=4.0, initial_capital=100.0, n_boot=0)
    # mean 1/30; sample std sqrt(((1/15)^2 + (2/15)^2 + (1/15)^2) / 2) = 0.11547005; x sqrt(4) = 2
    assert m["total_return"] == pytest.approx(0.089)
    assert m["annualised_return"] == pytest.approx(1.089 ** (4 / 3) - 1)  # 0.12039331
    assert m["annualised_volatility"] == pytest.approx(0.23094011)
    assert m["sharpe"] == pytest.approx(0.57735027)
    assert m["sortino"] == pytest.approx((1 / 30) / math.sqrt(0.01 / 3) * 2)  # 1.15470054
    assert m["max_drawdown"] == pytest.approx(-0.1)  # 110 -> 99
    assert m["calmar"] == pytest.approx(1.20393308)
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(2.0)  # (0.1 + 0.1) / 0.1
    assert m["years"] == pytest.approx(0.75)


def test_exposure_turnover_and_cost_drag_are_averages_and_sums() -> None:
    eq = _eq([100.0, 100.0, 100.0, 100.0])
    m = compute_metrics(eq, periods_per_year=4.0, initial_capital=100.0, n_boot=0,
                        gross_exposure=pd.Series([0.0, 1.0, 0.5, 0.5]), turnover=pd.Series([1.0, 0.0, 0.5, 0.5]),
                        costs=pd.Series([0.1, 0.0, 0.2, 0.0]))
    assert m["exposure"] == pytest.approx(0.5)
    assert m["time_in_market"] == pytest.approx(0.75)
    assert m["annual_turnover"] == pytest.approx(2.0)  # 2.0 over 1 year
    assert m["annual_cost_drag"] == pytest.approx(0.003)  # (0.1 + 0.2) / 100 per year
    assert math.isnan(m["sharpe"]) and math.isnan(m["profit_factor"]) and m["max_drawdown"] == 0.0


def test_drawdown_counts_the_initial_capital_as_the_first_peak() -> None:
    dd = drawdown_series(_eq([90.0, 120.0, 60.0]), initial_capital=100.0)
    np.testing.assert_allclose(dd.to_numpy(), [-0.1, 0.0, -0.5])
    assert compute_metrics(_eq([90.0, 95.0]), 252, 100.0, n_boot=0)["max_drawdown"] == pytest.approx(-0.1)


def test_total_loss_annualises_to_minus_one() -> None:
    m = compute_metrics(_eq([50.0, 0.0]), periods_per_year=252.0, initial_capital=100.0, n_boot=0)
    assert m["total_return"] == -1.0 and m["annualised_return"] == -1.0 and m["max_drawdown"] == -1.0


def test_sharpe_bootstrap_interval_brackets_the_point_estimate() -> None:
    r = np.random.default_rng(3).normal(0.001, 0.01, 2000)
    lo, hi = sharpe_confidence_interval(r, 252.0, n_boot=500, seed=1)
    point = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert lo < point < hi
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(252 / 2000), rel=0.3)  # ~ +-1.96 sqrt(P/n)
