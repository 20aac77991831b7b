"""Max-Sharpe from one reused parameterised problem equals PyPortfolioOpt's, decision by decision.

Solver tolerances are set explicitly on both sides. The reused problem solves with the optimiser's
``fast_sharpe.CLARABEL_TOLERANCES`` (gap and feasibility 1e-10); the PyPortfolioOpt reference with
1e-12. With Clarabel's defaults (1e-8) PyPortfolioOpt's max-Sharpe weights sit up to ~2e-5 from its own
1e-12 solution on daily crypto covariances, and at 1e-10 still up to 2.6e-6 in the long-short case with
a gross cap (its ``quad_form`` objective is solved less accurately than our factored one, which is
within 1.3e-7 there), so a 1e-6 comparison needs the tighter reference.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from pypfopt import EfficientFrontier, risk_models

from graphwiz_trader.backtest import MarketPanel
from graphwiz_trader.backtest.scores import cross_sectional_reversal
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.portfolio import (
    OptimiserSettings,
    PortfolioConstraints,
    expected_returns_from_scores,
    fast_sharpe,
    optimise_weights,
    rolling_optimise,
)
from graphwiz_trader.portfolio.fast_sharpe import (
    FastSharpeError,
    ParameterisedMaxSharpe,
    SharpeStructure,
    cached_structures,
    max_sharpe_problem,
    max_sharpe_weights,
)

TOL = 1e-6
PPY = 365.0
WINDOW = 60
DAILY = Path(os.environ.get("GRAPHWIZ_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) \
    / "binance_spot_2020_2024"
REFERENCE_TOLERANCES = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}
MAJORS = ("BTC", "ETH", "BNB", "XRP", "ADA", "DOGE", "LTC", "LINK", "TRX", "BCH", "ETC", "EOS", "XLM", "XTZ",
          "ATOM", "ALGO", "FET", "FTM", "HBAR", "STX")

CASES = {
    "long_only_caps": PortfolioConstraints(max_position_weight=0.15, cash_buffer=0.02),
    "community_caps": PortfolioConstraints(max_position_weight=0.3, cash_buffer=0.02, community_cap=0.35),
    "long_short_gross_cap": PortfolioConstraints(max_position_weight=0.25, cash_buffer=0.02, long_short=True,
                                                 max_gross_leverage=1.4),
}


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    fast_sharpe.clear_cache()


def _settings(**kw: object) -> OptimiserSettings:
    return OptimiserSettings(method="max_sharpe", cov_window_bars=WINDOW, periods_per_year=PPY, **kw)


def _synthetic() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object], str]:
    m = generate_synthetic_market(n_assets=12, n_clusters=3, n_bars=460, timeframe="1d", seed=3)
    return m.close_panel(), m.signal, dict(m.clusters), "synthetic"


def _real() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object], str]:
    if not (DAILY / "1d").is_dir():
        pytest.skip(f"real daily candles not found at {DAILY / '1d'} (see ../shared/data/README.md)")
    from graphwiz_trader.data.sources import load_universe

    bars = load_universe(DAILY, "freqtrade", "1d", [f"{b}/USDT" for b in MAJORS], start="2020-05-11",
                         end="2024-05-10").bars
    close = MarketPanel.from_bars(bars).close_frame()
    communities: dict[str, object] = {s: i % 4 for i, s in enumerate(close.columns)}
    return close, cross_sectional_reversal(close, 1), communities, "real"


def _pyportfolioopt(window: pd.DataFrame, scores: pd.Series, cons: PortfolioConstraints,
                    communities: dict[str, object]) -> pd.Series:
    """Final weights from PyPortfolioOpt called directly on one decision's window (the reference)."""
    ok = [s for s in window.columns if window[s].notna().all() and np.isfinite(scores[s])]
    cov = risk_models.CovarianceShrinkage(window[ok], returns_data=True, frequency=PPY).ledoit_wolf()
    mu = expected_returns_from_scores(scores[ok], cov, 0.05, PPY)
    invested = 1.0 - cons.cash_buffer
    cap = min(1.0, cons.max_position_weight / invested)
    ef = EfficientFrontier(mu, cov, weight_bounds=(-cap if cons.long_short else 0.0, cap), solver="CLARABEL",
                           solver_options=dict(REFERENCE_TOLERANCES))
    if cons.community_cap is not None:
        cc = cons.community_cap / invested
        comm = {s: communities[s] for s in ok}
        ef.add_sector_constraints(comm, {}, {c: cc for c in set(comm.values())})
    if cons.long_short:
        ef.add_constraint(lambda w: cp.norm(w, 1) <= cons.max_gross_leverage / invested)
    ef.max_sharpe()
    return (pd.Series(ef.weights, index=mu.index) * invested).reindex(window.columns, fill_value=0.0)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("market", [_synthetic, _real], ids=["synthetic", "real"])
