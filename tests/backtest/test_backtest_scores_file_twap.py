"""TWAP execution costs of a backtest's orders: each order is worked by the execution engine over the next bars;
its shortfall against the backtest's open fill plus the fee is charged as a return drag, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.engine import run_backtest
from graphwiz_trader.backtest.execution_costs import price_free_costs, twap_costed
from graphwiz_trader.backtest.settings import BacktestSettings, CostModel
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import DataError
from graphwiz_trader.execution.engine import ExecutionEngine
from graphwiz_trader.execution.market import MarketFeatureSettings
from graphwiz_trader.execution.simulator import ImpactModelSettings

FEE_BPS = 10.0
H = 3


def setup(costs: CostModel | None = None):
    market = generate_synthetic_market(n_assets=3, n_bars=120, seed=5)
    bars = market.bars
    index = bars["SYN00/USDT"].index
    targets = pd.DataFrame(np.nan, index=index, columns=list(bars))
    targets.iloc[60] = [0.5, 0.3, 0.0]  # decided at bar 60's close, filled at bar 61's open
    targets.iloc[90] = [0.1, 0.3, 0.5]
    settings = BacktestSettings(costs=costs or price_free_costs(CostModel()), rebalance=1)
    result = run_backtest(bars, targets, settings, name="book")
    # no impact, no noise, no spread: every child fills at its bar's typical price (O + H + L + C) / 4
    engine = ExecutionEngine(bars, impact=ImpactModelSettings(eta=0.0, gamma=0.0, impact_noise_sd=0.0),
                             features=MarketFeatureSettings(vol_window_bars=5, volume_window_bars=5,
                                                            spread_window_bars=5, profile_days=2, min_profile_days=2,
                                                            min_half_spread_bps=0.0, max_half_spread_bps=0.0))
    return bars, result, engine


def test_each_order_costs_its_twap_shortfall_plus_fee_charged_in_its_childrens_bars():
    bars, result, engine = setup()
    run = twap_costed(result, engine, H, FEE_BPS)
    index = result.equity.index
    expected = np.zeros(len(index))
    trades = result.trades()
    assert len(trades) == 5 and run.parents == 5 and run.children == 5 * H and run.children_unfilled == 0
    for tr in trades.itertuples(index=False):
        b = bars[tr.symbol]
        k0 = b.index.get_loc(tr.datetime)
        arrival = b["open"].iloc[k0]
        assert arrival == pytest.approx(tr.price)
        side = 1.0 if tr.side == "buy" else -1.0
        for k in range(k0, k0 + H):
            typical = b[["open", "high", "low", "close"]].iloc[k].mean()
            q = abs(tr.units) / H
            expected[index.get_loc(b.index[k])] += side * q * (typical - arrival) + FEE_BPS / 1e4 * q * typical
    prev = np.concatenate([[result.initial_capital], result.equity.to_numpy()[:-1]])
    net = result.equity.to_numpy() / prev - 1.0 - expected / prev
    np.testing.assert_allclose(run.returns.to_numpy(), net, rtol=1e-9, atol=1e-12)
    net_equity = result.initial_capital * np.cumprod(1 + net)
    np.testing.assert_allclose(run.equity.to_numpy(), net_equity, rtol=1e-9)
    # costs in the net book's money: the same fraction of its equity as of the backtest's
    prev_net = np.concatenate([[result.initial_capital], net_equity[:-1]])
    np.testing.assert_allclose(run.costs.to_numpy(), expected / prev * prev_net, rtol=1e-9, atol=1e-9)
    years = len(index) / result.periods_per_year
    assert run.metrics["annual_cost_drag"] == pytest.approx((expected / prev).sum() / years)
    assert np.isfinite(run.metrics["sharpe"]) and run.metrics["sharpe_ci_low"] < run.metrics["sharpe_ci_high"]


def test_a_backtest_that_already_paid_price_costs_is_refused():
    _, result, engine = setup(costs=CostModel())
    with pytest.raises(DataError, match="already charged .* price costs; run it with price_free_costs"):
        twap_costed(result, engine, H, FEE_BPS)


def test_price_free_costs_keep_only_the_minimum_order():
    c = price_free_costs(CostModel(min_order_notional=25.0))
    assert (c.fee_bps, c.half_spread_bps, c.slippage_bps, c.impact_coef_bps) == (0.0, 0.0, 0.0, 0.0)
    assert c.min_order_notional == 25.0
