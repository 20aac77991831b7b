"""The replay engine hands out bars one at a time and fills orders on the following bars with the backtester's costs."""

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.trading.engines.base import TradingEngine
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.types import OrderRequest, OrderState, Side, client_order_id


def run(coro):
    return asyncio.run(coro)


def bars_of(n=12, start="2024-01-01", seed=0, volume=1000.0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="datetime")
    out = {}
    for k, sym in enumerate(["AAA/USDT", "BBB/USDT"]):
        close = 100.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        opn = close * np.exp(rng.normal(0, 0.002, n))  # opens differ from the previous close
        out[sym] = pd.DataFrame({"open": opn, "high": np.maximum(opn, close) * 1.001,
                                 "low": np.minimum(opn, close) * 0.999, "close": close,
                                 "volume": np.full(n, volume)}, index=idx)
    return out


def order(engine, sym, side, qty, cycle=0, execution="MARKET", horizon=1, leg=0):
    return OrderRequest(client_order_id(engine.name + "r", cycle, sym, leg), "r", cycle, sym, side, qty,
                        engine.now(), execution=execution, horizon_bars=horizon)


COSTS = CostModel(taker_fee_bps=10, half_spread_bps=1, slippage_bps=2, impact_coef_bps=10,
                  impact_volume_window_bars=4, min_order_notional=10)


def expected_costs(notional, adv, c=COSTS):
    return (notional * c.fee_bps / 1e4, notional * (c.half_spread_bps + c.slippage_bps) / 1e4,
            c.impact_coef_bps / 1e4 * notional * math.sqrt(notional / adv))


def test_the_replay_engine_implements_the_trading_engine_interface():
    assert isinstance(ReplayEngine(bars_of(), start="2024-01-01 05:00"), TradingEngine)


def test_history_holds_only_the_bars_closed_before_the_replay_starts_and_next_bars_hands_out_one_bar():
    bars = bars_of()
    eng = ReplayEngine(bars, start="2024-01-01 05:00")
    hist = run(eng.history(["AAA/USDT"], 100))["AAA/USDT"]
    assert hist.index[-1] == pd.Timestamp("2024-01-01 04:00", tz="UTC") and len(hist) == 5
    assert eng.now() == pd.Timestamp("2024-01-01 05:00", tz="UTC")  # close of the last warm-up bar
    new = run(eng.next_bars())
    assert list(new) == ["AAA/USDT", "BBB/USDT"] and new["AAA/USDT"].index[0] == pd.Timestamp("2024-01-01 05:00", tz="UTC")
    assert eng.now() == pd.Timestamp("2024-01-01 06:00", tz="UTC")


def test_a_market_order_fills_at_the_next_bars_open_with_the_backtesters_costs_never_at_the_decision_close():
    bars = bars_of()
    eng = ReplayEngine(bars, start="2024-01-01 05:00", costs=COSTS, initial_cash_quote=10_000)
    run(eng.next_bars())                                    # decision bar: 05:00, closes at 06:00
    o = order(eng, "AAA/USDT", Side.BUY, 20.0)
    (ack,) = run(eng.submit([o]))
    assert ack.state is OrderState.OPEN and run(eng.poll_updates()) == ([], [])
    run(eng.next_bars())                                    # the 06:00 bar: the fill happens at its open
    ups, fills = run(eng.poll_updates())
    (f,) = fills
    df = bars["AAA/USDT"]
    o6 = df.loc["2024-01-01 06:00", "open"]
    assert f.ts_utc == pd.Timestamp("2024-01-01 06:00", tz="UTC") and f.price == o6
    assert f.price != df.loc["2024-01-01 05:00", "close"]
    qv = (df["volume"] * df["close"]).loc["2024-01-01 02:00":"2024-01-01 05:00"].mean()   # 4 bars ending at 05:00
    fee, ss, imp = expected_costs(20.0 * o6, qv)
    assert f.fee_quote == pytest.approx(fee, rel=1e-12) and f.spread_slippage_quote == pytest.approx(ss, rel=1e-12)
    assert f.impact_quote == pytest.approx(imp, rel=1e-12)
    assert eng.cash_quote == pytest.approx(10_000 - 20.0 * o6 - fee - ss - imp, rel=1e-12)
    assert eng.positions["AAA/USDT"] == 20.0 and ups[-1].state is OrderState.FILLED


def test_a_twap_order_fills_in_equal_slices_over_the_following_bars():
    eng = ReplayEngine(bars_of(), start="2024-01-01 05:00", costs=COSTS)
    run(eng.next_bars())
    run(eng.submit([order(eng, "BBB/USDT", Side.BUY, 30.0, execution="TWAP", horizon=3)]))
    fills = []
    for _ in range(4):
        run(eng.next_bars())
        fills += run(eng.poll_updates())[1]
    assert [f.qty for f in fills] == pytest.approx([10.0, 10.0, 10.0])
    assert [f.ts_utc.hour for f in fills] == [6, 7, 8]