def test_rolling_max_sharpe_equals_pyportfolioopt_on_a_sample_of_dates(case: str, market) -> None:
    close, scores, communities, _ = market()
    cons = CASES[case]
    times = close.index[WINDOW::9]
    rolled = rolling_optimise(close, times, scores, _settings(), cons, communities=communities)
    solved = rolled.diagnostics.index[(rolled.diagnostics["method"] == "max_sharpe")
                                      & rolled.diagnostics["fallback"].isna()]
    assert len(solved) >= 0.8 * len(rolled.weights)  # the comparison covers most decisions
    sample = solved[::3]
    returns = close.ffill() / close.ffill().shift(1) - 1.0
    worst, bound = 0.0, {"cap": 0, "community": 0, "gross": 0}
    for t in sample:
        p = close.index.get_loc(t)
        ref = _pyportfolioopt(returns.iloc[p - WINDOW + 1: p + 1], scores.loc[t], cons, communities)
        got = rolled.weights.loc[t]
        worst = max(worst, float((got - ref).abs().max()))
        bound["cap"] += bool(got.abs().max() > cons.max_position_weight - 1e-6)
        if cons.community_cap is not None:
            bound["community"] += bool(got.groupby(pd.Series(communities)).sum().max() > cons.community_cap - 1e-6)
        bound["gross"] += bool(got.abs().sum() > cons.max_gross_leverage - 1e-6)
    assert worst <= TOL, f"max |weight difference| {worst:.3g} over {len(sample)} dates"
    # the constraints under test bind on some sampled dates, so a wrong constraint could not pass
    if case == "long_only_caps":
        assert bound["cap"] > 0
    if cons.community_cap is not None:
        assert bound["community"] > 0
    if cons.long_short:
        assert bound["gross"] > 0


def _cov_mu(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.03, (90, n)) * rng.uniform(0.5, 2.0, n) + rng.normal(0, 0.02, (90, 1))
    return np.cov(x.T) * PPY, rng.normal(0.2, 0.6, n)


def _reference(cov: np.ndarray, mu: np.ndarray, lower: float, upper: float) -> np.ndarray:
    ef = EfficientFrontier(mu, cov, weight_bounds=(lower, upper), solver="CLARABEL",
                           solver_options=dict(REFERENCE_TOLERANCES))
    ef.max_sharpe()
    return np.asarray(ef.weights)


def test_a_reused_problem_gives_the_same_weights_as_a_fresh_one_bit_for_bit() -> None:
    st = SharpeStructure(8, 0.0, 0.3)
    data = [_cov_mu(seed, 8) for seed in range(6)]
    reused = [max_sharpe_weights(cov, mu, 0.0, st) for cov, mu in data]
    assert max_sharpe_problem(st).solves == 6 and cached_structures() == (st,)
    for (cov, mu), w in zip(data, reused):
        np.testing.assert_array_equal(w, ParameterisedMaxSharpe(st).solve(cov, mu))
        np.testing.assert_allclose(w, _reference(cov, mu, 0.0, 0.3), rtol=0, atol=TOL)
    # and the order of earlier solves does not matter
    again = [max_sharpe_weights(cov, mu, 0.0, st) for cov, mu in reversed(data)][::-1]
    np.testing.assert_array_equal(np.array(again), np.array(reused))


def test_a_structure_change_gets_its_own_problem_and_an_equal_structure_reuses_it() -> None:
    six, seven = SharpeStructure(6, 0.0, 0.4), SharpeStructure(7, 0.0, 0.4)
    (c6, m6), (c7, m7) = _cov_mu(1, 6), _cov_mu(2, 7)
    w6 = max_sharpe_weights(c6, m6, 0.0, six)
    w7 = max_sharpe_weights(c7, m7, 0.0, seven)
    assert cached_structures() == (six, seven)
    assert max_sharpe_problem(six) is not max_sharpe_problem(seven)
    assert max_sharpe_problem(SharpeStructure(6, 0.0, 0.4)) is max_sharpe_problem(six)
    np.testing.assert_allclose(w6, _reference(c6, m6, 0.0, 0.4), rtol=0, atol=TOL)
    np.testing.assert_allclose(w7, _reference(c7, m7, 0.0, 0.4), rtol=0, atol=TOL)
    with pytest.raises(FastSharpeError, match="do not fit"):
        max_sharpe_problem(six).solve(c7, m7)


