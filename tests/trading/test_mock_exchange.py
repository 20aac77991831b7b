"""The mock Binance server speaks Binance to ccxt's own ``binance`` class: markets, klines, signed account and
order endpoints, Binance's client-id and filter rules (raised as ccxt's own error classes), partial fills and
injected faults. Everything runs on 127.0.0.1; no network."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import ccxt
import pandas as pd
import pytest

from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.ccxt_venue import build_exchange

pytestmark = pytest.mark.timeout(120)

START = "2024-03-01 12:00:30"
BTC = MockMarket("BTC/USDT", 50_000.0, min_qty=1e-5, qty_step=1e-5, price_tick=0.01, min_notional=10.0,
                 bar_volume=20.0)
ETH = MockMarket("ETH/USDT", 3_000.0, min_qty=1e-4, qty_step=1e-4, price_tick=0.01, min_notional=5.0)


@pytest.fixture()
def mock() -> Iterator[MockBinance]:
    with MockBinance([BTC, ETH], clock=VirtualClock(START), timeframe="1m", fee_rate=0.001, hang_s=1.5) as m:
        yield m


def run(mock: MockBinance, body, **settings):
    """Run ``body(exchange)`` with ccxt's binance pointed at the mock; the client is always closed."""
    async def main():
        ex = build_exchange("binance", mock.settings(**settings))
        try:
            await ex.load_markets()
            return await body(ex)
        finally:
            await ex.close()
    return asyncio.run(main())


def test_ccxt_loads_the_mock_markets_with_their_binance_filters(mock):
    async def body(ex):
        return ex.markets

    markets = run(mock, body)
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
    eth = markets["ETH/USDT"]
    assert eth["spot"] and eth["id"] == "ETHUSDT" and eth["base"] == "ETH" and eth["quote"] == "USDT"
    assert eth["limits"]["amount"]["min"] == 1e-4 and eth["limits"]["cost"]["min"] == 5.0
    assert eth["precision"]["amount"] == 1e-4 and eth["precision"]["price"] == 0.01


def test_klines_serve_the_forming_candle_so_far_and_its_final_values_once_closed(mock):
    async def body(ex):
        return await ex.fetch_ohlcv("BTC/USDT", "1m", limit=3)

    rows = run(mock, body)
    forming_open = pd.Timestamp(START, tz="UTC").floor("1min")
    assert pd.Timestamp(rows[-1][0], unit="ms", tz="UTC") == forming_open  # Binance serves the forming candle
    mock.advance(1)
    truth = mock.closed_bars("BTC/USDT")
    final = truth.loc[forming_open]
    # half-way through the minute the candle had half the volume it closed with
    assert rows[-1][5] == pytest.approx(final["volume"] / 2, rel=1e-4)
    assert rows[-1][1] == final["open"]
    rows = run(mock, body)
    assert rows[-2][1:] == pytest.approx(list(final.values))


def test_signed_requests_read_balances_and_a_wrong_secret_is_refused(mock):
    async def body(ex):
        return await ex.fetch_balance()

    assert run(mock, body)["total"] == {"USDT": 100_000.0}
    with pytest.raises(ccxt.AuthenticationError, match="Signature for this request is not valid"):
        run(mock, body, secret="not-the-secret")


def test_a_market_order_fills_at_the_current_price_and_moves_both_balances(mock):
    price = mock.price("BTC/USDT")

    async def body(ex):
        order = await ex.create_order("BTC/USDT", "market", "buy", 0.1, None, {"newClientOrderId": "gw-a"})
        return order, await ex.fetch_balance(), await ex.fetch_my_trades("BTC/USDT")

    order, balance, trades = run(mock, body)
    assert order["status"] == "closed" and order["filled"] == 0.1 and order["clientOrderId"] == "gw-a"
    assert order["average"] == price
    assert balance["total"]["BTC"] == pytest.approx(0.1)
    assert balance["total"]["USDT"] == pytest.approx(100_000.0 - 0.1 * price * 1.001, abs=1e-6)
    assert [(t["amount"], t["price"], t["fee"]["cost"], t["fee"]["currency"]) for t in trades] == \
        [(0.1, price, pytest.approx(0.1 * price * 0.001), "USDT")]


