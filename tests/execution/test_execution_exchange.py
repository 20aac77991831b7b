"""Executing plans through a ccxt-like connection (a fake one: no network)."""

from __future__ import annotations

import ccxt
import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.execution import ExchangeVenue, ExecutionInputError

SYM = "SYN00/USDT"


def test_twap_plan_on_an_exchange_connection_sends_market_orders_and_reports_metrics(engine, bars, start, fakes):
    FakeClock, FakeExchange = fakes
    clock = FakeClock(start - pd.Timedelta(minutes=20))
    ex = FakeExchange(bars[SYM], clock)
    plan = engine.create_execution_plan(SYM, "buy", 12.3456, "TWAP", start, 4)
    res = engine.execute(plan, ExchangeVenue(ex, sleep=clock.sleep, clock=clock))
    amount = np.floor(12.3456 / 4 * 1000) / 1000
    assert ex.orders == [(SYM, "market", "buy", amount, start + pd.Timedelta(hours=k)) for k in range(4)]
    prices = [float(bars[SYM].loc[start + pd.Timedelta(hours=k), "open"]) * 1.0002 for k in range(4)]
    avg = sum(prices) / 4
    arrival = float(bars[SYM].loc[start, "open"])
    m = res.metrics
    assert m.average_price_quote == pytest.approx(avg, rel=1e-12)
    assert m.implementation_shortfall_bps == pytest.approx((avg - arrival) / arrival * 1e4, rel=1e-9)
    assert m.fill_rate == pytest.approx(4 * amount / 12.3456)
    assert m.fees_bps == pytest.approx(10.0)
    w = bars[SYM].loc[start: start + pd.Timedelta(hours=3)]
    vwap = float((((w.open + w.high + w.low + w.close) / 4) * w.volume).sum() / w.volume.sum())
    assert m.vwap_slippage_bps == pytest.approx((avg - vwap) / vwap * 1e4, rel=1e-9)
    assert clock() >= plan.end_utc  # waited for the horizon to close before reading the interval VWAP


def test_rejected_child_lowers_fill_rate_and_network_errors_are_retried(engine, bars, start, fakes):
    FakeClock, FakeExchange = fakes
    clock = FakeClock(start)
    ex = FakeExchange(bars[SYM], clock, fail_on={2: ccxt.InsufficientFunds("not enough USDT"),
                                                  3: ccxt.NetworkError("timeout")})
    plan = engine.create_execution_plan(SYM, "sell", 4.0, "TWAP", start, 4)
    res = engine.execute(plan, ExchangeVenue(ex, sleep=clock.sleep, clock=clock, retry_backoff_s=0.5))
    assert [f.status for f in res.fills] == ["filled", "rejected: not enough USDT", "filled", "filled"]
    assert res.metrics.fill_rate == pytest.approx(0.75)
    assert 0.5 in clock.slept  # one back-off before the retry that succeeded


def test_a_raw_connection_object_is_wrapped_and_a_bad_venue_refused(engine, bars, start, fakes):
    FakeClock, FakeExchange = fakes
    plan = engine.create_execution_plan(SYM, "buy", 1.0, "MARKET", start, 1)
    ex = FakeExchange(bars[SYM], FakeClock(start))  # the plan's times are in the past: nothing waits
    res = engine.execute(plan, ex)
    assert res.venue == "ExchangeVenue(fake)"
    assert res.fills[0].order_id == "1" and res.metrics.fill_rate == 1.0
    assert res.metrics.average_price_quote == pytest.approx(float(bars[SYM].loc[start, "open"]) * 1.0002)
    with pytest.raises(ExecutionInputError, match="venue must be a MarketImpactSimulator, an ExchangeVenue or an "
                                                  "exchange connection with create_order; got str"):
        engine.execute(plan, "binance")
