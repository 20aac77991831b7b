from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.execution import create_optimal_execution_engine


@pytest.fixture(scope="session")
def start() -> pd.Timestamp:
    """A plan start 24 days into the 50-day market (calibrations need 14 days of warm-up)."""
    return pd.Timestamp("2022-01-25 10:00", tz="UTC")


@pytest.fixture(scope="session")
def market():
    """50 days of hourly synthetic bars for 3 symbols."""
    return generate_synthetic_market(n_assets=3, n_bars=24 * 50, seed=3)


@pytest.fixture(scope="session")
def bars(market):
    return market.bars


@pytest.fixture(scope="session")
def engine(bars):
    return create_optimal_execution_engine(bars)


# fakes for the exchange path (no network): a clock that sleeps instantly and a ccxt-like connection
class FakeClock:
    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> pd.Timestamp:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now = self.now + pd.Timedelta(seconds=seconds)


class FakeExchange:
    """Fills market orders at the bar open plus 2 bps, charges 0.1% fee in quote; serves bars up to the clock."""

    id = "fake"

    def __init__(self, bars: pd.DataFrame, clock: FakeClock, fail_on: dict[int, Exception] | None = None) -> None:
        self.bars, self.clock, self.fail_on = bars, clock, dict(fail_on or {})
        self.orders: list[tuple] = []
        self.calls = 0

    def fetch_ticker(self, symbol):
        t = self.clock().floor("h")
        o = float(self.bars.loc[t, "open"])
        return {"bid": o * (1 - 1e-4), "ask": o * (1 + 1e-4), "last": o}

    def amount_to_precision(self, symbol, amount):
        return f"{np.floor(amount * 1000) / 1000:.3f}"

    def create_order(self, symbol, type, side, amount):
        self.calls += 1
        if self.calls in self.fail_on:
            raise self.fail_on.pop(self.calls)
        t = self.clock().floor("h")
        price = float(self.bars.loc[t, "open"]) * (1 + (2e-4 if side == "buy" else -2e-4))
        self.orders.append((symbol, type, side, amount, t))
        return {"id": str(len(self.orders)), "status": "closed", "filled": amount, "average": price,
                "fee": {"cost": amount * price * 1e-3, "currency": "USDT"}}

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        df = self.bars[self.bars.index <= self.clock()]
        if since is not None:
            df = df[df.index >= pd.Timestamp(since, unit="ms", tz="UTC")]
        if limit is not None:
            df = df.iloc[:limit] if since is not None else df.iloc[-limit:]
        return [[int(t.value // 1_000_000), *row] for t, row in zip(df.index, df.to_numpy().tolist())]


@pytest.fixture(scope="session")
def fakes() -> tuple[type, type]:
    """(FakeClock, FakeExchange) classes."""
    return FakeClock, FakeExchange