def test_a_resting_limit_order_fills_partially_at_bar_closes_within_the_liquidity_cap():
    clock = VirtualClock(START)
    with MockBinance([BTC], clock=clock, timeframe="1m", liquidity_frac=0.02,
                     balances={"USDT": 0.0, "BTC": 1.0}) as mock:
        limit = round(mock.price("BTC/USDT") * 1.05, 2)  # a sell above the market rests

        async def place(ex):
            return await ex.create_order("BTC/USDT", "limit", "sell", 1.0, limit, {"newClientOrderId": "gw-sell"})

        async def status(ex):
            return await ex.fetch_order("", "BTC/USDT", {"clientOrderId": "gw-sell"})

        placed = run(mock, place)
        assert placed["status"] == "open" and placed["filled"] == 0.0
        # force the next bar through the limit: the mock fills at most 2% of the bar's volume per bar
        bar_open = clock.now().floor("1min")
        mock.bars.set_bar("BTC/USDT", bar_open, high=limit + 1.0)
        mock.advance(1)
        order = run(mock, status)
        cap = int(0.02 * mock.closed_bars("BTC/USDT").loc[bar_open, "volume"] / 1e-5) * 1e-5
        assert order["status"] == "open" and order["info"]["status"] == "PARTIALLY_FILLED"
        assert order["filled"] == pytest.approx(cap) and order["average"] == limit


def test_a_duplicate_client_id_of_an_open_order_is_rejected_the_way_binance_does(mock):
    far = 1_000.0  # a buy far below the market rests

    async def body(ex):
        await ex.create_order("BTC/USDT", "limit", "buy", 0.1, far, {"newClientOrderId": "gw-dup"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await ex.create_order("BTC/USDT", "limit", "buy", 0.1, far, {"newClientOrderId": "gw-dup"})
        await ex.cancel_order("", "BTC/USDT", {"clientOrderId": "gw-dup"})
        # once closed, Binance accepts the id again: the exchange alone does not stop a second order
        return await ex.create_order("BTC/USDT", "limit", "buy", 0.1, far, {"newClientOrderId": "gw-dup"})

    again = run(mock, body)
    assert again["status"] == "open"
    assert [o["status"] for o in mock.order_by_client_id("gw-dup")] == ["CANCELED", "NEW"]


@pytest.mark.parametrize("qty, error, message", [
    (0.0001, ccxt.BadRequest, "Filter failure: NOTIONAL"),          # 0.0001 BTC is ~4 USDT < 10
    (0.000015, ccxt.InvalidOrder, "LOT_SIZE"),                      # not a multiple of the 1e-5 step
    (10.0, ccxt.InsufficientFunds, "insufficient balance"),         # ~440k USDT > 100k
])
def test_filters_and_balance_reject_orders_as_ccxt_error_classes(mock, qty, error, message):
    async def body(ex):
        # bypass ccxt's own rounding so the exchange sees the raw quantity
        ex.markets["BTC/USDT"]["precision"]["amount"] = 1e-6
        await ex.create_order("BTC/USDT", "market", "buy", qty, None, {"newClientOrderId": "gw-x"})

    with pytest.raises(error, match=message):
        run(mock, body)
    assert mock.order_by_client_id("gw-x") == []


def test_injected_faults_look_like_network_errors_and_a_lost_response_still_creates_the_order(mock):
    async def body(ex):
        seen = {}
        mock.inject("GET", "account", "unavailable")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await ex.fetch_balance()
        mock.inject("POST", "order", "timeout")
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"newClientOrderId": "gw-t"})
        seen["timeout"] = mock.order_by_client_id("gw-t")
        mock.inject("POST", "order", "disconnect")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"newClientOrderId": "gw-d"})
        seen["disconnect"] = mock.order_by_client_id("gw-d")
        mock.inject("POST", "order", "lost_response")
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"newClientOrderId": "gw-l"})
        seen["lost"] = mock.order_by_client_id("gw-l")
        mock.reject_next(-2010, "Market is closed.")
        with pytest.raises(ccxt.MarketClosed):
            await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"newClientOrderId": "gw-r"})
        seen["balance"] = (await ex.fetch_balance())["total"]["BTC"]
        return seen

    seen = run(mock, body, timeout_ms=500)
    assert seen["timeout"] == seen["disconnect"] == []  # requests that never got through created nothing
    assert [o["status"] for o in seen["lost"]] == ["FILLED"]  # the order exists although the client timed out
    assert seen["balance"] == pytest.approx(0.01)


def test_latency_delays_every_response():
    with MockBinance([BTC], clock=VirtualClock(START), latency_s=0.3) as mock:
        async def body(ex):
            t = time.monotonic()
            await ex.fetch_balance()
            return time.monotonic() - t

        assert run(mock, body) >= 0.3


def test_the_server_stops_itself_after_its_lifetime():
    mock = MockBinance([BTC], clock=VirtualClock(START), lifetime_s=0.5)
    url = mock.start()
    port = int(url.rsplit(":", 1)[1])
    mock._thread.join(10)
    assert not mock._thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
