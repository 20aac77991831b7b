"""The engine fills at t+1's open, matches an independent plain loop to 1e-9, and costs cost money."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest import (
    BacktestSettings,
    CostModel,
    MarketPanel,
    TargetWeightError,
    rebalance_times,
    run_backtest,
)
from graphwiz_trader.errors import UnknownSymbolError

H = pd.Timedelta(hours=1)


def _bars(n: int = 300, n_assets: int = 5, seed: int = 0, gaps: bool = True) -> dict[str, pd.DataFrame]:
    """Random-walk OHLCV with an open that differs from the previous close, some missing bars,
    a symbol listed late and a zero-volume bar."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="datetime")
    bars = {}
    for j in range(n_assets):
        close = 100.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.002, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
        vol = rng.lognormal(3, 0.5, n)
        df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=idx)
        bars[f"S{j}/USDT"] = df
    if gaps:
        bars["S1/USDT"] = bars["S1/USDT"].drop(idx[[40, 41, 120, 201]])
        bars["S4/USDT"] = bars["S4/USDT"].iloc[60:]
        bars["S2/USDT"].iloc[150, 4] = 0.0
    return bars


def _random_targets(bars: dict[str, pd.DataFrame], seed: int, long_short: bool = False,
                    gross: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = sorted(set().union(*(df.index for df in bars.values())))
    syms = list(bars)
    w = rng.dirichlet(np.ones(len(syms)), size=len(idx)) * rng.uniform(0.5, 1.0, (len(idx), 1))
    w[rng.random(w.shape) < 0.2] = 0.0
    if long_short:
        w = w * np.where(rng.random(w.shape) < 0.4, -1.0, 1.0)
        w = w / np.abs(w).sum(axis=1, keepdims=True).clip(1e-12) * gross * rng.uniform(0.5, 1.0, (len(idx), 1))
    t = pd.DataFrame(w, index=pd.DatetimeIndex(idx, name="datetime"), columns=syms)
    t.iloc[rng.random(len(t)) < 0.1] = np.nan  # rows without a decision
    return t


def plain_loop_backtest(bars: dict[str, pd.DataFrame], targets: pd.DataFrame, s: BacktestSettings) -> list[float]:
    """An independent implementation with python scalars, one symbol at a time (no numpy arrays)."""
    times = sorted(set().union(*(df.index for df in bars.values())))
    syms = list(bars)
    rows = {sym: {t: tuple(float(x) for x in r) for t, r in zip(df.index, df[["open", "high", "low", "close", "volume"]]
                                                                  .itertuples(index=False))}
            for sym, df in bars.items()}
    c = s.costs
    fee = (c.taker_fee_bps if c.fee_side == "taker" else c.maker_fee_bps) / 1e4
    ss = (c.half_spread_bps + c.slippage_bps) / 1e4
    k = c.impact_coef_bps / 1e4
    units = {sym: 0.0 for sym in syms}
    last_close = {sym: 0.0 for sym in syms}
    quote_vols: dict[str, list[float]] = {sym: [] for sym in syms}
    cash = s.initial_capital
    pending = None
    alive = True
    equity = []
    every = s.rebalance
    for n, t in enumerate(times):
        if pending is not None and alive:
            w = pending
            e_open = cash
            for sym in syms:
                bar = rows[sym].get(t)
                mark = bar[0] if bar is not None else last_close[sym]
                e_open += units[sym] * mark
            if e_open > 0:
                for sym in syms:
                    bar = rows[sym].get(t)
                    window = quote_vols[sym][-c.impact_volume_window_bars:]
                    adv = sum(window) / len(window) if window else 0.0
                    if bar is None or bar[4] <= 0 or (k > 0 and adv <= 0):
                        continue
                    price = bar[0]
                    value_to_trade = w.get(sym, 0.0) * e_open - units[sym] * price
                    notional = abs(value_to_trade)
                    if notional == 0 or notional < c.min_order_notional:
                        continue
                    impact = k * notional * math.sqrt(notional / adv) if k > 0 else 0.0
                    cash -= value_to_trade + notional * (fee + ss) + impact
                    units[sym] += value_to_trade / price
        pending = None
        close_mark = {}
        for sym in syms:
            bar = rows[sym].get(t)
            close_mark[sym] = bar[3] if bar is not None else last_close[sym]
        if s.market == "futures" and alive:
            if any(units[sym] != 0 for sym in syms):
                worst_eq, gross = cash, 0.0
                for sym in syms:
                    bar = rows[sym].get(t)
                    u = units[sym]
                    if u > 0:
                        px = bar[2] if bar is not None else close_mark[sym]
                    else:
                        px = bar[1] if bar is not None else close_mark[sym]
                    worst_eq += u * px
                    gross += abs(u) * px
                if worst_eq < s.maintenance_margin * gross:
                    cash = max(worst_eq - s.liquidation_fee_bps / 1e4 * gross, 0.0)
                    units = {sym: 0.0 for sym in syms}
                    alive = False
            start_h = t.value // pd.Timedelta(hours=8).value
            end_h = (t + H).value // pd.Timedelta(hours=8).value
            if alive and end_h > start_h:
                notional = sum(units[sym] * close_mark[sym] for sym in syms)
                cash -= (end_h - start_h) * s.funding_rate_bps_per_8h / 1e4 * notional
        for sym in syms:
            last_close[sym] = close_mark[sym]
            bar = rows[sym].get(t)
            quote_vols[sym].append((bar[4] if bar is not None else 0.0) * close_mark[sym])
        equity.append(cash + sum(units[sym] * close_mark[sym] for sym in syms))
        if alive and (n + 1) % every == 0 and t in targets.index:
            row = targets.loc[t]
            if row.notna().any():
                pending = {sym: (0.0 if pd.isna(v) else float(v)) for sym, v in row.items()}
    return equity


COSTS = CostModel(taker_fee_bps=10, half_spread_bps=2, slippage_bps=3, impact_coef_bps=25,
                  impact_volume_window_bars=12, min_order_notional=40.0)


@pytest.mark.parametrize("rebalance", [1, 3])
def test_spot_pnl_on_random_weights_equals_a_plain_python_loop(rebalance: int) -> None:
    bars = _bars()
    targets = _random_targets(bars, seed=1)
    s = BacktestSettings(initial_capital=10_000.0, rebalance=rebalance, costs=COSTS)
    res = run_backtest(bars, targets, s)
    ref = plain_loop_backtest(bars, targets, s)
    np.testing.assert_allclose(res.equity.to_numpy() / s.initial_capital, np.array(ref) / s.initial_capital,
                               rtol=0, atol=1e-9)
    assert res.skipped["below_min_order"] > 0 and res.skipped["untradable"] > 0
    assert res.costs[["fees", "spread_slippage", "impact"]].to_numpy().min() >= 0


def test_levered_long_short_futures_pnl_with_funding_equals_a_plain_python_loop() -> None:
    bars = _bars(seed=4)
    targets = _random_targets(bars, seed=5, long_short=True, gross=2.5)
    s = BacktestSettings(initial_capital=50_000.0, market="futures", max_leverage=2.5, rebalance=2, costs=COSTS,
                         funding_rate_bps_per_8h=3.0)
    res = run_backtest(bars, targets, s)
    ref = plain_loop_backtest(bars, targets, s)
    assert res.liquidated_at is None
    assert res.costs["funding"].abs().sum() > 0
    np.testing.assert_allclose(res.equity.to_numpy() / s.initial_capital, np.array(ref) / s.initial_capital,
                               rtol=0, atol=1e-9)


def test_costs_strictly_reduce_pnl() -> None:
    bars = _bars(gaps=False)
    targets = _random_targets(bars, seed=2)
    free = run_backtest(bars, targets, BacktestSettings(costs=CostModel.zero()))
    pnl_free = free.equity.iloc[-1] - free.initial_capital
    for costs in (CostModel.zero().model_copy(update={"taker_fee_bps": 10.0}),
                  CostModel.zero().model_copy(update={"half_spread_bps": 2.0}),
                  CostModel.zero().model_copy(update={"slippage_bps": 3.0}),
                  CostModel.zero().model_copy(update={"impact_coef_bps": 20.0}),
                  CostModel()):
        costly = run_backtest(bars, targets, BacktestSettings(costs=costs))
        assert costly.equity.iloc[-1] - costly.initial_capital < pnl_free
        assert (costly.equity <= free.equity + 1e-9).all()


def test_a_signal_at_t_close_is_filled_at_t_plus_one_open_not_at_t() -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0, 110.0, 121.0, 100.0], "high": [120.0, 130.0, 130.0, 120.0],
                        "low": [90.0, 100.0, 110.0, 90.0], "close": [105.0, 115.0, 118.0, 110.0],
                        "volume": [1e6] * 4}, index=idx)
    targets = pd.DataFrame({"X/USDT": [np.nan, 1.0, np.nan, np.nan]}, index=idx)  # decided at bar 1's close
    res = run_backtest({"X/USDT": bar}, targets, BacktestSettings(initial_capital=1000.0, costs=CostModel.zero()))
    assert res.trade_units["X/USDT"].tolist() == [0.0, 0.0, pytest.approx(1000.0 / 121.0), 0.0]
    # nothing moves at bar 1 (the signal bar); bar 2 earns open 121 -> close 118, bar 3 earns 118 -> 110
    np.testing.assert_allclose(res.equity.to_numpy(), [1000.0, 1000.0, 1000.0 * 118 / 121, 1000.0 * 110 / 121])
    assert res.trades()["price"].tolist() == [pytest.approx(121.0)]


