"""The optimiser respects its caps, matches PyPortfolioOpt, and takes logged fallbacks on degenerate input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pypfopt import EfficientFrontier, risk_models
from sklearn.covariance import ledoit_wolf

from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.portfolio import (
    OptimiserSettings,
    PortfolioConstraints,
    expected_returns_from_scores,
    historical_expected_returns,
    ledoit_wolf_covariance,
    optimise_weights,
)
from graphwiz_trader.portfolio.estimates import ledoit_wolf_array
from graphwiz_trader.portfolio.optimiser import optimise_window

PPY = 8760.0
TOL = 1e-6


def _returns(n_bars: int = 400, n_assets: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    factor = rng.normal(0, 0.004, (n_bars, 1))
    idio = rng.normal(0, 0.003, (n_bars, n_assets)) * np.linspace(0.5, 2.0, n_assets)
    return pd.DataFrame(factor + idio, columns=[f"A{i}/USDT" for i in range(n_assets)])


def _scores(n_assets: int = 8, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(0, 1, n_assets), index=[f"A{i}/USDT" for i in range(n_assets)])


def _settings(**kw: object) -> OptimiserSettings:
    return OptimiserSettings(periods_per_year=PPY, cov_window_bars=400, **kw)


@pytest.mark.parametrize("method", ["max_sharpe", "min_volatility", "efficient_risk", "hrp"])
def test_every_method_respects_position_cap_and_invests_one_minus_cash_buffer(method: str) -> None:
    cons = PortfolioConstraints(max_position_weight=0.2, cash_buffer=0.05)
    res = optimise_weights(_returns(), _scores(), _settings(method=method, target_volatility=0.6), cons)
    assert res.fallbacks == ()
    assert res.weights.sum() == pytest.approx(0.95, abs=TOL)
    assert res.weights.max() <= 0.2 + TOL
    assert res.weights.min() >= -TOL


def test_community_cap_limits_the_summed_weight_of_each_community() -> None:
    comm = {f"A{i}/USDT": i % 2 for i in range(8)}
    cons = PortfolioConstraints(max_position_weight=0.4, cash_buffer=0.0, community_cap=0.55)
    res = optimise_weights(_returns(), _scores(), _settings(), cons, communities=comm)
    sums = res.weights.groupby(pd.Series(comm)).sum()
    assert sums.max() <= 0.55 + TOL
    assert res.weights.sum() == pytest.approx(1.0, abs=TOL)


def test_long_short_keeps_net_one_minus_buffer_and_gross_under_cap() -> None:
    cons = PortfolioConstraints(max_position_weight=0.3, long_short=True, max_gross_leverage=1.5, cash_buffer=0.02)
    res = optimise_weights(_returns(), _scores(), _settings(), cons)
    assert res.weights.sum() == pytest.approx(0.98, abs=TOL)
    assert res.weights.abs().sum() <= 1.5 + TOL
    assert res.weights.abs().max() <= 0.3 + TOL
    assert (res.weights < -1e-4).any()


def test_max_sharpe_equals_pyportfolioopt_called_directly_scaled_by_the_cash_buffer() -> None:
    r, s = _returns(), _scores()
    cons = PortfolioConstraints(max_position_weight=0.3, cash_buffer=0.1)
    res = optimise_weights(r, s, _settings(), cons)
    cov = risk_models.CovarianceShrinkage(r, returns_data=True, frequency=PPY).ledoit_wolf()
    mu = expected_returns_from_scores(s, cov, 0.05, PPY)
    ef = EfficientFrontier(mu, cov, weight_bounds=(0, 0.3 / 0.9))
    direct = pd.Series(ef.max_sharpe()) * 0.9
    np.testing.assert_allclose(res.weights.to_numpy(), direct.reindex(res.weights.index).to_numpy(), atol=1e-5)


def test_ledoit_wolf_equals_pyportfolioopt_covariance_shrinkage() -> None:
    r = _returns()
    cov, delta = ledoit_wolf_covariance(r, PPY)
    shrink = risk_models.CovarianceShrinkage(r, returns_data=True, frequency=PPY)
    ref = shrink.ledoit_wolf()
    np.testing.assert_allclose(cov.to_numpy(), ref.to_numpy(), rtol=1e-12, atol=1e-15)
    assert delta == pytest.approx(shrink.delta)


def test_score_mapping_is_ic_times_sigma_times_score_over_rms() -> None:
    cov = pd.DataFrame(np.diag([0.04, 0.09, 0.01]) * 100.0, index=list("abc"), columns=list("abc"))
    scores = pd.Series([2.0, -1.0, 0.0], index=list("abc"))
    mu = expected_returns_from_scores(scores, cov, ic=0.1, periods_per_year=100.0)
    rms = np.sqrt((4 + 1 + 0) / 3)
    expected = 100.0 * 0.1 * np.array([0.2, 0.3, 0.1]) * np.array([2.0, -1.0, 0.0]) / rms
    np.testing.assert_allclose(mu.to_numpy(), expected, rtol=1e-12)


def test_historical_expected_returns_are_shrunk_toward_zero() -> None:
    r = pd.DataFrame({"a": [0.01, 0.03], "b": [-0.02, 0.0]})
    mu = historical_expected_returns(r, periods_per_year=10.0, shrinkage=0.25)
    np.testing.assert_allclose(mu.to_numpy(), [0.75 * 0.02 * 10, 0.75 * -0.01 * 10], rtol=1e-12)


def test_all_negative_scores_fall_back_to_cash_and_log_it(caplog: pytest.LogCaptureFixture) -> None:
    neg = -_scores().abs() - 0.1
    with caplog.at_level(logging.WARNING, logger="graphwiz_trader.portfolio.optimiser"):
        res = optimise_weights(_returns(), neg, _settings(), PortfolioConstraints())
    assert res.fallbacks == ("all_nonpositive_expected_returns",)
    assert res.method == "cash"
    assert (res.weights == 0).all()
    assert "fallback[all_nonpositive_expected_returns]" in caplog.text


def test_all_negative_scores_can_fall_back_to_min_volatility(caplog: pytest.LogCaptureFixture) -> None:
    neg = -_scores().abs() - 0.1
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(_returns(), neg, _settings(all_negative_fallback="min_volatility"),
                               PortfolioConstraints(cash_buffer=0.02))
    assert res.method == "min_volatility"
    assert res.weights.sum() == pytest.approx(0.98, abs=TOL)
    assert "fallback[all_nonpositive_expected_returns]" in caplog.text


def test_singular_covariance_gets_a_logged_ridge_and_valid_weights(caplog: pytest.LogCaptureFixture) -> None:
    names = ["x", "y", "z"]
    cov = pd.DataFrame([[0.04, 0.04, 0.0], [0.04, 0.04, 0.0], [0.0, 0.0, 0.09]], index=names, columns=names)
    r = pd.DataFrame(np.zeros((10, 3)) + 1e-3, columns=names)
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(r, pd.Series([1.0, 0.5, 0.8], index=names), _settings(),
                               PortfolioConstraints(max_position_weight=0.6, cash_buffer=0.0), covariance=cov)
    assert "singular_covariance" in res.fallbacks
    assert "fallback[singular_covariance]" in caplog.text
    assert res.weights.sum() == pytest.approx(1.0, abs=TOL)
    assert res.weights.max() <= 0.6 + TOL


def test_flat_prices_give_zero_covariance_and_capacity_equal_weight(caplog: pytest.LogCaptureFixture) -> None:
    r = pd.DataFrame(np.zeros((50, 4)), columns=list("abcd"))
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(r, pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcd")), _settings(),
                               PortfolioConstraints(max_position_weight=0.5, cash_buffer=0.0))
    assert res.fallbacks == ("singular_covariance",)
    np.testing.assert_allclose(res.weights.to_numpy(), [0.25] * 4)
    assert "all zero" in caplog.text


def test_single_asset_is_held_at_its_cap(caplog: pytest.LogCaptureFixture) -> None:
    r = _returns(n_assets=3)
    r.iloc[5, 1:] = np.nan  # only A0 has a complete window
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(r, _scores(3).abs(), _settings(),
                               PortfolioConstraints(max_position_weight=0.4, cash_buffer=0.0))
    assert res.fallbacks == ("single_asset",)
    assert res.weights.to_dict() == pytest.approx({"A0/USDT": 0.4, "A1/USDT": 0.0, "A2/USDT": 0.0})
    assert "fallback[single_asset]" in caplog.text


def test_infeasible_position_cap_invests_at_capacity_and_keeps_the_rest_in_cash(
        caplog: pytest.LogCaptureFixture) -> None:
    r = _returns(n_assets=3)
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(r, _scores(3).abs(), _settings(),
                               PortfolioConstraints(max_position_weight=0.2, cash_buffer=0.0))
    assert res.fallbacks == ("infeasible_caps",)
    np.testing.assert_allclose(res.weights.to_numpy(), [0.2, 0.2, 0.2])
    assert "fallback[infeasible_caps]" in caplog.text


def test_infeasible_community_cap_fills_each_community_evenly_to_its_cap(caplog: pytest.LogCaptureFixture) -> None:
    comm = {"A0/USDT": 0, "A1/USDT": 0, "A2/USDT": 1, "A3/USDT": 1}
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(_returns(n_assets=4), _scores(4), _settings(),
                               PortfolioConstraints(max_position_weight=0.5, cash_buffer=0.0, community_cap=0.3),
                               communities=comm)
    assert res.fallbacks == ("infeasible_caps",)
    np.testing.assert_allclose(res.weights.to_numpy(), [0.15, 0.15, 0.15, 0.15])


def test_empty_universe_is_all_cash(caplog: pytest.LogCaptureFixture) -> None:
    r = pd.DataFrame(np.nan, index=range(10), columns=["a", "b"])
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(r, pd.Series([1.0, 1.0], index=["a", "b"]), _settings(), PortfolioConstraints())
    assert res.fallbacks == ("empty_universe",)
    assert (res.weights == 0).all()


def test_unreachable_efficient_risk_target_uses_min_volatility(caplog: pytest.LogCaptureFixture) -> None:
    cons = PortfolioConstraints(max_position_weight=0.5, cash_buffer=0.0)
    with caplog.at_level(logging.WARNING):
        res = optimise_weights(_returns(), _scores(), _settings(method="efficient_risk", target_volatility=0.001), cons)
    minvol = optimise_weights(_returns(), _scores(), _settings(method="min_volatility"), cons)
    assert res.fallbacks == ("efficient_risk_unreachable",)
    np.testing.assert_allclose(res.weights.to_numpy(), minvol.weights.to_numpy(), atol=1e-6)


def test_no_trade_band_keeps_current_weights_when_the_change_is_small() -> None:
    r, s = _returns(), _scores()
    cons = PortfolioConstraints(max_position_weight=0.3, cash_buffer=0.0)
    target = optimise_weights(r, s, _settings(), cons).weights
    nudged = target.copy()
    nudged.iloc[0] += 0.01
    nudged.iloc[1] -= 0.01
    banded = optimise_weights(r, s, _settings(), cons.model_copy(update={"no_trade_band": 0.05}),
                              current_weights=nudged)
    assert banded.held
    pd.testing.assert_series_equal(banded.weights, nudged.rename("weight"))
    far = optimise_weights(r, s, _settings(), cons.model_copy(update={"no_trade_band": 0.001}),
                           current_weights=nudged)
    assert not far.held


def test_turnover_penalty_reduces_distance_to_current_weights() -> None:
    r = _returns()
    cons = PortfolioConstraints(max_position_weight=0.5, cash_buffer=0.0)
    current = pd.Series(1 / 8, index=r.columns)
    free = optimise_weights(r, None, _settings(method="min_volatility"), cons, current_weights=current)
    pen = optimise_weights(r, None, _settings(method="min_volatility"),
                           cons.model_copy(update={"turnover_penalty": 0.05}), current_weights=current)
    assert (pen.weights - current).abs().sum() < (free.weights - current).abs().sum() - 0.01


def test_turnover_penalty_with_max_sharpe_is_rejected() -> None:
    with pytest.raises(ConfigError, match="no_trade_band"):
        optimise_weights(_returns(), _scores(), _settings(), PortfolioConstraints(turnover_penalty=0.01))


def test_hrp_is_projected_onto_a_binding_cap() -> None:
    cons = PortfolioConstraints(max_position_weight=0.14, cash_buffer=0.0)
    res = optimise_weights(_returns(), None, _settings(method="hrp"), cons)
    assert res.method == "hrp_projected"
    assert res.weights.max() <= 0.14 + TOL
    assert res.weights.sum() == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("band", [0.0, 0.05, 2.0])
def test_the_array_form_gives_what_the_frame_form_gives(band: float) -> None:
    r, s = _returns(), _scores()
    r.iloc[5, 2] = np.nan  # not eligible: a gap in the window
    s.iloc[6] = np.nan  # not eligible: no score
    comm = {f"A{i}/USDT": i % 3 for i in range(8)}
    cons = PortfolioConstraints(max_position_weight=0.35, cash_buffer=0.05, community_cap=0.5, no_trade_band=band)
    current = pd.Series(np.linspace(0.0, 0.2, 8), index=r.columns)
    frame = optimise_weights(r, s.iloc[::-1], _settings(), cons, current_weights=current.iloc[::-1],
                             communities=comm)
    arrays = optimise_window(r.to_numpy(), pd.Index(r.columns), s.to_numpy(), _settings(), cons,
                             current.to_numpy(), comm)
    assert (arrays.method, arrays.fallbacks, arrays.held, arrays.eligible) == \
        (frame.method, frame.fallbacks, frame.held, frame.eligible)
    assert frame.held == (band == 2.0) and len(frame.eligible) == 6
    pd.testing.assert_series_equal(arrays.weights, frame.weights, check_exact=True)
    pd.testing.assert_series_equal(arrays.expected_returns, frame.expected_returns, check_exact=True)
    pd.testing.assert_frame_equal(arrays.covariance, frame.covariance, check_exact=True)


def test_the_array_form_refuses_arrays_that_do_not_match_the_symbols() -> None:
    r = _returns()
    with pytest.raises(DataError, match="scores has 7 columns for 8 symbols"):
        optimise_window(r.to_numpy(), pd.Index(r.columns), np.zeros(7), _settings())
    with pytest.raises(DataError, match="duplicate"):
        optimise_window(r.to_numpy(), pd.Index(["a"] * 8), np.zeros(8), _settings())


@pytest.mark.parametrize("bars,symbols", [(2, 5), (3, 1), (10, 30), (400, 8)])
def test_ledoit_wolf_array_equals_scikit_learn(bars: int, symbols: int) -> None:
    x = np.random.default_rng(bars + symbols).normal(0, 0.01, (bars, symbols)) * np.linspace(0.5, 2.0, symbols)
    ref, ref_delta = ledoit_wolf(x)
    cov, delta = ledoit_wolf_array(x)
    np.testing.assert_allclose(cov, ref, rtol=1e-10, atol=1e-18)
    assert delta == pytest.approx(ref_delta, rel=1e-10, abs=1e-15)
