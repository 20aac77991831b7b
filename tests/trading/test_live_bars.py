"""Bars for the paper and live engines (the shared bar feed), from the mock exchange through ccxt: REST polling and
ccxt.pro websocket streaming, only closed bars, each once, gaps (a disconnect, a missed close) back-filled, and
the data age a strategy checks before trading."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from graphwiz_trader.errors import ExchangeUnavailableError, UnknownSymbolError
from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.live import LiveTradingEngine

pytestmark = pytest.mark.timeout(120)

START = "2024-03-01 12:00:30"
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


@pytest.fixture()
def mock() -> Iterator[MockBinance]:
    with MockBinance([MockMarket("BTC/USDT", 50_000.0), MockMarket("ETH/USDT", 3_000.0)], clock=VirtualClock(START),
                     timeframe="1m") as m:
        yield m


def engine(mock: MockBinance, websocket: bool, symbols=SYMBOLS, **feed) -> LiveTradingEngine:
    options = {"poll_interval_s": 0.01, "close_grace_s": 0.0, "ws_grace_s": 2.0, **feed}
    return LiveTradingEngine(symbols, settings=mock.settings(), timeframe="1m", clock=mock.clock,
                             use_websocket=websocket, feed_options=options)


def truth(mock: MockBinance, symbol: str, index: pd.DatetimeIndex) -> pd.DataFrame:
    return mock.closed_bars(symbol).loc[index]


def assert_closed_and_true(mock: MockBinance, bars: dict[str, pd.DataFrame]) -> None:
    forming = mock.clock.now().floor("1min")
    for s, df in bars.items():
        assert (df.index < forming).all(), f"{s}: the still-forming candle was handed out"
        pd.testing.assert_frame_equal(df, truth(mock, s, df.index), check_freq=False)


def test_polled_bars_are_closed_exact_each_once_and_a_missed_close_is_back_filled(mock):
    async def main():
        eng = engine(mock, websocket=False)
        await eng.start()
        try:
            hist = await eng.history(SYMBOLS, 5)
            mock.advance(1)
            one = await eng.next_bars()
            mock.advance(3)  # three closes pass before the next call
            three = await eng.next_bars()
            return hist, one, three, eng.now(), eng.data_age(), eng.feed.stats
        finally:
            await eng.close()

    hist, one, three, now, age, stats = asyncio.run(main())
    assert_closed_and_true(mock, hist)
    assert list(hist["BTC/USDT"].index) == list(pd.date_range("2024-03-01 11:55", periods=5, freq="1min", tz="UTC"))
    assert_closed_and_true(mock, one)
    assert_closed_and_true(mock, three)
    assert {s: list(df.index) for s, df in one.items()} == {s: [pd.Timestamp("2024-03-01 12:00", tz="UTC")]
                                                            for s in SYMBOLS}
    assert {s: len(df) for s, df in three.items()} == {"BTC/USDT": 3, "ETH/USDT": 3}
    assert three["BTC/USDT"].index[0] == pd.Timestamp("2024-03-01 12:01", tz="UTC")
    assert now == pd.Timestamp("2024-03-01 12:04", tz="UTC")  # close of the last bar handed out
    assert age == pd.Timedelta(seconds=30) and stats["gap_bars"] == 4


def test_data_age_grows_while_no_bar_arrives(mock):
    async def main():
        eng = engine(mock, websocket=False)
        await eng.start()
        try:
            await eng.history(SYMBOLS, 3)
            fresh = eng.data_age()
            mock.clock.set(mock.clock.now() + pd.Timedelta(minutes=7))  # time passes, no bar is taken
            return fresh, eng.data_age(), eng.data_ages()
        finally:
            await eng.close()

    fresh, stale, per_symbol = asyncio.run(main())
    assert fresh == pd.Timedelta(seconds=30)
    assert stale == pd.Timedelta(minutes=7, seconds=30) and set(per_symbol.values()) == {stale}


def test_websocket_bars_are_used_when_final_and_a_disconnect_is_back_filled_by_rest(mock):
    async def settle(eng, seconds=0.3):
        await asyncio.sleep(seconds)  # let the stream task take the pushed klines

    async def main():
        eng = engine(mock, websocket=True)
        await eng.start()
        got: list[dict[str, pd.DataFrame]] = []
        try:
            assert eng.feed.ws_exchange is not None
            await settle(eng, 0.5)  # subscribed
            for _ in range(3):
                mock.advance(1)
                got.append(await eng.next_bars())
            streamed = eng.feed.stats["ws_bars"]
            mock.set_websocket_down(True)  # disconnect; reconnects are refused while down
            await settle(eng)
            mock.advance(3)
            got.append(await eng.next_bars())
            down_stats = dict(eng.feed.stats)
            mock.set_websocket_down(False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # reconnected: the stream delivers again
                mock.advance(1)
                got.append(await eng.next_bars())
                if eng.feed.stats["ws_bars"] > down_stats["ws_bars"]:
                    break
                await settle(eng)
            return got, streamed, down_stats, dict(eng.feed.stats)
        finally:
            await eng.close()

    got, streamed, down, end = asyncio.run(main())
    for bars in got:
        assert_closed_and_true(mock, bars)
    for s in SYMBOLS:  # every closed bar once, in order, no gap
        idx = pd.DatetimeIndex([t for bars in got for t in bars[s].index])
        assert idx.is_monotonic_increasing and idx.is_unique
        assert list(idx) == list(pd.date_range(idx[0], idx[-1], freq="1min"))
    assert streamed >= 2  # bars 2 and 3 came whole over the websocket
    assert down["reconnects"] >= 1 and down["gap_bars"] >= 4  # the 3 bars missed while down: back-filled
    assert end["ws_bars"] > down["ws_bars"]


def test_an_exchange_unreachable_for_bars_raises_exchange_unavailable(mock):
    async def main():
        eng = engine(mock, websocket=False)
        await eng.start()
        try:
            mock.inject("GET", "klines", "unavailable", times=50)
            mock.advance(1)
            await eng.next_bars()
        finally:
            await eng.close()

    with pytest.raises(ExchangeUnavailableError, match=r"fetching BTC/USDT 1m bars since .* after 3 attempt"):
        asyncio.run(main())


def test_a_symbol_the_exchange_does_not_list_is_refused_at_start(mock):
    with pytest.raises(UnknownSymbolError, match=r"DOGE/USDT in exchange binance; available: BTC/USDT, ETH/USDT"):
        asyncio.run(engine(mock, websocket=False, symbols=["BTC/USDT", "DOGE/USDT"]).start())