def test_fees_and_spread_are_charged_on_the_filled_notional() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0] * 3, "high": [101.0] * 3, "low": [99.0] * 3, "close": [100.0] * 3,
                        "volume": [1e9] * 3}, index=idx)
    targets = pd.DataFrame({"X/USDT": [0.5, np.nan, np.nan]}, index=idx)
    costs = CostModel(taker_fee_bps=10, half_spread_bps=1, slippage_bps=2, impact_coef_bps=0, min_order_notional=0)
    res = run_backtest({"X/USDT": bar}, targets, BacktestSettings(initial_capital=10_000.0, costs=costs))
    assert res.equity.iloc[-1] == pytest.approx(10_000.0 - 5_000.0 * 13e-4)
    assert res.costs["fees"].sum() == pytest.approx(5.0)
    assert res.turnover.iloc[1] == pytest.approx(0.5)


def test_square_root_impact_uses_the_trailing_average_quote_volume() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0] * 3, "high": [100.0] * 3, "low": [100.0] * 3, "close": [100.0] * 3,
                        "volume": [400.0, 100.0, 1.0]}, index=idx)  # quote volume 40k, 10k
    targets = pd.DataFrame({"X/USDT": [np.nan, 1.0, np.nan]}, index=idx)
    costs = CostModel.zero().model_copy(update={"impact_coef_bps": 100.0, "impact_volume_window_bars": 2})
    res = run_backtest({"X/USDT": bar}, targets, BacktestSettings(initial_capital=10_000.0, costs=costs))
    adv = (40_000.0 + 10_000.0) / 2
    assert res.costs["impact"].iloc[2] == pytest.approx(10_000.0 * 0.01 * math.sqrt(10_000.0 / adv))


