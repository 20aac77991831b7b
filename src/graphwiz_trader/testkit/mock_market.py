"""The market and the account behind the mock Binance server (:mod:`graphwiz_trader.testkit.mock_exchange`).

- :class:`VirtualClock`: the UTC "now" a test moves by hand, shared by the server and the engines;
- :class:`MockMarket`: one spot market's Binance filters and synthetic price parameters;
- :class:`SyntheticBars`: a deterministic SYNTHETIC OHLCV path per market; a forming bar shows its values so far;
- :class:`SpotBook`: balances, orders and trades with Binance's rules (client ids unique among open orders,
  ``LOT_SIZE``/``PRICE_FILTER``/``NOTIONAL`` filters, insufficient balance), market orders filled at the current
  price up to the liquidity cap (the rest expires), resting limit orders filled at bar closes.

Errors are :class:`BinanceError` (Binance's code and message; the server returns them as Binance does).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BinanceError", "MockMarket", "Order", "SpotBook", "SyntheticBars", "VirtualClock", "fmt"]


def fmt(x: float) -> str:
    """A number as Binance writes it (8 decimals)."""
    return f"{x:.8f}"


class BinanceError(Exception):
    """A Binance error response: ``code``, ``msg`` and the HTTP status."""

    def __init__(self, code: int, msg: str, http: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.http = code, msg, http


class VirtualClock:
    """A UTC clock a test moves by hand, shared (thread-safely) by the mock and the engines."""

    def __init__(self, start: pd.Timestamp | str) -> None:
        self._t = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
        self._lock = threading.Lock()

    def __call__(self) -> pd.Timestamp:
        return self.now()

    def now(self) -> pd.Timestamp:
        with self._lock:
            return self._t

    def now_ms(self) -> int:
        return int(self.now().value // 1_000_000)

    def set(self, t: pd.Timestamp) -> None:
        with self._lock:
            if t < self._t:
                raise ValueError(f"the virtual clock only moves forward ({t} < {self._t})")
            self._t = t


@dataclass(frozen=True)
class MockMarket:
    """One spot market of the mock: filters as on Binance, and the synthetic price path's parameters."""

    symbol: str
    start_price: float = 100.0
    min_qty: float = 1e-5
    qty_step: float = 1e-5
    price_tick: float = 0.01
    min_notional: float = 10.0
    bar_volume: float = 50.0  # mean base units per bar
    volatility: float = 0.002  # std of log returns per bar

    @property
    def market_id(self) -> str:
        return self.symbol.replace("/", "")

    @property
    def base(self) -> str:
        return self.symbol.split("/")[0]

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


