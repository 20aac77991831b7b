"""The faster engine (fills walked only on the bars where something happens, panel aligned without
pd.concat) gives the previous implementation's results to 1e-10 on random panels with every cost on.

``previous_backtest`` below is the engine as it was before the speed work (commit 1ad7053): one
numpy step per bar over the whole panel, units stored per bar, the panel aligned by ``pd.concat``. It is
kept here verbatim in substance as the reference the new code must reproduce.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest import BacktestSettings, CostModel, MarketPanel, TargetWeightError, run_backtest
from graphwiz_trader.backtest.engine import rebalance_mask

H = pd.Timedelta(hours=1)
FIELDS = ("open", "high", "low", "close", "volume")


def random_bars(n: int = 700, n_assets: int = 9, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Random-walk OHLCV with gaps, a pair listed late, one delisted early, zero and missing volume."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC", name="datetime")
    bars = {}
    for j in range(n_assets):
        close = 50.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0, 0.012, n)))
        open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.003, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
        vol = rng.lognormal(4, 1.0, n)
        bars[f"P{j}/USDT"] = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol},
                                          index=idx)
    bars["P1/USDT"] = bars["P1/USDT"].drop(idx[rng.choice(np.arange(10, n), 30, replace=False)])
    bars["P2/USDT"] = bars["P2/USDT"].iloc[150:]
    bars["P3/USDT"] = bars["P3/USDT"].iloc[: n - 200]
    bars["P4/USDT"].iloc[rng.choice(n, 40, replace=False), 4] = 0.0
    bars["P5/USDT"].iloc[rng.choice(n, 25, replace=False), 0] = np.nan  # bars without an open
    return bars


def random_targets(bars: dict[str, pd.DataFrame], seed: int, long_short: bool = False,
                   gross: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.DatetimeIndex(sorted(set().union(*(df.index for df in bars.values()))), name="datetime")
    w = rng.dirichlet(np.ones(len(bars)), size=len(idx)) * rng.uniform(0.4, 0.97, (len(idx), 1))
    w[rng.random(w.shape) < 0.15] = 0.0
    if long_short:
        w = w * np.where(rng.random(w.shape) < 0.4, -1.0, 1.0)
        w = w / np.abs(w).sum(axis=1, keepdims=True).clip(1e-12) * gross * rng.uniform(0.6, 1.0, (len(idx), 1))
    t = pd.DataFrame(w, index=idx, columns=list(bars))
    t.iloc[rng.random(len(t)) < 0.1] = np.nan  # rows without a decision
    t.iloc[rng.random(t.shape) < 0.05] = np.nan  # NaN inside a decision: weight 0
    return t


def previous_backtest(bars: dict[str, pd.DataFrame], targets: pd.DataFrame, settings: BacktestSettings) -> dict:
    """The engine before the speed work, reduced to its outputs (arrays) for the comparison."""
    symbols = tuple(bars)
    wide = pd.concat({s: bars[s][list(FIELDS)] for s in symbols}, axis=1, sort=True)
    index = pd.DatetimeIndex(wide.index, name="datetime")
    arr = wide.to_numpy(dtype="float64").reshape(len(index), len(symbols), 5)
    O, Hh, L, C, V = (np.ascontiguousarray(arr[:, :, k]) for k in range(5))
    diffs = np.diff(index.asi8)
    vals, counts = np.unique(diffs, return_counts=True)
    bar = pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")
    T, N = C.shape
    syms = list(symbols)
    W = targets.reindex(index=index, columns=syms).to_numpy(dtype="float64")
    decide = np.isfinite(W).any(axis=1) & rebalance_mask(index, bar, settings.rebalance)
    W = np.nan_to_num(W, nan=0.0)
    c = settings.costs
    fee_rate = c.fee_bps / 1e4
    ss_rate = (c.half_spread_bps + c.slippage_bps) / 1e4
    impact_k = c.impact_coef_bps / 1e4
    min_notional = c.min_order_notional
    futures = settings.market == "futures"
    Cf0 = np.nan_to_num(pd.DataFrame(C).ffill().to_numpy(), nan=0.0)
    prev_mark = np.vstack([np.zeros((1, N)), Cf0[:-1]])
    open_ok = np.isfinite(O)
    Omark = np.where(open_ok, O, prev_mark)
    tradable = open_ok & (np.nan_to_num(V, nan=0.0) > 0)
    inv_sqrt_adv = np.zeros((T, N))
    if impact_k > 0:
        quote_vol = pd.DataFrame(np.nan_to_num(V, nan=0.0) * Cf0)
        adv = quote_vol.rolling(c.impact_volume_window_bars, min_periods=1).mean().to_numpy()
        adv_prev = np.vstack([np.zeros((1, N)), adv[:-1]])
        with np.errstate(divide="ignore"):
            inv_sqrt_adv = np.where(adv_prev > 0, 1.0 / np.sqrt(np.where(adv_prev > 0, adv_prev, 1.0)), 0.0)
        tradable &= adv_prev > 0
    trf = tradable.astype("float64")
    Osafe = np.where(tradable, O, 1.0)
    Lw = np.where(np.isfinite(L), L, Cf0)
    Hw = np.where(np.isfinite(Hh), Hh, Cf0)
    period = pd.Timedelta(hours=8).value
    fund_n = ((index.asi8 + bar.value) // period - index.asi8 // period).astype("float64")
    fund_rate = settings.funding_rate_bps_per_8h / 1e4
    execute = np.zeros(T, dtype=bool)
    execute[1:] = decide[:-1]
    Q, DQ = np.zeros((T, N)), np.zeros((T, N))
    cash_arr, e_open_arr = np.zeros(T), np.full(T, np.nan)
    fees, slip, impact, funding, liquidation = (np.zeros(T) for _ in range(5))
    liquidated_at = None
    q = np.zeros(N)
    cash = float(settings.initial_capital)
    alive = True
    for t in range(T):
        if alive and execute[t]:
            e_open = cash + float(q @ Omark[t])
            e_open_arr[t] = e_open
            if e_open > 0:
                px = Osafe[t]
                dv = (W[t - 1] * e_open - q * px) * trf[t]
                if min_notional > 0:
                    dv = np.where(np.abs(dv) < min_notional, 0.0, dv)
                notional = np.abs(dv)
                tot = float(notional.sum())
                if tot > 0:
                    imp = impact_k * float((notional * np.sqrt(notional)) @ inv_sqrt_adv[t]) if impact_k > 0 else 0.0
                    f, s = tot * fee_rate, tot * ss_rate
                    cash -= float(dv.sum()) + f + s + imp
                    dq = dv / px
                    q = q + dq
                    DQ[t] = dq
                    fees[t], slip[t], impact[t] = f, s, imp
        if futures and alive:
            if q.any():
                worst_px = np.where(q > 0, Lw[t], Hw[t])
                worst_eq = cash + float(q @ worst_px)
                gross_worst = float(np.abs(q) @ worst_px)
                if worst_eq < settings.maintenance_margin * gross_worst:
                    fee = settings.liquidation_fee_bps / 1e4 * gross_worst
                    liquidation[t] = min(fee, max(worst_eq, 0.0))
                    cash = max(worst_eq - fee, 0.0)
                    q = np.zeros(N)
                    alive = False
                    liquidated_at = t
            if alive and fund_n[t] > 0 and q.any():
                fcost = fund_n[t] * fund_rate * float(q @ Cf0[t])
                cash -= fcost
                funding[t] = fcost
        Q[t] = q
        cash_arr[t] = cash
    NOT = DQ * Osafe
    IMP = impact_k * np.abs(NOT) * np.sqrt(np.abs(NOT)) * inv_sqrt_adv if impact_k > 0 else np.zeros((T, N))
    ex = np.flatnonzero(execute & np.isfinite(e_open_arr) & (e_open_arr > 0))
    q_before = np.vstack([np.zeros((1, N)), Q[:-1]])[ex]
    want = np.abs(W[ex - 1] * e_open_arr[ex, None] - q_before * Omark[ex]) > 1e-12 * e_open_arr[ex, None]
    equity = cash_arr + np.einsum("ij,ij->i", Q, Cf0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(equity[:, None] > 0, Q * Cf0 / equity[:, None], 0.0)
        turnover = np.where(np.isfinite(e_open_arr) & (e_open_arr > 0), np.abs(NOT).sum(axis=1) / e_open_arr, 0.0)
    return {
        "panel": (index, O, Hh, L, C, V, bar), "equity": equity, "weights": weights, "units": Q, "trade_units": DQ,
        "trade_notional": NOT, "impact_cost": IMP, "turnover": turnover,
        "costs": np.column_stack([fees, slip, impact, funding, liquidation]),
        "skipped": {"untradable": int(np.count_nonzero(want & ~tradable[ex])),
                    "below_min_order": int(np.count_nonzero(want & tradable[ex] & (DQ[ex] == 0)))
                    if min_notional > 0 else 0},
        "liquidated_at": index[liquidated_at] if liquidated_at is not None else None,
    }


COSTS = CostModel(taker_fee_bps=10, half_spread_bps=2, slippage_bps=3, impact_coef_bps=30,
                  impact_volume_window_bars=12, min_order_notional=60.0)


def assert_same_as_previous(bars: dict[str, pd.DataFrame], targets: pd.DataFrame, s: BacktestSettings) -> dict:
    res = run_backtest(bars, targets, s)
    ref = previous_backtest(bars, targets, s)
    cap = s.initial_capital
    money = 1e-10 * cap  # quote currency: 1e-10 of the capital
    np.testing.assert_allclose(res.equity.to_numpy(), ref["equity"], rtol=0, atol=money)
    np.testing.assert_allclose(res.costs.to_numpy(), ref["costs"], rtol=0, atol=money)
    np.testing.assert_allclose(res.trade_notional.to_numpy(), ref["trade_notional"], rtol=0, atol=money)
    np.testing.assert_allclose(res.impact_cost.to_numpy(), ref["impact_cost"], rtol=0, atol=money)
    np.testing.assert_allclose(res.weights.to_numpy(), ref["weights"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.turnover.to_numpy(), ref["turnover"], rtol=0, atol=1e-10)
    for name in ("units", "trade_units"):
        np.testing.assert_allclose(getattr(res, name).to_numpy(), ref[name], rtol=1e-10, atol=1e-12)
    assert res.skipped == ref["skipped"]
    assert res.liquidated_at == ref["liquidated_at"]
    return {"result": res, "reference": ref}


@pytest.mark.parametrize("rebalance", [1, 3, "4h"])
def test_spot_results_equal_the_previous_implementation_on_a_random_panel_with_costs(rebalance: int | str) -> None:
    bars = random_bars(seed=11)
    s = BacktestSettings(initial_capital=25_000.0, rebalance=rebalance, costs=COSTS)
    out = assert_same_as_previous(bars, random_targets(bars, seed=12), s)
    res = out["result"]
    # the comparison covers every path: orders below the minimum, untradable bars, impact, fills on most bars
    assert res.skipped["below_min_order"] > 0 and res.skipped["untradable"] > 0
    assert res.costs["impact"].sum() > 0 and np.count_nonzero(res.trade_units.to_numpy()) > 500


def test_a_decision_on_every_bar_equals_the_previous_implementation() -> None:
    """Fill bars in one unbroken run (the benchmark's case: hourly targets, hourly rebalancing)."""
    bars = random_bars(seed=15)
    s = BacktestSettings(initial_capital=40_000.0, rebalance=1, costs=COSTS)
    out = assert_same_as_previous(bars, random_targets(bars, seed=16).fillna(0.0), s)
    assert out["result"].skipped["below_min_order"] > 0 and out["result"].skipped["untradable"] > 0


def test_spot_without_impact_or_minimum_order_equals_the_previous_implementation() -> None:
    bars = random_bars(seed=21)
    costs = CostModel(taker_fee_bps=7, half_spread_bps=1, slippage_bps=0, impact_coef_bps=0, min_order_notional=0)
    s = BacktestSettings(initial_capital=1_000_000.0, rebalance=1, costs=costs)
    assert_same_as_previous(bars, random_targets(bars, seed=22), s)


def test_levered_futures_with_funding_equal_the_previous_implementation() -> None:
    bars = random_bars(seed=31)
    s = BacktestSettings(initial_capital=50_000.0, market="futures", max_leverage=3.0, rebalance=2, costs=COSTS,
                         funding_rate_bps_per_8h=4.0)
    out = assert_same_as_previous(bars, random_targets(bars, seed=32, long_short=True, gross=3.0), s)
    assert out["result"].liquidated_at is None and out["result"].costs["funding"].abs().sum() > 0


def test_a_liquidated_futures_book_equals_the_previous_implementation() -> None:
    bars = random_bars(seed=41)
    crash = bars["P0/USDT"].index[400]
    for sym in bars:  # every pair loses 60% at its low in one bar
        if crash in bars[sym].index:
            bars[sym].loc[crash, "low"] = bars[sym].loc[crash, "open"] * 0.4
    targets = random_targets(bars, seed=42).abs()
    targets = targets.div(targets.sum(axis=1), axis=0) * 10.0
    s = BacktestSettings(initial_capital=10_000.0, market="futures", max_leverage=10.0, rebalance=1, costs=COSTS)
    out = assert_same_as_previous(bars, targets, s)
    assert out["result"].liquidated_at == crash
    assert (out["result"].units.loc[crash:].to_numpy() == 0).all()


def test_the_panel_equals_pd_concat_alignment_for_gaps_unsorted_and_mixed_time_zones() -> None:
    bars = random_bars(seed=51)
    bars["P6/USDT"] = bars["P6/USDT"].iloc[::-1]  # unsorted rows
    bars["P7/USDT"] = bars["P7/USDT"].tz_convert("Europe/Berlin")
    bars["P8/USDT"] = bars["P8/USDT"].iloc[:0]  # no bars at all
    panel = MarketPanel.from_bars(bars)
    index, *fields, bar = previous_backtest(bars, random_targets(bars, seed=52), BacktestSettings())["panel"]
    assert panel.index.equals(index) and str(panel.index.dtype) == str(index.dtype) and panel.index.name == "datetime"
    assert panel.bar == bar == H
    for got, want in zip((panel.open, panel.high, panel.low, panel.close, panel.volume), fields):
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def test_bars_with_microsecond_timestamps_give_the_same_panel_as_nanosecond_ones() -> None:
    """Before: pd.concat's union of microsecond indexes that carry a freq is wrong in pandas 2.3 (here 702
    times for 700 hours), and the bar length read microseconds as nanoseconds (1 h became 3.6 s)."""
    bars = random_bars(seed=71)
    micro = {}
    for sym, df in bars.items():
        micro[sym] = df.copy()
        micro[sym].index = df.index.as_unit("us")
    ns, us = MarketPanel.from_bars(bars), MarketPanel.from_bars(micro)
    assert len(us.index) == len(ns.index) == 700 and (us.index == ns.index).all()
    assert us.bar == ns.bar == H
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(us, field), getattr(ns, field))


@pytest.mark.parametrize("market", ["spot", "futures"])
def test_an_infinite_target_weight_is_rejected_as_infinite(market: str) -> None:
    """Before: NaN -> 0 also turned inf into 1.8e308, so the inf check never fired and the error spoke
    of a sum or gross exposure of 1.8e308."""
    bars = random_bars(n=50, seed=61)
    targets = random_targets(bars, seed=62).fillna(0.0) * 0.5
    targets.iloc[10, 2] = np.inf if market == "spot" else -np.inf
    s = BacktestSettings(market=market, max_leverage=2.0 if market == "futures" else 1.0)
    with pytest.raises(TargetWeightError, match=r"\+-inf"):
        run_backtest(bars, targets, s)
