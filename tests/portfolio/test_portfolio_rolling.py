"""Walk-forward targets use data <= t only and summarise fallbacks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.portfolio import (
    OptimiserSettings,
    PortfolioConstraints,
    SizingSettings,
    per_bar_returns,
    rolling_optimise,
)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=6, n_clusters=2, n_bars=160, timeframe="1d", seed=11)


def _settings() -> OptimiserSettings:
    return OptimiserSettings(cov_window_bars=40, periods_per_year=365)


def test_weights_at_t_do_not_change_when_later_data_is_removed(market) -> None:
    close, scores = market.close_panel(), market.signal
    cons = PortfolioConstraints(max_position_weight=0.4, no_trade_band=0.02, community_cap=0.7)
    times = close.index[35:80]
    full = rolling_optimise(close, times, scores, _settings(), cons, communities=market.clusters)
    cut = close.index[60]
    short = rolling_optimise(close.loc[:cut], times[times <= cut], scores.loc[:cut], _settings(), cons,
                             communities=market.clusters)
    pd.testing.assert_frame_equal(short.weights, full.weights.loc[:cut])


def test_decisions_before_a_full_covariance_window_are_skipped(market) -> None:
    close = market.close_panel()
    res = rolling_optimise(close, close.index[30:50], market.signal, _settings(), PortfolioConstraints())
    assert res.weights.index[0] == close.index[40]
    assert len(res.weights) == 10
    np.testing.assert_allclose(res.weights.sum(axis=1).to_numpy()[res.diagnostics["fallback"].isna().to_numpy()],
                               0.98, atol=1e-6)


def test_vol_target_sizing_scales_each_decision_to_the_target(market) -> None:
    close = market.close_panel()
    sizing = SizingSettings(mode="vol_target", target_volatility=0.05, max_leverage=1.0)
    res = rolling_optimise(close, close.index[40:45], market.signal, _settings(), PortfolioConstraints(), sizing)
    d = res.diagnostics
    np.testing.assert_allclose((d["expected_volatility"] * d["exposure_scale"]).to_numpy(), 0.05, rtol=1e-9)
    np.testing.assert_allclose(res.weights.sum(axis=1).to_numpy(), 0.98 * d["exposure_scale"].to_numpy())


def test_repeated_fallbacks_are_logged_once_as_a_count(market, caplog: pytest.LogCaptureFixture) -> None:
    close = market.close_panel()
    negative = -market.signal.abs() - 1.0
    with caplog.at_level(logging.WARNING):
        res = rolling_optimise(close, close.index[40:50], negative, _settings(), PortfolioConstraints())
    assert res.fallback_counts() == {"all_nonpositive_expected_returns": 10}
    lines = [r for r in caplog.records if "fallback[all_nonpositive_expected_returns]" in r.getMessage()]
    assert len(lines) == 1 and "10 of 10" in lines[0].getMessage()
    assert (res.weights == 0).all().all()


def test_per_bar_returns_carry_the_last_close_over_a_gap() -> None:
    close = pd.DataFrame({"a": [np.nan, 100.0, np.nan, 110.0]})
    np.testing.assert_allclose(per_bar_returns(close)["a"].to_numpy()[1:], [np.nan, 0.0, 0.1], equal_nan=True)


def test_drawdown_sizing_uses_a_model_probability_frame_when_given(market) -> None:
    close = market.close_panel()
    p_dd = pd.DataFrame(0.4, index=close.index, columns=close.columns)
    sizing = SizingSettings(mode="drawdown", drawdown_probability_budget=0.2, max_leverage=1.0)
    res = rolling_optimise(close, close.index[40:44], market.signal, _settings(), PortfolioConstraints(), sizing,
                           drawdown_probability=p_dd)
    np.testing.assert_allclose(res.diagnostics["exposure_scale"].to_numpy(), 0.5)
    np.testing.assert_allclose(res.weights.sum(axis=1).to_numpy(), 0.98 * 0.5, atol=1e-6)


def test_sizing_never_eats_the_cash_buffer(market) -> None:
    close = market.close_panel()
    sizing = SizingSettings(mode="vol_target", target_volatility=5.0, max_leverage=1.0)  # asks for far more
    res = rolling_optimise(close, close.index[40:43], market.signal, _settings(),
                           PortfolioConstraints(cash_buffer=0.05), sizing)
    np.testing.assert_allclose(res.weights.sum(axis=1).to_numpy(), 0.95, atol=1e-9)