def test_an_order_above_the_participation_cap_fills_partially_and_expires_with_the_reason():
    eng = ReplayEngine(bars_of(volume=100.0), start="2024-01-01 05:00", costs=COSTS, max_participation=0.1)
    run(eng.next_bars())
    run(eng.submit([order(eng, "AAA/USDT", Side.BUY, 25.0)]))
    run(eng.next_bars())
    ups, fills = run(eng.poll_updates())
    assert [f.qty for f in fills] == pytest.approx([10.0])         # 10% of a 100-unit bar
    assert ups[-1].state is OrderState.EXPIRED and ups[-1].filled_qty == pytest.approx(10.0)
    assert "participation cap" in ups[-1].reason


def test_a_twap_slice_cut_by_the_cap_rolls_into_the_next_slice():
    eng = ReplayEngine(bars_of(volume=100.0), start="2024-01-01 05:00", costs=COSTS, max_participation=0.1)
    run(eng.next_bars())
    run(eng.submit([order(eng, "AAA/USDT", Side.BUY, 24.0, execution="TWAP", horizon=3)]))
    fills = []
    for _ in range(3):
        run(eng.next_bars())
        fills += run(eng.poll_updates())[1]
    assert [f.qty for f in fills] == pytest.approx([8.0, 8.0, 8.0])
    run(eng.cancel_all())
    eng2 = ReplayEngine(bars_of(volume=100.0), start="2024-01-01 05:00", costs=COSTS, max_participation=0.1)
    run(eng2.next_bars())
    run(eng2.submit([order(eng2, "AAA/USDT", Side.BUY, 27.0, execution="TWAP", horizon=3)]))
    got = []
    for _ in range(3):
        run(eng2.next_bars())
        got += run(eng2.poll_updates())[1]
    assert [f.qty for f in got] == pytest.approx([9.0, 9.0, 9.0])
    eng3 = ReplayEngine(bars_of(volume=100.0), start="2024-01-01 05:00", costs=COSTS, max_participation=0.1)
    run(eng3.next_bars())
    run(eng3.submit([order(eng3, "AAA/USDT", Side.BUY, 36.0, execution="TWAP", horizon=3)]))
    got = []
    for _ in range(3):
        run(eng3.next_bars())
        got += run(eng3.poll_updates())[1]
    assert [f.qty for f in got] == pytest.approx([10.0, 10.0, 10.0])   # 12 due per slice, 10 allowed


def test_submitting_the_same_client_order_id_twice_never_creates_a_second_order():
    eng = ReplayEngine(bars_of(), start="2024-01-01 05:00", costs=COSTS)
    run(eng.next_bars())
    o = order(eng, "AAA/USDT", Side.BUY, 5.0)
    run(eng.submit([o]))
    run(eng.submit([o]))
    run(eng.next_bars())
    assert len(run(eng.poll_updates())[1]) == 1 and eng.positions["AAA/USDT"] == 5.0


def test_a_sell_beyond_the_position_is_rejected_and_an_order_below_the_minimum_notional_expires_unfilled():
    eng = ReplayEngine(bars_of(), start="2024-01-01 05:00", costs=COSTS)
    run(eng.next_bars())
    (ack,) = run(eng.submit([order(eng, "AAA/USDT", Side.SELL, 1.0)]))
    assert ack.state is OrderState.REJECTED and "no short selling" in ack.reason
    run(eng.submit([order(eng, "BBB/USDT", Side.BUY, 0.01, cycle=1)]))   # ~2 USDT < 10 minimum
    run(eng.next_bars())
    ups, fills = run(eng.poll_updates())
    assert fills == [] and ups[-1].state is OrderState.EXPIRED and "minimum order notional" in ups[-1].reason


def test_the_kill_path_cancel_all_cancels_every_open_order():
    eng = ReplayEngine(bars_of(), start="2024-01-01 05:00", costs=COSTS)
    run(eng.next_bars())
    run(eng.submit([order(eng, "AAA/USDT", Side.BUY, 30.0, execution="TWAP", horizon=6)]))
    run(eng.next_bars())
    assert len(run(eng.poll_updates())[1]) == 1                 # the first slice
    cancelled = run(eng.cancel_all())
    assert [u.state for u in cancelled] == [OrderState.CANCELED] and run(eng.open_orders()) == []
    run(eng.next_bars())
    assert run(eng.poll_updates())[1] == []          # nothing fills after the cancel
    assert eng.positions["AAA/USDT"] == pytest.approx(5.0)   # the one slice filled before the cancel stays


def test_final_orders_are_forgotten_after_the_retention_window_so_long_replays_stay_flat():
    eng = ReplayEngine(bars_of(n=80), start="2024-01-01 05:00", costs=COSTS, keep_final_orders_bars=10)
    run(eng.next_bars())
    o = order(eng, "AAA/USDT", Side.BUY, 5.0)
    run(eng.submit([o]))
    run(eng.next_bars())
    assert [u.state for u in run(eng.order_status([o.client_order_id]))] == [OrderState.FILLED]
    for _ in range(40):
        run(eng.next_bars())
    assert run(eng.order_status([o.client_order_id])) == []
