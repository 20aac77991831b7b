"""The live engine runs ccxt's own ``binance`` class against the mock exchange on 127.0.0.1: keys, sandbox,
markets, balances, orders that are never doubled (lost responses, duplicate ids, restarts), rejections that say
why, fills from myTrades reported once, and network errors retried with backoff until ExchangeUnavailableError."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pandas as pd
import pytest

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.errors import ConfigError, ExchangeUnavailableError
from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.base import TradingEngine
from graphwiz_trader.trading.engines.ccxt_venue import VenueAuthError, build_exchange
from graphwiz_trader.trading.engines.live import LiveTradingEngine
from graphwiz_trader.trading.types import (
    MarketRules,
    OrderRequest,
    OrderState,
    Side,
    client_order_id,
)

pytestmark = pytest.mark.timeout(120)

START = "2024-03-01 12:00:30"
BTC = MockMarket("BTC/USDT", 50_000.0, bar_volume=20.0)
ETH = MockMarket("ETH/USDT", 3_000.0, min_qty=1e-4, qty_step=1e-4, min_notional=5.0)
FEED = {"poll_interval_s": 0.01, "close_grace_s": 0.0, "ws_grace_s": 0.3}


@pytest.fixture()
def mock() -> Iterator[MockBinance]:
    with MockBinance([BTC, ETH], clock=VirtualClock(START), timeframe="1m", fee_rate=0.001, hang_s=1.0) as m:
        yield m


def engine(mock: MockBinance, sleeps: list[float] | None = None, **kw) -> LiveTradingEngine:
    async def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)
        await asyncio.sleep(0)

    settings = kw.pop("settings", None) or mock.settings(timeout_ms=500)
    return LiveTradingEngine(["BTC/USDT", "ETH/USDT"], settings=settings, timeframe="1m", clock=mock.clock,
                             use_websocket=False, feed_options=FEED, sleep=sleep, **kw)


def live(mock: MockBinance, body, sleeps: list[float] | None = None, **kw):
    async def main():
        eng = engine(mock, sleeps, **kw)
        await eng.start()
        try:
            return await body(eng)
        finally:
            await eng.close()
    return asyncio.run(main())


def order(symbol: str, qty: float, side: Side = Side.BUY, cycle: int = 1, leg: int = 0, **kw) -> OrderRequest:
    return OrderRequest(client_order_id("run-live", cycle, symbol, leg), "run-live", cycle, symbol, side, qty,
                        pd.Timestamp("2024-03-01 12:00", tz="UTC"), leg=leg, **kw)


def test_the_live_engine_implements_the_engine_interface(mock):
    assert isinstance(engine(mock), TradingEngine)


def test_live_trading_refuses_to_start_without_keys_and_never_shows_them(mock, caplog):
    no_keys = ExchangeSettings(api_url=mock.base_url)
    with pytest.raises(ConfigError, match=r"needs exchanges.binance.api_key and secret .*BINANCE_API_KEY"):
        asyncio.run(engine(mock, settings=no_keys).start())
    bad = mock.settings(api_key="wrong-key-0123456789", secret="wrong-secret-0123456789")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(VenueAuthError) as err:
        live(mock, lambda eng: eng.account(), settings=bad)
    eng = engine(mock, settings=bad)
    shown = str(err.value) + repr(eng) + caplog.text
    assert "wrong-key-0123456789" not in shown and "wrong-secret-0123456789" not in shown


def test_the_sandbox_switch_points_ccxt_at_binance_testnet():
    ex = build_exchange("binance", ExchangeSettings(api_key="k" * 8, secret="s" * 8, sandbox=True))
    try:
        assert ex.urls["api"]["private"].startswith("https://testnet.binance.vision/")
        assert ex.isSandboxModeEnabled
    finally:
        asyncio.run(ex.close())
    real = build_exchange("binance", ExchangeSettings())
    try:
        assert real.urls["api"]["private"].startswith("https://api.binance.com/")
    finally:
        asyncio.run(real.close())


def test_start_loads_market_rules_and_the_account_from_the_exchange(mock):
    async def body(eng):
        return await eng.market_rules(["BTC/USDT", "ETH/USDT"]), await eng.account()

    rules, account = live(mock, body)
    assert rules["ETH/USDT"] == MarketRules("ETH/USDT", min_qty=1e-4, min_notional_quote=5.0, qty_step=1e-4,
                                            price_tick=0.01)
    assert account.cash_quote == 100_000.0 and account.positions == {}


def test_a_market_order_fills_and_its_fill_comes_back_once_from_my_trades(mock):
    price = mock.price("BTC/USDT")
    o = order("BTC/USDT", 0.1)

    async def body(eng):
        ups = await eng.submit([o])
        first = await eng.poll_updates()
        second = await eng.poll_updates()
        return ups, first, second, await eng.account()

    ups, (_, fills), (ups2, fills2), account = live(mock, body)
    assert ups[0].state is OrderState.FILLED and ups[0].filled_qty == 0.1 and ups[0].avg_price == price
    assert len(fills) == 1 and fills2 == [] and ups2 == []
    f = fills[0]
    trade = mock.trades[0]
    assert f.fill_id == f"{o.client_order_id}:{trade['id']}" and f.qty == 0.1 and f.price == price
    assert f.fee_quote == pytest.approx(0.1 * price * 0.001)
    assert account.positions == {"BTC/USDT": pytest.approx(0.1)}
    assert account.cash_quote == pytest.approx(100_000.0 - 0.1 * price * 1.001, abs=1e-6)


def test_a_limit_order_fills_partially_over_bars_and_cancel_all_cancels_the_rest():
    clock = VirtualClock(START)
    with MockBinance([BTC, ETH], clock=clock, timeframe="1m", liquidity_frac=0.01,
                     balances={"USDT": 0.0, "BTC": 2.0}) as mock:
        limit = round(mock.price("BTC/USDT") * 0.9, 2)  # a sell below the market fills at once, capped
        o = order("BTC/USDT", 2.0, Side.SELL, order_type="limit", limit_price=limit)
        at_submit = mock.price("BTC/USDT")

        async def body(eng):
            first = (await eng.submit([o]))[0]
            mock.advance(1)
            ups, fills = await eng.poll_updates()
            canceled = await eng.cancel_all()
            return first, ups, fills, canceled, await eng.open_orders()

        first, ups, fills, canceled, still_open = live(mock, body)
    caps = [t["qty"] for t in mock.trades]
    assert first.state is OrderState.PARTIALLY_FILLED and first.filled_qty == pytest.approx(float(caps[0]))
    assert len(mock.trades) == 2  # one fill on submit, one at the bar close
    assert ups[0].state is OrderState.PARTIALLY_FILLED
    assert ups[0].filled_qty == pytest.approx(sum(float(q) for q in caps))
    assert sum(f.qty for f in fills) == pytest.approx(ups[0].filled_qty)  # every fill once
    next_open = mock.closed_bars("BTC/USDT")["open"].iloc[-1]
    # taker at the market when sent; then, resting, at the next bar's open (better than the limit)
    assert [f.price for f in fills] == [at_submit, next_open] and next_open > limit
    assert [c.state for c in canceled] == [OrderState.CANCELED] and still_open == []


def test_network_errors_are_retried_with_backoff_then_raise_exchange_unavailable(mock):
    sleeps: list[float] = []
    mock.inject("GET", "account", "unavailable", times=2)
    account = live(mock, lambda eng: eng.account(), sleeps=sleeps, settings=mock.settings(max_retries=3))
    assert account.cash_quote == 100_000.0
    assert sleeps == [0.01, 0.02]  # retry_backoff_s, doubled per attempt
    sleeps.clear()
    mock.inject("GET", "account", "unavailable", times=50)
    with pytest.raises(ExchangeUnavailableError, match=r"unreachable while fetching balances after 4 attempt"):
        live(mock, lambda eng: eng.account(), sleeps=sleeps, settings=mock.settings(max_retries=3))
    assert sleeps[-3:] == [0.01, 0.02, 0.04]


def test_a_lost_create_response_is_resolved_by_looking_the_client_id_up_never_by_sending_again(mock):
    o = order("BTC/USDT", 0.05)
    mock.inject("POST", "order", "lost_response")

    ups = live(mock, lambda eng: eng.submit([o]))
    assert ups[0].state is OrderState.FILLED and ups[0].filled_qty == 0.05
    assert mock.create_calls() == 1 and len(mock.order_by_client_id(o.client_order_id)) == 1


def test_an_order_the_exchange_never_received_is_sent_again_after_the_lookup_says_so(mock):
    o = order("BTC/USDT", 0.05)
    mock.inject("POST", "order", "timeout")  # the request never got through

    ups = live(mock, lambda eng: eng.submit([o]))
    assert ups[0].state is OrderState.FILLED
    assert mock.create_calls() == 2 and len(mock.order_by_client_id(o.client_order_id)) == 1


def test_an_unreachable_exchange_while_sending_raises_and_leaves_no_order(mock):
    o = order("BTC/USDT", 0.05)
    mock.inject("POST", "order", "unavailable", times=50)
    with pytest.raises(ExchangeUnavailableError, match=r"sending order gw\w+ \(buy 0.05 BTC/USDT\).*does not have it"):
        live(mock, lambda eng: eng.submit([o]))
    assert mock.order_by_client_id(o.client_order_id) == []


def test_two_engines_racing_on_one_client_id_make_one_order_the_loser_fetches_it():
    with MockBinance([BTC, ETH], clock=VirtualClock(START), timeframe="1m", latency_s=0.2) as mock:
        o = order("BTC/USDT", 0.1, order_type="limit", limit_price=1_000.0)  # rests: stays open

        async def main():
            a, b = engine(mock), engine(mock)
            await asyncio.gather(a.start(), b.start())
            try:
                # both look the id up before either creates it; the exchange rejects the second as a duplicate
                return await asyncio.gather(a.submit([o]), b.submit([o]))
            finally:
                await asyncio.gather(a.close(), b.close())

        (ua,), (ub,) = asyncio.run(main())
    assert mock.create_calls() == 2 and len(mock.order_by_client_id(o.client_order_id)) == 1
    assert ua.venue_order_id == ub.venue_order_id and ua.state is ub.state is OrderState.OPEN


def test_resubmitting_a_filled_order_after_a_restart_does_not_send_it_again(mock):
    o = order("BTC/USDT", 0.1)
    first = live(mock, lambda eng: eng.submit([o]))
    again = live(mock, lambda eng: eng.submit([o]))  # a new process: knows nothing of the first
    assert first[0].state is again[0].state is OrderState.FILLED
    assert first[0].venue_order_id == again[0].venue_order_id
    assert mock.create_calls() == 1  # Binance would have accepted the closed id again


def test_an_order_below_the_minimum_notional_is_rejected_saying_so(mock):
    o = order("BTC/USDT", 0.0001)  # ~4.4 USDT < 10 USDT

    async def body(eng):
        await eng.history(["BTC/USDT"], 2)
        return (await eng.submit([o]))[0]

    up = live(mock, body)
    last_close = mock.closed_bars("BTC/USDT")["close"].iloc[-1]
    assert up.state is OrderState.REJECTED
    assert up.reason.startswith(f"buy 0.0001 BTC/USDT: order notional {0.0001 * last_close:.2f} USDT is below "
                                "the minimum notional 10 USDT")
    assert "Filter failure: NOTIONAL" in up.reason


def test_insufficient_balance_is_rejected_saying_what_was_needed_and_what_is_free(mock):
    o = order("BTC/USDT", 5.0)  # ~220k USDT

    async def body(eng):
        await eng.history(["BTC/USDT"], 2)
        return (await eng.submit([o]))[0]

    up = live(mock, body)
    need = 5.0 * mock.closed_bars("BTC/USDT")["close"].iloc[-1]
    assert up.state is OrderState.REJECTED
    assert f"insufficient balance: needs ~{need:.2f} USDT, free 100000 USDT" in up.reason


def test_other_exchange_rejections_come_back_with_the_exchange_message(mock):
    mock.reject_next(-2010, "Market is closed.")
    up = live(mock, lambda eng: eng.submit([order("ETH/USDT", 0.01)]))[0]
    assert up.state is OrderState.REJECTED and "Market is closed." in up.reason
    assert mock.order_by_client_id(up.client_order_id) == []


def test_an_order_for_a_symbol_the_engine_does_not_trade_is_rejected(mock):
    o = OrderRequest(client_order_id("run-live", 1, "DOGE/USDT"), "run-live", 1, "DOGE/USDT", Side.BUY, 1.0,
                     pd.Timestamp("2024-03-01 12:00", tz="UTC"))
    up = live(mock, lambda eng: eng.submit([o]))[0]
    assert up.state is OrderState.REJECTED and "unknown symbol DOGE/USDT" in up.reason
    assert mock.create_calls() == 0
