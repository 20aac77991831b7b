"""The ccxt adapter pages, retries transient errors, fails clearly when unreachable; never fakes data."""

import asyncio

import ccxt
import pandas as pd
import pytest

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.data.ccxt_source import CcxtBarSource
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.errors import ExchangeUnavailableError, UnknownSymbolError

H = 3_600_000
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)


class FakeExchange:
    """Stands in for a ccxt async exchange: 100 hourly candles from T0, pages of at most 30."""

    def __init__(self, fail_first=0, always_fail=False, n=100):
        self.markets = {"BTC/USDT": {}, "ETH/USDT": {}}
        self.calls = []
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.n = n

    async def load_markets(self):
        return self.markets

    async def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        self.calls.append((symbol, since, limit))
        if self.always_fail or len(self.calls) <= self.fail_first:
            raise ccxt.NetworkError("binance GET https://api.binance.com/api/v3/klines: connection refused")
        rows = [[T0 + i * H, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0] for i in range(self.n)]
        if since is None:
            return rows[-(limit or 500):]
        return [r for r in rows if r[0] >= since][: min(limit or 500, 30)]

    async def close(self):
        pass


def adapter(ex, retries=3):
    return CcxtBarSource("binance", ExchangeSettings(max_retries=retries, retry_backoff_s=0.001), exchange=ex)


def test_fetch_pages_through_since_until_the_data_ends():
    ex = FakeExchange()
    df = asyncio.run(adapter(ex).fetch_ohlcv("BTC/USDT", "1h", since="2024-01-01"))
    assert len(df) == 100 and df.index.is_unique
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC") and str(df.index.tz) == "UTC"
    assert df["close"].iloc[-1] == 199.5
    sinces = [c[1] for c in ex.calls]
    assert sinces[:4] == [T0, T0 + 30 * H, T0 + 60 * H, T0 + 90 * H]


def test_limit_caps_the_number_of_candles():
    df = asyncio.run(adapter(FakeExchange()).fetch_ohlcv("BTC/USDT", "1h", since="2024-01-01", limit=45))
    assert len(df) == 45


def test_transient_network_errors_are_retried():
    ex = FakeExchange(fail_first=2)
    df = asyncio.run(adapter(ex).fetch_ohlcv("ETH/USDT", "1h", limit=10))
    assert len(df) == 10 and len(ex.calls) == 3


def test_an_unreachable_exchange_raises_after_retries_and_substitutes_nothing():
    ex = FakeExchange(always_fail=True)
    with pytest.raises(ExchangeUnavailableError,
                       match=r"exchange binance unreachable while fetching BTC/USDT 1h after 3 attempts: NetworkError"):
        asyncio.run(adapter(ex, retries=2).fetch_ohlcv("BTC/USDT", "1h", limit=10))
    assert len(ex.calls) == 3


def test_an_unknown_symbol_is_named():
    with pytest.raises(UnknownSymbolError, match="unknown symbol\\(s\\) DOGE/USDT in exchange binance"):
        asyncio.run(adapter(FakeExchange()).fetch_ohlcv("DOGE/USDT", "1h", limit=5))


def test_a_repeated_sync_pulls_only_new_candles(tmp_path):
    store = ParquetStore(tmp_path)
    ex = FakeExchange(n=40)
    a = adapter(ex)
    assert asyncio.run(a.sync_to_store(store, ["BTC/USDT"], "1h", "2024-01-01")) == {"BTC/USDT": 40}
    ex.n, ex.calls = 70, []
    assert asyncio.run(a.sync_to_store(store, ["BTC/USDT"], "1h", "2024-01-01")) == {"BTC/USDT": 30}
    assert ex.calls[0][1] == T0 + 40 * H  # starts right after the stored bar
    assert len(store.read("BTC/USDT", "1h")) == 70


def test_keys_never_show_in_the_adapter_repr():
    s = ExchangeSettings(api_key="AKIAVERYSECRET", secret="shh-secret")
    a = CcxtBarSource("binance", s, exchange=FakeExchange())
    assert "AKIAVERYSECRET" not in repr(a) and "shh-secret" not in repr(a) + repr(s)
