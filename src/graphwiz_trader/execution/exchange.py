"""Execute plans on a live exchange through a ccxt(-like) connection.

Any object with ccxt's ``create_order(symbol, type, side, amount)`` works; ``fetch_ticker`` (arrival
price), ``fetch_ohlcv`` (interval VWAP, PPO observations), ``fetch_order`` (fill details) and
``amount_to_precision`` are used when present. Children are sent as market orders at their times
(PARTICIPATE children too: intrabar slicing is left to the exchange's book). The interval VWAP is the
volume-weighted typical price (O+H+L+C)/4 of the closed bars of the horizon, read after the horizon ends
(``wait_for_interval_close``); it is NaN when the exchange returns no such bars.

Errors: ccxt network errors are retried ``max_retries`` times with exponential back-off; a child that
still fails, or that the exchange rejects (insufficient funds, invalid amount), is recorded as a
``rejected: ...`` fill of zero quantity, lowering the fill rate. Nothing is invented.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError, ExchangeUnavailableError
from graphwiz_trader.execution.market import MarketFeatureSettings, build_market_arrays, observation, size_feature
from graphwiz_trader.execution.types import (
    ExecutionPlan,
    ExecutionResult,
    Fill,
    OrderType,
    execution_metrics_from_fills,
)

log = logging.getLogger(__name__)


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _ccxt_errors() -> tuple[type[BaseException], type[BaseException]]:
    try:
        import ccxt

        return ccxt.NetworkError, ccxt.BaseError
    except ImportError:  # pragma: no cover - ccxt is pinned
        return OSError, RuntimeError


@dataclass
class ExchangeVenue:
    """A ccxt(-like) connection plus the clock used to wait for child times.

    ``sleep`` and ``clock`` are injectable so that tests (and paper runs) need not wait in real time.
    """

    exchange: Any
    timeframe: str = "1h"
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], pd.Timestamp] = _utc_now
    max_retries: int = 3
    retry_backoff_s: float = 1.0
    wait_for_interval_close: bool = True
    features: MarketFeatureSettings | None = None

    def __repr__(self) -> str:
        name = getattr(self.exchange, "id", type(self.exchange).__name__)
        return f"ExchangeVenue({name})"

    def _wait_until(self, t: pd.Timestamp) -> None:
        delay = (t - self.clock()).total_seconds()
        if delay > 0:
            self.sleep(delay)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        network_error, _ = _ccxt_errors()
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except network_error as exc:
                if attempt == self.max_retries:
                    raise ExchangeUnavailableError(f"{what} failed after {self.max_retries} retries: {exc}") from exc
                wait = self.retry_backoff_s * 2 ** attempt
                log.warning("%s: %s; retrying in %.1f s", what, exc, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")

    def arrival_price(self, symbol: str) -> float:
        t = self._call(f"fetch_ticker {symbol}", lambda: self.exchange.fetch_ticker(symbol))
        bid, ask = t.get("bid"), t.get("ask")
        if bid and ask:
            return (float(bid) + float(ask)) / 2.0
        if t.get("last"):
            return float(t["last"])
        raise DataError(f"{symbol}: the exchange ticker has neither bid/ask nor last price: {t}")

    def closed_bars(self, symbol: str, since: pd.Timestamp | None = None, limit: int | None = None) -> pd.DataFrame:
        """Closed OHLCV bars from ``fetch_ohlcv`` as a canonical frame (the forming bar is dropped)."""
        since_ms = None if since is None else int(since.value // 1_000_000)
        rows = self._call(f"fetch_ohlcv {symbol}",
                          lambda: self.exchange.fetch_ohlcv(symbol, self.timeframe, since=since_ms, limit=limit))
        df = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
        idx = pd.DatetimeIndex(pd.to_datetime(df.pop("ts").astype("int64"), unit="ms", utc=True), name="datetime")
        df.index = idx
        df = df.astype("float64")
        bar = pd.Timedelta(self.timeframe)
        return df[df.index + bar <= self.clock()]

    def _observe(self, plan: ExecutionPlan, remaining: float, k: int, size: float | None) -> tuple[np.ndarray, float]:
        cfg = self.features or MarketFeatureSettings()
        need = max(cfg.vol_window_bars, cfg.spread_window_bars, 24 * cfg.profile_days) + 5
        bars = self.closed_bars(plan.symbol, limit=need)
        m = build_market_arrays(bars, plan.symbol, self.timeframe, cfg)
        j = m.n - 1
        if not m.valid[j]:
            raise DataError(f"{plan.symbol}: the exchange returned {m.n} bars, too few for the PPO observation "
                            f"calibrations (need about {need})")
        if size is None:
            size = size_feature(plan.quantity_base, float(m.mean_volume[j]))
        obs = observation(m, j, plan.side.sign, remaining / plan.quantity_base,
                          (plan.horizon_bars - k) / plan.horizon_bars, size)
        return obs, size

    def _send(self, plan: ExecutionPlan, t: pd.Timestamp, q: float, otype: OrderType) -> Fill:
        ex = self.exchange
        _, base_error = _ccxt_errors()
        amount = float(ex.amount_to_precision(plan.symbol, q)) if hasattr(ex, "amount_to_precision") else q
        if amount <= 0:
            return Fill(t, q, 0.0, float("nan"), 0.0, otype, status="rejected: below the exchange's amount precision")
        try:
            order = self._call(f"create_order {plan.symbol}",
                               lambda: ex.create_order(plan.symbol, "market", plan.side.value, amount))
            if (order.get("filled") is None or order.get("average") is None) and hasattr(ex, "fetch_order") and order.get("id"):
                order = self._call(f"fetch_order {order['id']}", lambda: ex.fetch_order(order["id"], plan.symbol))
        except (ExchangeUnavailableError, base_error) as exc:
            log.warning("%s child at %s rejected: %s", plan.symbol, t, exc)
            return Fill(t, q, 0.0, float("nan"), 0.0, otype, status=f"rejected: {exc}")
        filled = float(order.get("filled") or 0.0)
        avg = order.get("average") or order.get("price")
        if avg is None and order.get("cost") and filled > 0:
            avg = float(order["cost"]) / filled
        price = float(avg) if avg is not None else float("nan")
        fee_quote = 0.0
        fee = order.get("fee") or {}
        if fee.get("cost") is not None:
            base, quote = plan.symbol.split("/")
            cur = fee.get("currency")
            fee_quote = float(fee["cost"]) if cur == quote else float(fee["cost"]) * price if cur == base else float("nan")
        status = "filled" if filled >= amount * (1 - 1e-9) else ("partial" if filled > 0 else f"rejected: {order.get('status')}")
        return Fill(time_utc=t, requested_base=q, quantity_base=filled, price_quote=price, fee_quote=fee_quote,
                    order_type=otype, reference_price_quote=price, status=status, order_id=order.get("id"))

    def run(self, plan: ExecutionPlan, policy: Any = None) -> ExecutionResult:
        """Work ``plan`` on the exchange (blocking until the last child, and the horizon's end for VWAP)."""
        self._wait_until(plan.start_utc)
        arrival = self.arrival_price(plan.symbol)
        fills: list[Fill] = []
        remaining = plan.quantity_base
        if plan.adaptive:
            if policy is None:
                raise DataError(f"plan for {plan.symbol} is adaptive ({plan.strategy.value}); pass its policy")
            size = None
            for k in range(plan.horizon_bars):
                t = plan.start_utc + pd.Timedelta(minutes=plan.bar_minutes * k)
                self._wait_until(t)
                if k == plan.horizon_bars - 1:
                    q = remaining
                else:
                    obs, size = self._observe(plan, remaining, k, size)
                    q = float(np.clip(policy.fraction(obs), 0.0, 1.0)) * remaining
                if q <= 0:
                    continue
                f = self._send(plan, t, q, OrderType.MARKET)
                fills.append(f)
                remaining -= f.quantity_base
        else:
            for c in sorted(plan.children, key=lambda c: c.time_utc):
                self._wait_until(c.time_utc)
                fills.append(self._send(plan, c.time_utc, c.quantity_base, c.order_type))
        if self.wait_for_interval_close:
            self._wait_until(plan.end_utc)
        vwap = float("nan")
        if hasattr(self.exchange, "fetch_ohlcv"):
            bars = self.closed_bars(plan.symbol, since=plan.start_utc, limit=plan.horizon_bars)
            bars = bars[(bars.index >= plan.start_utc) & (bars.index < plan.end_utc)]
            if len(bars) and bars["volume"].sum() > 0:
                typ = bars[["open", "high", "low", "close"]].mean(axis=1)
                vwap = float((typ * bars["volume"]).sum() / bars["volume"].sum())
        metrics = execution_metrics_from_fills(plan.side, plan.quantity_base, arrival, vwap, fills)
        return ExecutionResult(plan=plan, fills=tuple(fills), metrics=metrics, venue=repr(self))
