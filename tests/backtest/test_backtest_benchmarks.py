"""Benchmarks: buy-and-hold tracks the price, equal weight and inverse vol weigh as defined."""

from __future__ import annotations

import numpy as np
import pytest

from graphwiz_trader.backtest import (
    BacktestSettings,
    CostModel,
    buy_and_hold_targets,
    equal_weight_targets,
    inverse_vol_targets,
    run_backtest,
    write_report,
)
from graphwiz_trader.data.synthetic import generate_synthetic_market


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=4, n_bars=120, timeframe="1d", seed=5)


def test_buy_and_hold_equity_follows_the_price_after_the_entry_cost(market) -> None:
    close = market.close_panel()
    sym = close.columns[0]
    t0 = close.index[10]
    costs = CostModel(taker_fee_bps=10, half_spread_bps=1, slippage_bps=2, impact_coef_bps=0, min_order_notional=0)
    res = run_backtest(market.bars, buy_and_hold_targets(close, sym, t0), BacktestSettings(costs=costs))
    entry = market.bars[sym]["open"].iloc[11]
    units = 100_000.0 / entry
    expected = 100_000.0 * (1 - 13e-4) - 100_000.0 + units * close[sym].iloc[11:]
    np.testing.assert_allclose(res.equity.iloc[11:].to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert (res.trade_units[sym] != 0).sum() == 1


def test_equal_weight_and_inverse_vol_weigh_symbols_with_a_full_window(market) -> None:
    close = market.close_panel().copy()
    close.iloc[:50, 3] = np.nan  # listed late
    times = close.index[[30, 80]]
    ew = equal_weight_targets(close, times, window_bars=20)
    np.testing.assert_allclose(ew.to_numpy(), [[1 / 3, 1 / 3, 1 / 3, 0.0], [0.25] * 4])
    iv = inverse_vol_targets(close, times, window_bars=20)
    r = close.ffill().pct_change(fill_method=None)
    sd = r.iloc[61:81].std().to_numpy()
    np.testing.assert_allclose(iv.iloc[1].to_numpy(), (1 / sd) / (1 / sd).sum())
    assert iv.iloc[0, 3] == 0.0 and iv.iloc[0].sum() == pytest.approx(1.0)


def test_report_holds_equity_drawdown_weights_and_metrics(market, tmp_path) -> None:
    close = market.close_panel()
    times = close.index[20::5]
    runs = {"equal_weight": run_backtest(market.bars, equal_weight_targets(close, times, 20)),
            "buy_and_hold": run_backtest(market.bars, buy_and_hold_targets(close, close.columns[1], times[0]))}
    path = write_report(tmp_path / "r.html", runs, "test report", market.label, notes=("score: none",))
    html = path.read_text()
    for text in ("Equity and drawdown", "Monthly returns: equal_weight", "Weights over time: equal_weight",
                 "max_drawdown", "SYNTHETIC", "score: none"):
        assert text in html
