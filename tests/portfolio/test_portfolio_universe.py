"""Point-in-time universes in the walk-forward optimiser: a symbol has weight only while it is a member."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import DataError
from graphwiz_trader.portfolio import OptimiserSettings, PortfolioConstraints, rolling_optimise

JOIN, LEAVE = 90, 120      # bar positions: the joiner is a member from JOIN on, the leaver until LEAVE - 1


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=6, n_clusters=2, n_bars=170, timeframe="1d", seed=11)


def _settings() -> OptimiserSettings:
    return OptimiserSettings(cov_window_bars=40, periods_per_year=365)


def _pick(market) -> tuple[str, str, pd.DataFrame]:
    """The joiner and leaver: the symbols the unrestricted optimiser holds most after JOIN / before LEAVE (so
    masking them out changes the weights), and the universe where the joiner joins and the leaver leaves."""
    close = market.close_panel()
    free = rolling_optimise(close, close.index[40:], market.signal, _settings(), PortfolioConstraints()).weights
    joiner = str(free.iloc[JOIN - 40:].mean().idxmax())
    leaver = str(free.iloc[LEAVE - 60: LEAVE - 40].drop(columns=joiner).mean().idxmax())
    universe = pd.DataFrame(True, index=close.index, columns=close.columns)
    universe.iloc[:JOIN, universe.columns.get_loc(joiner)] = False
    universe.iloc[LEAVE:, universe.columns.get_loc(leaver)] = False
    return joiner, leaver, universe


def test_weights_are_zero_before_a_symbol_joins_and_after_it_leaves_and_held_while_a_member(market) -> None:
    close = market.close_panel()
    joiner, leaver, universe = _pick(market)
    cons = PortfolioConstraints(no_trade_band=0.05)           # the band must not keep the leaver
    w = rolling_optimise(close, close.index[40:], market.signal, _settings(), cons, universe=universe).weights
    t = w.index
    assert (w.loc[t < close.index[JOIN], joiner] == 0).all()
    assert (w.loc[t >= close.index[LEAVE], leaver] == 0).all()
    assert (w.loc[t >= close.index[JOIN], joiner] > 0).any()
    assert (w.loc[(t >= close.index[LEAVE - 20]) & (t < close.index[LEAVE]), leaver] > 0).any()


def test_each_decision_equals_the_optimiser_on_that_days_members_only(market) -> None:
    close = market.close_panel()
    _, _, universe = _pick(market)
    times = close.index[[60, JOIN - 1, JOIN, LEAVE - 1, LEAVE, 150]]
    w = rolling_optimise(close, times, market.signal, _settings(), PortfolioConstraints(), universe=universe).weights
    for t in times:
        members = [c for c in close.columns if universe.loc[t, c]]
        alone = rolling_optimise(close[members], [t], market.signal[members], _settings(),
                                 PortfolioConstraints()).weights
        np.testing.assert_allclose(w.loc[t, members].to_numpy(), alone.loc[t].to_numpy(), atol=1e-9)
        assert (w.loc[t].drop(members) == 0).all()


@pytest.mark.parametrize("cut", [JOIN - 1, JOIN + 3, LEAVE, 160])
def test_weights_at_t_do_not_change_when_later_data_is_removed(market, cut: int) -> None:
    close, scores = market.close_panel(), market.signal
    _, _, universe = _pick(market)
    cons = PortfolioConstraints(max_position_weight=0.4, no_trade_band=0.02)
    times = close.index[40:]
    full = rolling_optimise(close, times, scores, _settings(), cons, universe=universe).weights
    t = close.index[cut]
    short = rolling_optimise(close.loc[:t], times[times <= t], scores.loc[:t], _settings(), cons,
                             universe=universe.loc[:t]).weights
    pd.testing.assert_frame_equal(short, full.loc[:t])


def test_a_universe_missing_a_decision_time_or_a_symbol_is_refused(market) -> None:
    close = market.close_panel()
    _, _, universe = _pick(market)
    with pytest.raises(DataError, match="no membership column"):
        rolling_optimise(close, close.index[50:60], market.signal, _settings(), universe=universe.iloc[:, 1:])
    with pytest.raises(DataError, match="no membership row"):
        rolling_optimise(close, close.index[50:60], market.signal, _settings(), universe=universe.iloc[:55])
