"""A mock Binance spot exchange on 127.0.0.1 that ccxt's own ``binance`` class talks to (tests only).

:class:`MockBinance` serves enough of Binance's spot REST API (``/api/v3``: ``exchangeInfo``, ``klines``,
``account``, ``order`` create/cancel/query, ``openOrders``, ``allOrders``, ``myTrades``) and the kline
websocket stream (``/stream/ws/<n>``, what ``ccxt.pro.binance.watch_ohlcv`` subscribes to), from a
deterministic SYNTHETIC market whose time is a :class:`VirtualClock` the test advances.

Binance's semantics that the engines depend on are reproduced:

- signed requests (HMAC-SHA256 of the query; ``X-MBX-APIKEY``), rejected with Binance's codes when wrong;
- ``newClientOrderId`` is unique among OPEN orders: a duplicate is rejected with ``-2010 Duplicate order
  sent.`` (ccxt raises ``InvalidOrder``); an id whose order is closed is accepted again, as on Binance;
- filters: ``LOT_SIZE`` and ``NOTIONAL`` (``-1013 Filter failure: ...``); insufficient balance
  (``-2010 Account has insufficient balance for requested action.``, ccxt ``InsufficientFunds``);
- market orders (and marketable limit orders) fill at the current price up to the available liquidity
  (``liquidity_frac`` of a bar's volume; the rest of a market order EXPIRES, as a Binance market order that
  exhausts the book); resting limit orders fill at bar closes when the bar trades through the limit (at
  the limit, or at the bar's open when it opened through it), at most ``liquidity_frac`` of the bar's
  volume each bar (partial fills);
- the still-forming candle is served by ``klines`` (as Binance does) with its values so far.

Commission is charged in the quote asset (``fee_rate`` of the notional; like paying fees from the quote
balance), so a base balance is exactly the sum of signed fills.

Faults, for tests: :meth:`MockBinance.inject` (``unavailable``: HTTP 503 before processing;
``timeout``: the request hangs ``hang_s`` and is not processed; ``lost_response``: processed, then the
response hangs, so the client times out although the order exists; ``disconnect``: the connection is
closed without a response), :meth:`reject_next` (an order is rejected with a given code/message),
``latency_s`` on every request, :meth:`drop_websockets` / :meth:`set_websocket_down`.

Bounded in time: the server thread stops itself after ``lifetime_s`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
from aiohttp import WSMsgType, web

from graphwiz_trader.core.timeframes import timeframe_delta

__all__ = ["MockBinance", "MockMarket", "VirtualClock"]


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
class _Order:
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
                "clientOrderId": self.client_id, "price": _s(self.price), "origQty": _s(self.orig_qty),
                "executedQty": _s(self.executed_qty), "cummulativeQuoteQty": _s(self.quote_qty),
                "status": self.status, "timeInForce": "GTC" if self.type == "LIMIT" else "GTC",
                "type": self.type, "side": self.side, "stopPrice": "0.00000000", "icebergQty": "0.00000000",
                "time": self.time_ms, "updateTime": self.update_ms or self.time_ms,
                "isWorking": self.status in ("NEW", "PARTIALLY_FILLED"), "workingTime": self.time_ms,
                "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}


@dataclass
class _Fault:
    method: str
    path: str
    mode: str
    remaining: int
    after: int = 0  # matching requests to let through first


def _s(x: float) -> str:
    return f"{x:.8f}"


class _BinanceError(Exception):
    def __init__(self, code: int, msg: str, http: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.http = code, msg, http


class MockBinance:
    """The mock exchange. Use as a context manager: ``with MockBinance([...], clock=clock) as mock:``.

    Parameters
    ----------
    markets : the spot markets served.
    clock : the virtual clock (the market's "now").
    timeframe : the only kline interval served (``1m``, ``1h``, ...).
    history_bars, future_bars : closed bars before the clock's start, and bars the clock may advance over.
    balances : starting free balances per asset (``{"USDT": 100000}``).
    fee_rate : commission as a fraction of notional, charged in the quote asset.
    liquidity_frac : fraction of a bar's volume an order can fill per bar (None: unlimited).
    latency_s : delay added to every REST response (seconds).
    hang_s : how long ``timeout``/``lost_response`` faults hold a request (seconds).
    lifetime_s : the server stops itself after this many seconds.
    """

    def __init__(self, markets: list[MockMarket], *, clock: VirtualClock, timeframe: str = "1m",
                 history_bars: int = 500, future_bars: int = 2000, balances: dict[str, float] | None = None,
                 api_key: str = "mock-api-key", secret: str = "mock-secret", fee_rate: float = 0.001,
                 liquidity_frac: float | None = None, latency_s: float = 0.0, hang_s: float = 2.0,
                 lifetime_s: float = 300.0, seed: int = 7) -> None:
        self.markets = {m.symbol: m for m in markets}
        self._by_id = {m.market_id: m for m in markets}
        self.clock, self.timeframe = clock, timeframe
        self.step_ms = int(timeframe_delta(timeframe).total_seconds() * 1000)
        self.api_key, self.secret = api_key, secret
        self.fee_rate, self.liquidity_frac = fee_rate, liquidity_frac
        self.latency_s, self.hang_s, self.lifetime_s = latency_s, hang_s, lifetime_s
        self._lock = threading.RLock()
        now_ms = clock.now_ms()
        self.origin_ms = (now_ms // self.step_ms - history_bars) * self.step_ms
        self._bars = {m.symbol: self._path(m, history_bars + future_bars, seed + i) for i, m in enumerate(markets)}
        self.balances: dict[str, list[float]] = {}
        for asset, amount in (balances if balances is not None else {"USDT": 100_000.0}).items():
            self.balances[asset] = [float(amount), 0.0]
        self.orders: dict[int, _Order] = {}
        self.trades: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._faults: list[_Fault] = []
        self._rejects: list[tuple[int, str]] = []
        self._order_ids = itertools.count(1001)
        self._trade_ids = itertools.count(5001)
        self._last_settled_ms = (now_ms // self.step_ms) * self.step_ms  # bars closed before this are settled
        self._ws: set[web.WebSocketResponse] = set()
        self._ws_subs: dict[web.WebSocketResponse, set[str]] = {}
        self._ws_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> "MockBinance":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server thread; returns its base URL (``http://127.0.0.1:<port>``)."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="mock-binance", daemon=True)
        self._thread.start()
        if not ready.wait(30) or not self.base_url:
            raise RuntimeError("mock exchange did not start within 30 s")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_route("*", "/api/v3/{endpoint:.*}", self._rest)
        app.router.add_get("/stream/ws/{n}", self._websocket)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(asyncio.wait_for(self._stop.wait(), self.lifetime_s))
        except asyncio.TimeoutError:
            pass
        finally:
            for ws in list(self._ws):
                loop.run_until_complete(ws.close())
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def settings(self, **overrides: Any) -> Any:
        """:class:`ExchangeSettings` for this server: its keys and URL, short timeouts and backoff (tests)."""
        from graphwiz_trader.config.settings import ExchangeSettings

        values: dict[str, Any] = {"api_key": self.api_key, "secret": self.secret, "api_url": self.base_url,
                                  "timeout_ms": 1000, "max_retries": 2, "retry_backoff_s": 0.01, "rate_limit_ms": 1}
        values.update(overrides)
        return ExchangeSettings(**values)

    def point(self, exchange: Any) -> Any:
        """Point a ccxt binance (REST and, for ccxt.pro, websocket) at this server; returns it."""
        from graphwiz_trader.trading.engines.ccxt_venue import point_exchange_at

        return point_exchange_at(exchange, self.base_url)

    # ----------------------------------------------------------------- market path
    def _path(self, m: MockMarket, n: int, seed: int) -> np.ndarray:
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

    def _index(self, open_ms: int) -> int:
        return (open_ms - self.origin_ms) // self.step_ms

    def _bar(self, symbol: str, open_ms: int, now_ms: int) -> list[float]:
        """The bar opening at ``open_ms`` as seen at ``now_ms`` (the forming bar: its values so far)."""
        k = self._index(open_ms)
        bars = self._bars[symbol]
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

    def closed_bars(self, symbol: str) -> pd.DataFrame:
        """The truth: every closed bar up to the clock (open-time index, UTC), for assertions."""
        now_ms = self.clock.now_ms()
        last_open = (now_ms // self.step_ms) * self.step_ms - self.step_ms
        opens = np.arange(self.origin_ms, last_open + 1, self.step_ms)
        rows = [self._bar(symbol, int(o), now_ms) for o in opens]
        return pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"],
                            index=pd.DatetimeIndex(pd.to_datetime(opens, unit="ms", utc=True), name="datetime"))

    def price(self, symbol: str) -> float:
        now_ms = self.clock.now_ms()
        return self._bar(symbol, (now_ms // self.step_ms) * self.step_ms, now_ms)[3]

    # ----------------------------------------------------------------- test controls
    def advance(self, bars: int = 1) -> None:
        """Move the clock ``bars`` bars on: bars close, resting orders fill on them, websockets get klines."""
        self.advance_to(self.clock.now() + bars * pd.Timedelta(milliseconds=self.step_ms))

    def advance_to(self, t: pd.Timestamp) -> None:
        with self._lock:
            self.clock.set(t)
            now_ms = self.clock.now_ms()
            cur_open = (now_ms // self.step_ms) * self.step_ms
            messages: list[tuple[str, dict[str, Any]]] = []
            for open_ms in range(self._last_settled_ms, cur_open, self.step_ms):
                self._settle_bar(open_ms, now_ms)
                for m in self.markets.values():
                    messages.append((m.market_id, self._kline_event(m, open_ms, now_ms, closed=True)))
            self._last_settled_ms = max(self._last_settled_ms, cur_open)
            for m in self.markets.values():
                messages.append((m.market_id, self._kline_event(m, cur_open, now_ms, closed=False)))
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._broadcast(messages), self._loop).result(15)

    def inject(self, method: str, path: str, mode: str, times: int = 1, after: int = 0) -> None:
        """After ``after`` more requests ``METHOD /api/v3/<path>`` pass, the next ``times`` fail with ``mode``
        (see the module doc)."""
        if mode not in ("unavailable", "timeout", "lost_response", "disconnect"):
            raise ValueError(f"unknown fault mode {mode!r}")
        with self._lock:
            self._faults.append(_Fault(method.upper(), path.strip("/"), mode, times, after))

    def reject_next(self, code: int = -2010, msg: str = "Market is closed.", times: int = 1) -> None:
        """The next ``times`` order creations are rejected with Binance error ``code``/``msg``."""
        with self._lock:
            self._rejects.extend([(code, msg)] * times)

    def drop_websockets(self) -> None:
        """Close every websocket connection (clients see a disconnect)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_ws(), self._loop).result(15)

    def set_websocket_down(self, down: bool) -> None:
        """While down, new websocket connections are refused (HTTP 503) and existing ones are closed."""
        self._ws_down = down
        if down:
            self.drop_websockets()

    def order_by_client_id(self, client_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [o.payload() for o in self.orders.values() if o.client_id == client_id]

    def create_calls(self) -> int:
        """How many order-creation requests reached the server (processed or not)."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == "POST" and p == "order")

    def balance(self, asset: str) -> float:
        with self._lock:
            free, locked = self.balances.get(asset, [0.0, 0.0])
            return free + locked

    # ----------------------------------------------------------------- HTTP plumbing
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["endpoint"].strip("/")
        method = request.method
        body = await request.text() if request.can_read_body else ""
        raw = body if method in ("POST", "PUT") and body else request.query_string
        params = dict(parse_qsl(raw, keep_blank_values=True))
        with self._lock:
            self.requests.append((method, path, {k: v for k, v in params.items() if k not in ("signature",)}))
            fault = next((f for f in self._faults if f.method == method and f.path == path and f.remaining > 0), None)
            if fault is not None and fault.after > 0:
                fault.after -= 1
                fault = None
            elif fault is not None:
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault is not None and fault.mode == "unavailable":
            return web.Response(status=503, text="Service Unavailable")
        if fault is not None and fault.mode == "timeout":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=504, text="Gateway Timeout")
        if fault is not None and fault.mode == "disconnect":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        try:
            with self._lock:
                payload = self._dispatch(method, path, params, raw, request.headers.get("X-MBX-APIKEY"))
            response = web.json_response(payload)
        except _BinanceError as exc:
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.http)
        if fault is not None and fault.mode == "lost_response":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=504, text="Gateway Timeout")
        return response

    def _check_signed(self, raw: str, api_key: str | None, params: dict[str, str]) -> None:
        if not api_key:
            raise _BinanceError(-2014, "API-key format invalid.", 401)
        if api_key != self.api_key:
            raise _BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if "&signature=" not in raw or "timestamp" not in params:
            raise _BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        query, sig = raw.rsplit("&signature=", 1)
        want = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise _BinanceError(-1022, "Signature for this request is not valid.")

    def _market(self, params: dict[str, str]) -> MockMarket:
        mid = params.get("symbol")
        if mid is None:
            raise _BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if mid not in self._by_id:
            raise _BinanceError(-1121, "Invalid symbol.")
        return self._by_id[mid]

    def _dispatch(self, method: str, path: str, params: dict[str, str], raw: str, api_key: str | None) -> Any:
        now_ms = self.clock.now_ms()
        public = {("GET", "ping"): lambda: {}, ("GET", "time"): lambda: {"serverTime": now_ms},
                  ("GET", "exchangeInfo"): lambda: self._exchange_info(now_ms),
                  ("GET", "klines"): lambda: self._klines(params, now_ms)}
        if (method, path) in public:
            return public[(method, path)]()
        private = {("GET", "account"): lambda: self._account(now_ms),
                   ("POST", "order"): lambda: self._create(params, now_ms),
                   ("GET", "order"): lambda: self._find(params).payload(),
                   ("DELETE", "order"): lambda: self._cancel(self._find(params, cancel=True), now_ms),
                   ("GET", "openOrders"): lambda: self._list(params, open_only=True),
                   ("GET", "allOrders"): lambda: self._list(params, open_only=False),
                   ("DELETE", "openOrders"): lambda: self._cancel_all(params, now_ms),
                   ("GET", "myTrades"): lambda: self._my_trades(params)}
        if (method, path) not in private:
            raise _BinanceError(-1000, f"mock exchange does not serve {method} /api/v3/{path}", 404)
        self._check_signed(raw, api_key, params)
        return private[(method, path)]()

    # ----------------------------------------------------------------- endpoints
    def _exchange_info(self, now_ms: int) -> dict[str, Any]:
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
                    {"filterType": "PRICE_FILTER", "minPrice": _s(m.price_tick), "maxPrice": "1000000.00000000",
                     "tickSize": _s(m.price_tick)},
                    {"filterType": "LOT_SIZE", "minQty": _s(m.min_qty), "maxQty": "9000.00000000",
                     "stepSize": _s(m.qty_step)},
                    {"filterType": "NOTIONAL", "minNotional": _s(m.min_notional), "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000.00000000",
                     "stepSize": "0.00000000"},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]})
        return {"timezone": "UTC", "serverTime": now_ms, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}

    def _klines(self, params: dict[str, str], now_ms: int) -> list[list[Any]]:
        m = self._market(params)
        if params.get("interval") != self.timeframe:
            raise _BinanceError(-1120, "Invalid interval.")
        limit = min(int(params.get("limit", 500)), 1000)
        cur_open = (now_ms // self.step_ms) * self.step_ms
        end = min(int(params.get("endTime", cur_open)), cur_open)
        if "startTime" in params:
            start = max(-(-int(params["startTime"]) // self.step_ms) * self.step_ms, self.origin_ms)
            opens = list(range(start, end + 1, self.step_ms))[:limit]
        else:
            end_aligned = (end // self.step_ms) * self.step_ms
            opens = list(range(max(self.origin_ms, end_aligned - (limit - 1) * self.step_ms), end_aligned + 1,
                               self.step_ms))
        rows = []
        for o in opens:
            b = self._bar(m.symbol, o, now_ms)
            rows.append([o, _s(b[0]), _s(b[1]), _s(b[2]), _s(b[3]), _s(b[4]), o + self.step_ms - 1,
                         _s(b[4] * b[3]), 100, _s(b[4] / 2), _s(b[4] * b[3] / 2), "0"])
        return rows

    def _account(self, now_ms: int) -> dict[str, Any]:
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
                "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
                "balances": [{"asset": a, "free": _s(f), "locked": _s(lk)} for a, (f, lk) in self.balances.items()]}

    def _bal(self, asset: str) -> list[float]:
        return self.balances.setdefault(asset, [0.0, 0.0])

    def _create(self, params: dict[str, str], now_ms: int) -> dict[str, Any]:
        m = self._market(params)
        if self._rejects:
            code, msg = self._rejects.pop(0)
            raise _BinanceError(code, msg)
        side, otype = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            raise _BinanceError(-1116, "Invalid orderType.")
        client_id = params.get("newClientOrderId") or f"mock{next(self._order_ids)}"
        if any(o.client_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            raise _BinanceError(-2010, "Duplicate order sent.")
        qty = float(params.get("quantity", "0"))
        steps = qty / m.qty_step
        if qty < m.min_qty or abs(steps - round(steps)) > 1e-6:
            raise _BinanceError(-1013, "Filter failure: LOT_SIZE")
        price = self.price(m.symbol) if otype == "MARKET" else float(params["price"])
        if otype == "LIMIT" and abs(price / m.price_tick - round(price / m.price_tick)) > 1e-6:
            raise _BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if qty * price < m.min_notional:
            raise _BinanceError(-1013, "Filter failure: NOTIONAL")
        need = qty * price * (1 + self.fee_rate) if side == "BUY" else qty
        asset = m.quote if side == "BUY" else m.base
        if self._bal(asset)[0] + 1e-12 < need:
            raise _BinanceError(-2010, "Account has insufficient balance for requested action.")
        order = _Order(next(self._order_ids), client_id, m, side, otype, qty, price if otype == "LIMIT" else 0.0,
                       now_ms)
        self.orders[order.order_id] = order
        fills: list[dict[str, Any]] = []
        if otype == "LIMIT":
            self._bal(asset)[0] -= need
            self._bal(asset)[1] += need
            order.locked = need
        cur_open = (now_ms // self.step_ms) * self.step_ms
        market_px = self.price(m.symbol)
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
        v = self._bars[m.symbol][self._index(open_ms)][4]
        return np.floor(self.liquidity_frac * v / m.qty_step) * m.qty_step

    def _execute(self, order: _Order, qty: float, price: float, ts_ms: int, maker: bool) -> list[dict[str, Any]]:
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
                 "price": _s(price), "qty": _s(qty), "quoteQty": _s(notional), "commission": _s(fee),
                 "commissionAsset": m.quote, "time": ts_ms, "isBuyer": order.side == "BUY", "isMaker": maker,
                 "isBestMatch": True}
        self.trades.append(trade)
        return [{"price": _s(price), "qty": _s(qty), "commission": _s(fee), "commissionAsset": m.quote,
                 "tradeId": trade["id"]}]

    def _unlock(self, order: _Order) -> None:
        asset = order.market.quote if order.side == "BUY" else order.market.base
        bal = self._bal(asset)
        bal[1] -= order.locked
        bal[0] += order.locked
        order.locked = 0.0

    def _settle_bar(self, open_ms: int, now_ms: int) -> None:
        """A bar closed: resting limit orders the bar traded through fill at their limit (capped)."""
        for order in self.orders.values():
            if order.type != "LIMIT" or order.status not in ("NEW", "PARTIALLY_FILLED") or order.time_ms >= open_ms + self.step_ms:
                continue
            open_, high, low, _, _ = self._bar(order.market.symbol, open_ms, now_ms)
            through = low <= order.price if order.side == "BUY" else high >= order.price
            if through:  # at the limit, or better when the bar opened through it
                price = min(order.price, open_) if order.side == "BUY" else max(order.price, open_)
                self._execute(order, self._liquidity(order.market, open_ms), price, open_ms + self.step_ms - 1,
                              maker=True)

    def _find(self, params: dict[str, str], cancel: bool = False) -> _Order:
        m = self._market(params)
        if "orderId" in params:
            order = self.orders.get(int(params["orderId"]))
        elif "origClientOrderId" in params:
            found = [o for o in self.orders.values() if o.client_id == params["origClientOrderId"] and o.market is m]
            open_ = [o for o in found if o.status in ("NEW", "PARTIALLY_FILLED")]
            order = (open_ or found or [None])[-1]
        else:
            raise _BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order is None or order.market is not m:
            raise _BinanceError(-2011, "Unknown order sent.") if cancel else _BinanceError(-2013, "Order does not exist.")
        return order

    def _cancel(self, order: _Order, now_ms: int) -> dict[str, Any]:
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise _BinanceError(-2011, "Unknown order sent.")
        order.status, order.update_ms = "CANCELED", now_ms
        self._unlock(order)
        out = order.payload()
        out.update({"origClientOrderId": order.client_id, "transactTime": now_ms})
        return out

    def _list(self, params: dict[str, str], open_only: bool) -> list[dict[str, Any]]:
        m = self._market(params) if ("symbol" in params or not open_only) else None
        return [o.payload() for o in self.orders.values()
                if (m is None or o.market is m) and (not open_only or o.status in ("NEW", "PARTIALLY_FILLED"))]

    def _cancel_all(self, params: dict[str, str], now_ms: int) -> list[dict[str, Any]]:
        m = self._market(params)
        todo = [o for o in self.orders.values() if o.market is m and o.status in ("NEW", "PARTIALLY_FILLED")]
        if not todo:
            raise _BinanceError(-2011, "Unknown order sent.")
        return [self._cancel(o, now_ms) for o in todo]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(params)
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

    # ----------------------------------------------------------------- websocket
    def _kline_event(self, m: MockMarket, open_ms: int, now_ms: int, closed: bool) -> dict[str, Any]:
        o, h, lo, c, v = self._bar(m.symbol, open_ms, now_ms if not closed else open_ms + self.step_ms)
        return {"e": "kline", "E": now_ms, "s": m.market_id,
                "k": {"t": open_ms, "T": open_ms + self.step_ms - 1, "s": m.market_id, "i": self.timeframe,
                      "f": 0, "L": 0, "o": _s(o), "c": _s(c), "h": _s(h), "l": _s(lo), "v": _s(v), "n": 1,
                      "x": closed, "q": _s(v * c), "V": _s(v / 2), "Q": _s(v * c / 2), "B": "0"}}

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._ws_down:
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws.add(ws)
        self._ws_subs[ws] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                if req.get("method") == "SUBSCRIBE":
                    self._ws_subs[ws].update(req.get("params", []))
                elif req.get("method") == "UNSUBSCRIBE":
                    self._ws_subs[ws].difference_update(req.get("params", []))
                await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))
        finally:
            self._ws.discard(ws)
            self._ws_subs.pop(ws, None)
        return ws

    async def _broadcast(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        for ws in list(self._ws):
            subs = self._ws_subs.get(ws, set())
            for market_id, event in messages:
                if f"{market_id.lower()}@kline_{self.timeframe}" in subs and not ws.closed:
                    await ws.send_str(json.dumps(event))

    async def _close_ws(self) -> None:
        for ws in list(self._ws):
            await ws.close()
        self._ws.clear()
