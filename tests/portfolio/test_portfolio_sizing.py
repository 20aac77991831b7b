"""Sizing scales and hedge ratios equal their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.portfolio import (
    SizingSettings,
    drawdown_probability_scale,
    drawdown_risk_scale,
    expected_max_drawdown,
    exposure_scale,
    fractional_kelly_weights,
    hedge_ratio,
    kelly_scale,
    portfolio_hedge_weight,
    vol_target_scale,
)

COV = pd.DataFrame([[0.04, 0.0], [0.0, 0.09]], index=["a", "b"], columns=["a", "b"])
W = pd.Series([0.5, 0.5], index=["a", "b"])


def test_vol_target_scale_is_target_over_predicted_vol() -> None:
    vol = math.sqrt(0.25 * 0.04 + 0.25 * 0.09)  # 0.18028
    assert vol_target_scale(W, COV, 0.09, max_leverage=1.0) == pytest.approx(0.09 / vol)
    assert vol_target_scale(W, COV, 0.9, max_leverage=1.5) == pytest.approx(1.5)  # capped by leverage


def test_expected_max_drawdown_is_sqrt_half_pi_sigma_sqrt_t() -> None:
    assert expected_max_drawdown(0.5, horizon_bars=8760, periods_per_year=8760) == pytest.approx(0.62666, abs=1e-5)
    assert expected_max_drawdown(0.5, 2190, 8760) == pytest.approx(math.sqrt(math.pi / 2) * 0.5 * 0.5)


def test_drawdown_risk_scale_fits_the_budget() -> None:
    assert drawdown_risk_scale(0.4, 0.1, W, max_leverage=1.0) == pytest.approx(0.25)
    assert drawdown_risk_scale(0.05, 0.1, W, max_leverage=1.0) == pytest.approx(1.0)


def test_drawdown_probability_scale_divides_the_budget_by_the_weighted_probability() -> None:
    w = pd.Series([0.6, 0.2, 0.0], index=["a", "b", "c"])
    p = pd.Series({"a": 0.5, "b": 0.1, "c": 0.9})
    # weighted p = (0.6 * 0.5 + 0.2 * 0.1) / 0.8 = 0.4; budget 0.2 -> scale 0.5
    assert drawdown_probability_scale(w, p, 0.2, max_leverage=1.0) == pytest.approx(0.5)
    assert drawdown_probability_scale(w, p.drop("b"), 0.2) == pytest.approx(0.2 / ((0.3 + 0.2) / 0.8))
    s = SizingSettings(mode="drawdown", drawdown_probability_budget=0.2)
    assert exposure_scale(w, None, None, s, 365, drawdown_probability=p) == pytest.approx(0.5)


def test_fractional_kelly_scale_is_fraction_times_mu_over_variance() -> None:
    mu = pd.Series([0.02, 0.04], index=["a", "b"])
    var = 0.25 * 0.04 + 0.25 * 0.09
    assert kelly_scale(W, mu, COV, fraction=0.5, max_leverage=10.0) == pytest.approx(0.5 * 0.03 / var)
    assert kelly_scale(W, mu, COV, fraction=0.5, max_leverage=0.3) == pytest.approx(0.3)
    assert kelly_scale(W, -mu, COV, fraction=0.5) == 0.0


def test_fractional_kelly_weights_are_capped_then_scaled_to_the_gross_cap() -> None:
    mu = pd.Series([0.02, 0.045], index=["a", "b"])
    w = fractional_kelly_weights(mu, COV, fraction=0.5, max_position_weight=10.0, max_gross_leverage=10.0)
    np.testing.assert_allclose(w.to_numpy(), [0.5 * 0.02 / 0.04, 0.5 * 0.045 / 0.09])  # 0.25, 0.25
    capped = fractional_kelly_weights(mu * 4, COV, fraction=0.5, max_position_weight=0.8, max_gross_leverage=1.0)
    np.testing.assert_allclose(capped.to_numpy(), [0.5, 0.5])  # (1.0, 1.0) -> (0.8, 0.8) -> gross 1.0


def test_exposure_scale_dispatches_on_the_sizing_mode() -> None:
    mu = pd.Series([0.02, 0.04], index=["a", "b"])
    assert exposure_scale(W, COV, mu, SizingSettings(), 365) == 1.0
    s = SizingSettings(mode="vol_target", target_volatility=0.09)
    assert exposure_scale(W, COV, mu, s, 365) == pytest.approx(vol_target_scale(W, COV, 0.09))


def test_hedge_ratio_recovers_a_known_beta_point_in_time() -> None:
    rng = np.random.default_rng(0)
    h = pd.Series(rng.normal(0, 0.01, 300))
    a = 1.7 * h + rng.normal(0, 0.001, 300)
    beta = hedge_ratio(a, h, window=100)
    assert beta.iloc[:99].isna().all()
    assert beta.iloc[-1] == pytest.approx(1.7, abs=0.05)
    pd.testing.assert_series_equal(hedge_ratio(a.iloc[:150], h.iloc[:150], 100), beta.iloc[:150])
    assert portfolio_hedge_weight(pd.Series([0.6, 0.4], index=["x", "y"]), pd.Series({"x": 1.5, "y": 0.5})) == \
        pytest.approx(-1.1)