def test_orders_below_the_minimum_notional_are_not_sent() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [10.0] * 3, "high": [10.0] * 3, "low": [10.0] * 3, "close": [10.0] * 3,
                        "volume": [1e6] * 3}, index=idx)
    targets = pd.DataFrame({"X/USDT": [0.004, np.nan, np.nan], "Y/USDT": [0.5, np.nan, np.nan]}, index=idx)
    res = run_backtest({"X/USDT": bar, "Y/USDT": bar}, targets,
                       BacktestSettings(initial_capital=1000.0, costs=CostModel.zero().model_copy(
                           update={"min_order_notional": 5.0})))
    assert res.units.iloc[-1].tolist() == [0.0, pytest.approx(50.0)]
    assert res.skipped == {"untradable": 0, "below_min_order": 1}


def test_leveraged_long_is_liquidated_at_the_bar_low_and_stays_flat() -> None:
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0, 100.0, 100.0, 95.0, 95.0], "high": [100.0, 100.0, 100.0, 96.0, 96.0],
                        "low": [100.0, 100.0, 99.0, 79.0, 90.0], "close": [100.0, 100.0, 98.0, 95.0, 95.0],
                        "volume": [1e9] * 5}, index=idx)
    targets = pd.DataFrame({"X/USDT": [5.0, np.nan, np.nan, np.nan, np.nan]}, index=idx)
    s = BacktestSettings(initial_capital=1000.0, market="futures", max_leverage=5.0, costs=CostModel.zero(),
                         funding_rate_bps_per_8h=0.0, maintenance_margin=0.01, liquidation_fee_bps=50.0)
    res = run_backtest({"X/USDT": bar}, targets, s)
    units = 5000.0 / 100.0
    worst_eq = 1000.0 + units * (79.0 - 100.0)  # -50: below 1% of 50 * 79
    assert res.liquidated_at == idx[3]
    assert worst_eq < 0
    np.testing.assert_allclose(res.equity.to_numpy(), [1000.0, 1000.0, 1000.0 + units * (98.0 - 100.0), 0.0, 0.0])
    assert res.costs["liquidation"].sum() == 0.0  # nothing left to pay the fee from
    assert res.units.iloc[-1, 0] == 0.0