def test_a_rolling_run_compiles_one_problem_per_universe_size() -> None:
    m = generate_synthetic_market(n_assets=6, n_clusters=2, n_bars=200, timeframe="1d", seed=11)
    close = m.close_panel().copy()
    close.iloc[:120, 5] = np.nan  # listed late: 5 eligible symbols first, then 6
    rolled = rolling_optimise(close, close.index[WINDOW:], m.signal, _settings(),
                              PortfolioConstraints(max_position_weight=0.4))
    sizes = sorted(s.n_assets for s in cached_structures())
    assert sizes == [5, 6]
    solved = int((rolled.diagnostics["method"] == "max_sharpe").sum())
    assert sum(max_sharpe_problem(s).solves for s in cached_structures()) == solved > 100


def test_the_rolling_weights_do_not_depend_on_the_first_decision_time() -> None:
    m = generate_synthetic_market(n_assets=8, n_clusters=2, n_bars=220, timeframe="1d", seed=4)
    close, cons = m.close_panel(), PortfolioConstraints(max_position_weight=0.3)
    full = rolling_optimise(close, close.index[WINDOW:], m.signal, _settings(), cons)
    late = rolling_optimise(close, close.index[150:], m.signal, _settings(), cons)
    pd.testing.assert_frame_equal(late.weights, full.weights.loc[late.weights.index], check_exact=True)


def test_a_non_optimal_fast_solve_falls_back_to_pyportfolioopt_not_to_a_fallback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    returns = pd.DataFrame(rng.normal(0.001, 0.03, (WINDOW, 6)), columns=[f"A{i}" for i in range(6)])
    scores = pd.Series(rng.normal(0, 1, 6), index=returns.columns)
    cons = PortfolioConstraints(max_position_weight=0.35)
    peer = optimise_weights(returns, scores, _settings(reuse_max_sharpe_problem=False), cons)

    def not_optimal(self: ParameterisedMaxSharpe, covariance: np.ndarray, excess: np.ndarray) -> np.ndarray:
        raise FastSharpeError("solver status optimal_inaccurate")

    monkeypatch.setattr(ParameterisedMaxSharpe, "solve", not_optimal)
    with caplog.at_level(logging.DEBUG, logger="graphwiz_trader.portfolio.optimiser"):
        res = optimise_weights(returns, scores, _settings(), cons)
    assert res.method == "max_sharpe" and res.fallbacks == ()
    pd.testing.assert_series_equal(res.weights, peer.weights, check_exact=True)
    assert "optimal_inaccurate" in caplog.text and "solving with PyPortfolioOpt" in caplog.text


def test_an_infeasible_structure_reports_the_solver_status() -> None:
    cov, mu = _cov_mu(3, 5)
    problem = max_sharpe_problem(SharpeStructure(5, 0.0, 0.1))  # 5 x 0.1 < 1: nothing is fully invested
    with pytest.raises(FastSharpeError, match="infeasible"):
        problem.solve(cov, mu)
    assert (problem.solves, problem.failures) == (1, 1)


def test_no_return_above_the_risk_free_rate_is_refused_as_pyportfolioopt_refuses_it() -> None:
    cov, _ = _cov_mu(4, 5)
    with pytest.raises(FastSharpeError, match="risk-free"):
        max_sharpe_weights(cov, np.full(5, 0.03), 0.05, SharpeStructure(5, -0.5, 0.5, gross_cap=1.5))
    with pytest.raises(ValueError, match="exceeding the risk-free rate"):
        EfficientFrontier(pd.Series(np.full(5, 0.03)), cov, weight_bounds=(-0.5, 0.5)).max_sharpe(0.05)


def test_the_risk_free_rate_is_subtracted_from_the_expected_returns() -> None:
    cov, raw = _cov_mu(5, 6)
    mu = 0.15 + 0.1 * np.tanh(raw)  # all positive, an interior tangency portfolio
    w = max_sharpe_weights(cov, mu, 0.1, SharpeStructure(6, 0.0, 1.0))
    ef = EfficientFrontier(mu, cov, weight_bounds=(0.0, 1.0), solver="CLARABEL",
                           solver_options=dict(REFERENCE_TOLERANCES))
    ef.max_sharpe(risk_free_rate=0.1)
    np.testing.assert_allclose(w, np.asarray(ef.weights), rtol=0, atol=TOL)
    assert np.abs(w - max_sharpe_weights(cov, mu, 0.0, SharpeStructure(6, 0.0, 1.0))).max() > 0.05


def test_a_covariance_without_a_cholesky_factor_still_gets_an_exact_square_root() -> None:
    v = np.random.default_rng(6).normal(size=(4, 2))
    singular = v @ v.T  # rank 2: Cholesky fails
    f = fast_sharpe.covariance_factor(singular)
    np.testing.assert_allclose(f.T @ f, singular, atol=1e-12)


def test_bad_structures_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 assets"):
        SharpeStructure(1, 0.0, 1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        SharpeStructure(3, 0.5, 0.5)
    with pytest.raises(ValueError, match="outside"):
        SharpeStructure(3, 0.0, 0.5, groups=((0, 3),), group_cap=0.6)