@dataclass
class Order:
    order_id: int
    client_id: str
    market: MockMarket
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    orig_qty: float
    price: float
    time_ms: int
    status: str = "NEW"
    executed_qty: float = 0.0
    quote_qty: float = 0.0
    update_ms: int = 0
    locked: float = 0.0  # quote (buy) or base (sell) still locked

    def payload(self) -> dict[str, Any]:
        return {"symbol": self.market.market_id, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_id, "price": fmt(self.price), "origQty": fmt(self.orig_qty),
                "executedQty": fmt(self.executed_qty), "cummulativeQuoteQty": fmt(self.quote_qty),
                "status": self.status, "timeInForce": "GTC",
                "type": self.type, "side": self.side, "stopPrice": "0.00000000", "icebergQty": "0.00000000",
                "time": self.time_ms, "updateTime": self.update_ms or self.time_ms,
                "isWorking": self.status in ("NEW", "PARTIALLY_FILLED"), "workingTime": self.time_ms,
                "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}


class SyntheticBars:
    """A deterministic SYNTHETIC OHLCV path per market (log-normal returns, wicks, volumes) on a bar grid.

    Bar ``k`` opens at ``origin_ms + k * step_ms``; prices are on each market's tick and written with 8 decimals,
    exactly as served.
    """

    def __init__(self, markets: dict[str, MockMarket], step_ms: int, origin_ms: int, n_bars: int, seed: int) -> None:
        self.markets, self.step_ms, self.origin_ms = markets, step_ms, origin_ms
        self.arrays = {m.symbol: self._path(m, n_bars, seed + i) for i, m in enumerate(markets.values())}

    @staticmethod
    def _path(m: MockMarket, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        r = rng.normal(0.0, m.volatility, n)
        close = m.start_price * np.exp(np.cumsum(r))
        open_ = np.concatenate([[m.start_price], close[:-1]])
        wick = np.abs(rng.normal(0.0, m.volatility / 2, n))
        high = np.maximum(open_, close) * (1 + wick)
        low = np.minimum(open_, close) * (1 - wick)
        vol = m.bar_volume * rng.lognormal(0.0, 0.3, n)
        tick = m.price_tick

        def on_tick(x: np.ndarray) -> np.ndarray:  # exactly the values served ("%.8f")
            return np.round(np.round(x / tick) * tick, 8)

        return np.column_stack([on_tick(open_), on_tick(high), on_tick(low), on_tick(close), np.round(vol, 5)])

    def index(self, open_ms: int) -> int:
        return (open_ms - self.origin_ms) // self.step_ms

    def bar(self, symbol: str, open_ms: int, now_ms: int) -> list[float]:
        """The bar opening at ``open_ms`` as seen at ``now_ms`` (the forming bar: its values so far)."""
        k = self.index(open_ms)
        bars = self.arrays[symbol]
        if not 0 <= k < len(bars):
            raise RuntimeError(f"mock market has no bar at {pd.Timestamp(open_ms, unit='ms', tz='UTC')}: "
                               f"raise future_bars")
        o, h, lo, c, v = bars[k]
        frac = (now_ms - open_ms) / self.step_ms
        if frac >= 1:
            return [o, h, lo, c, v]
        tick = self.markets[symbol].price_tick
        cp = round(round((o + (c - o) * frac) / tick) * tick, 8)
        return [o, max(o, cp), min(o, cp), cp, round(v * frac, 5)]

    def closed(self, symbol: str, now_ms: int) -> pd.DataFrame:
        """Every closed bar at ``now_ms`` (open-time index, UTC): the truth tests compare with."""
        last_open = (now_ms // self.step_ms) * self.step_ms - self.step_ms
        opens = np.arange(self.origin_ms, last_open + 1, self.step_ms)
        rows = [self.bar(symbol, int(o), now_ms) for o in opens]
        return pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"],
                            index=pd.DatetimeIndex(pd.to_datetime(opens, unit="ms", utc=True), name="datetime"))

    def price(self, symbol: str, now_ms: int) -> float:
        """The current price: the forming bar's close so far."""
        return self.bar(symbol, (now_ms // self.step_ms) * self.step_ms, now_ms)[3]

    def volume(self, symbol: str, open_ms: int) -> float:
        """The full volume (base units) of the bar opening at ``open_ms``."""
        return float(self.arrays[symbol][self.index(open_ms)][4])

    def set_bar(self, symbol: str, open_time: pd.Timestamp, **values: float) -> None:
        """Change a bar's ``open``/``high``/``low``/``close``/``volume`` (tests: make it trade through a level)."""
        k = self.index(int(pd.Timestamp(open_time).value // 1_000_000))
        for name, value in values.items():
            self.arrays[symbol][k, ["open", "high", "low", "close", "volume"].index(name)] = value


class SpotBook:
    """Balances, orders and trades of one spot account, matched against :class:`SyntheticBars` (Binance's rules).

    Commission is ``fee_rate`` of the notional, charged in the quote asset. ``liquidity_frac`` of a bar's volume
    can fill per order per bar (None: unlimited).
    """

    def __init__(self, markets: dict[str, MockMarket], bars: SyntheticBars, *, fee_rate: float,
                 liquidity_frac: float | None, balances: dict[str, float]) -> None:
        self.markets = markets
        self.by_id = {m.market_id: m for m in markets.values()}
        self.bars, self.fee_rate, self.liquidity_frac = bars, fee_rate, liquidity_frac
        self.balances: dict[str, list[float]] = {a: [float(v), 0.0] for a, v in balances.items()}  # [free, locked]
        self.orders: dict[int, Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.rejects: list[tuple[int, str]] = []
        self._order_ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)

    def market(self, params: dict[str, str]) -> MockMarket:
        mid = params.get("symbol")
        if mid is None:
            raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if mid not in self.by_id:
            raise BinanceError(-1121, "Invalid symbol.")
        return self.by_id[mid]

    def exchange_info(self, now_ms: int) -> dict[str, Any]:
        symbols = []
        for m in self.markets.values():
            symbols.append({
                "symbol": m.market_id, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
                "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": fmt(m.price_tick), "maxPrice": "1000000.00000000",
                     "tickSize": fmt(m.price_tick)},
                    {"filterType": "LOT_SIZE", "minQty": fmt(m.min_qty), "maxQty": "9000.00000000",
                     "stepSize": fmt(m.qty_step)},
                    {"filterType": "NOTIONAL", "minNotional": fmt(m.min_notional), "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000.00000000",
                     "stepSize": "0.00000000"},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]})
        return {"timezone": "UTC", "serverTime": now_ms, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}

    def account(self, now_ms: int) -> dict[str, Any]:
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
                "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
                "balances": [{"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in self.balances.items()]}

    def _bal(self, asset: str) -> list[float]:
        return self.balances.setdefault(asset, [0.0, 0.0])

    def create(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        """``POST /api/v3/order``: checks as Binance does, then fills what is marketable."""
        m = self.market(params)
        if self.rejects:
            code, msg = self.rejects.pop(0)
            raise BinanceError(code, msg)
        side, otype = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"mock{next(self._order_ids)}"
        if any(o.client_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            raise BinanceError(-2010, "Duplicate order sent.")
        qty = float(params.get("quantity", "0"))
        steps = qty / m.qty_step
        if qty < m.min_qty or abs(steps - round(steps)) > 1e-6:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        price = self.bars.price(m.symbol, now_ms) if otype == "MARKET" else float(params["price"])
        if otype == "LIMIT" and abs(price / m.price_tick - round(price / m.price_tick)) > 1e-6:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if qty * price < m.min_notional:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        need = qty * price * (1 + self.fee_rate) if side == "BUY" else qty
        asset = m.quote if side == "BUY" else m.base
        if self._bal(asset)[0] + 1e-12 < need:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        order = Order(next(self._order_ids), client_id, m, side, otype, qty, price if otype == "LIMIT" else 0.0,
                       now_ms)
        self.orders[order.order_id] = order
        fills: list[dict[str, Any]] = []
        if otype == "LIMIT":
            self._bal(asset)[0] -= need
            self._bal(asset)[1] += need
            order.locked = need
        cur_open = (now_ms // self.bars.step_ms) * self.bars.step_ms
        market_px = self.bars.price(m.symbol, now_ms)
        marketable = otype == "MARKET" or (side == "BUY" and price >= market_px) or (side == "SELL" and price <= market_px)
        if marketable:
            cap = self._liquidity(m, cur_open)
            fills = self._execute(order, min(qty, cap), market_px, now_ms, maker=False)
        if otype == "MARKET" and order.executed_qty < qty - 1e-12:
            order.status = "EXPIRED"  # the book was exhausted: the rest of a market order expires
        out = order.payload()
        out.update({"transactTime": now_ms, "fills": fills})
        return out

    def _liquidity(self, m: MockMarket, open_ms: int) -> float:
        if self.liquidity_frac is None:
            return float("inf")
        v = self.bars.volume(m.symbol, open_ms)
        return np.floor(self.liquidity_frac * v / m.qty_step) * m.qty_step

    def _execute(self, order: Order, qty: float, price: float, ts_ms: int, maker: bool) -> list[dict[str, Any]]:
        m = order.market
        qty = round(min(qty, order.orig_qty - order.executed_qty), 8)
        if qty <= 0:
            return []
        notional = qty * price
        fee = notional * self.fee_rate
        base, quote = self._bal(m.base), self._bal(m.quote)
        if order.side == "BUY":
            if order.type == "LIMIT":  # release the lock for this part
                release = qty * order.price * (1 + self.fee_rate)
                quote[1] -= release
                quote[0] += release
                order.locked -= release
            quote[0] -= notional + fee
            base[0] += qty
        else:
            if order.type == "LIMIT":
                base[1] -= qty
                order.locked -= qty
            else:
                base[0] -= qty
            quote[0] += notional - fee
        order.executed_qty = round(order.executed_qty + qty, 8)
        order.quote_qty += notional
        order.update_ms = ts_ms
        order.status = "FILLED" if order.executed_qty >= order.orig_qty - 1e-12 else "PARTIALLY_FILLED"
        if order.status == "FILLED" and order.locked:
            self._unlock(order)
        trade = {"symbol": m.market_id, "id": next(self._trade_ids), "orderId": order.order_id, "orderListId": -1,
                 "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(notional), "commission": fmt(fee),
                 "commissionAsset": m.quote, "time": ts_ms, "isBuyer": order.side == "BUY", "isMaker": maker,
                 "isBestMatch": True}
        self.trades.append(trade)
        return [{"price": fmt(price), "qty": fmt(qty), "commission": fmt(fee), "commissionAsset": m.quote,
                 "tradeId": trade["id"]}]

    def _unlock(self, order: Order) -> None:
        asset = order.market.quote if order.side == "BUY" else order.market.base
        bal = self._bal(asset)
        bal[1] -= order.locked
        bal[0] += order.locked
        order.locked = 0.0

    def settle_bar(self, open_ms: int, now_ms: int) -> None:
        """A bar closed: resting limit orders the bar traded through fill at their limit (capped)."""
        for order in self.orders.values():
            if order.type != "LIMIT" or order.status not in ("NEW", "PARTIALLY_FILLED") or order.time_ms >= open_ms + self.bars.step_ms:
                continue
            open_, high, low, _, _ = self.bars.bar(order.market.symbol, open_ms, now_ms)
            through = low <= order.price if order.side == "BUY" else high >= order.price
            if through:  # at the limit, or better when the bar opened through it
                price = min(order.price, open_) if order.side == "BUY" else max(order.price, open_)
                self._execute(order, self._liquidity(order.market, open_ms), price, open_ms + self.bars.step_ms - 1,
                              maker=True)

    def find(self, params: dict[str, str], cancel: bool = False) -> Order:
        m = self.market(params)
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            found = [o for o in self.orders.values() if o.client_id == params["origClientOrderId"] and o.market is m]
            open_ = [o for o in found if o.status in ("NEW", "PARTIALLY_FILLED")]
            order = (open_ or found or [None])[-1]
        else:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order is None or order.market is not m:
            raise BinanceError(-2011, "Unknown order sent.") if cancel else BinanceError(-2013, "Order does not exist.")
        return order

    def cancel(self, order: Order, now_ms: int) -> dict[str, Any]:
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(-2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", now_ms
        self._unlock(order)
        out = order.payload()
        out.update({"origClientOrderId": order.client_id, "transactTime": now_ms})
        return out

    def list_orders(self, params: dict[str, str], open_only: bool) -> list[dict[str, Any]]:
        m = self.market(params) if ("symbol" in params or not open_only) else None
        return [o.payload() for o in self.orders.values()
                if (m is None or o.market is m) and (not open_only or o.status in ("NEW", "PARTIALLY_FILLED"))]

    def cancel_all(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        m = self.market(params)
        todo = [o for o in self.orders.values() if o.market is m and o.status in ("NEW", "PARTIALLY_FILLED")]
        if not todo:
            raise BinanceError(-2011, "Unknown order sent.")
        return [self.cancel(o, now_ms) for o in todo]

    def my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self.market(params)
        out = [t for t in self.trades if t["symbol"] == m.market_id]
        if "orderId" in params:
            out = [t for t in out if t["orderId"] == int(params["orderId"])]
        if "fromId" in params:
            out = [t for t in out if t["id"] >= int(params["fromId"])]
        if "startTime" in params:
            out = [t for t in out if t["time"] >= int(params["startTime"])]
        if "endTime" in params:
            out = [t for t in out if t["time"] <= int(params["endTime"])]
        return out[: min(int(params.get("limit", 500)), 1000)]