def test_liquidation_above_zero_leaves_equity_minus_the_fee() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0] * 3, "high": [100.0] * 3, "low": [100.0, 100.0, 85.0],
                        "close": [100.0, 100.0, 90.0], "volume": [1e9] * 3}, index=idx)
    targets = pd.DataFrame({"X/USDT": [4.0, np.nan, np.nan]}, index=idx)
    s = BacktestSettings(initial_capital=1000.0, market="futures", max_leverage=4.0, costs=CostModel.zero(),
                         funding_rate_bps_per_8h=0.0, maintenance_margin=0.05, liquidation_fee_bps=50.0)
    res = run_backtest({"X/USDT": bar}, targets, s)
    worst = 1000.0 + 40.0 * (85.0 - 100.0)  # 400 >= 5% of 40 * 85 = 170: not liquidated
    assert res.liquidated_at is None
    assert res.equity.iloc[-1] == pytest.approx(1000.0 + 40.0 * (90.0 - 100.0))
    s2 = s.model_copy(update={"maintenance_margin": 0.15})  # 400 < 0.15 * 3400 = 510 -> liquidated
    res2 = run_backtest({"X/USDT": bar}, targets, s2)
    assert res2.liquidated_at == idx[2]
    assert res2.equity.iloc[-1] == pytest.approx(worst - 0.005 * 40.0 * 85.0)


def test_funding_is_paid_by_longs_at_each_eight_hour_settlement() -> None:
    idx = pd.date_range("2024-01-01 05:00", periods=6, freq="1h", tz="UTC", name="datetime")
    bar = pd.DataFrame({"open": [100.0] * 6, "high": [100.0] * 6, "low": [100.0] * 6, "close": [100.0] * 6,
                        "volume": [1e9] * 6}, index=idx)
    targets = pd.DataFrame({"X/USDT": [2.0] + [np.nan] * 5}, index=idx)
    s = BacktestSettings(initial_capital=1000.0, market="futures", max_leverage=2.0, costs=CostModel.zero(),
                         funding_rate_bps_per_8h=1.0)
    res = run_backtest({"X/USDT": bar}, targets, s)
    # the 07:00 bar closes at 08:00, the only settlement in 05:00..11:00
    assert res.costs["funding"].tolist() == [0.0, 0.0, pytest.approx(2000.0 * 1e-4), 0.0, 0.0, 0.0]
    assert res.equity.iloc[-1] == pytest.approx(1000.0 - 0.2)


def test_equity_at_t_does_not_change_when_later_bars_are_removed() -> None:
    bars = _bars(seed=7)
    targets = _random_targets(bars, seed=8)
    s = BacktestSettings(costs=COSTS, rebalance=2)
    full = run_backtest(bars, targets, s)
    cut = full.equity.index[180]
    short = run_backtest({k: v[v.index <= cut] for k, v in bars.items()}, targets[targets.index <= cut], s)
    pd.testing.assert_series_equal(short.equity, full.equity.loc[:cut])


def test_daily_schedule_on_hourly_bars_decides_at_the_bar_closing_at_midnight() -> None:
    idx = pd.date_range("2024-01-01", periods=72, freq="1h", tz="UTC")
    times = rebalance_times(idx, H, "1D")
    assert [t.hour for t in times] == [23, 23, 23]
    assert list(rebalance_times(idx, H, 24)) == list(times)


def test_spot_rejects_short_or_levered_targets() -> None:
    bars = _bars(gaps=False)
    idx = bars["S0/USDT"].index
    with pytest.raises(TargetWeightError, match="short"):
        run_backtest(bars, pd.DataFrame({"S0/USDT": [-0.1]}, index=idx[:1]))
    with pytest.raises(TargetWeightError, match="levered"):
        run_backtest(bars, pd.DataFrame({"S0/USDT": [0.7], "S1/USDT": [0.7]}, index=idx[:1]))


def test_targets_naming_unknown_symbols_are_rejected() -> None:
    bars = _bars(gaps=False)
    with pytest.raises(UnknownSymbolError, match="NOPE/USDT"):
        run_backtest(bars, pd.DataFrame({"NOPE/USDT": [0.1]}, index=bars["S0/USDT"].index[:1]))


def test_panel_aligns_symbols_on_the_union_of_bar_times() -> None:
    panel = MarketPanel.from_bars(_bars())
    assert panel.close.shape == (300, 5)
    assert np.isnan(panel.close[:60, 4]).all() and np.isnan(panel.close[40, 1])
    assert panel.bar == H
