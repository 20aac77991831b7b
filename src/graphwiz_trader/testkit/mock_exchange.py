"""A mock Binance spot exchange on 127.0.0.1 that ccxt's own ``binance`` class talks to (tests only).

:class:`MockBinance` serves enough of Binance's spot REST API (``/api/v3``: ``exchangeInfo``, ``klines``,
``account``, ``order`` create/cancel/query, ``openOrders``, ``allOrders``, ``myTrades``) and the kline
websocket stream (``/stream/ws/<n>``, what ``ccxt.pro.binance.watch_ohlcv`` subscribes to), from a
deterministic SYNTHETIC market whose time is a :class:`VirtualClock` the test advances (the market and the
account: :mod:`graphwiz_trader.testkit.mock_market`).

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
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pandas as pd
from aiohttp import WSMsgType, web

from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.testkit.mock_market import (
    BinanceError,
    MockMarket,
    Order,
    SpotBook,
    SyntheticBars,
    VirtualClock,
    fmt,
)

__all__ = ["MockBinance", "MockMarket", "VirtualClock"]


@dataclass
class _Fault:
    method: str
    path: str
    mode: str
    remaining: int
    after: int = 0  # matching requests to let through first


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
        self.clock, self.timeframe = clock, timeframe
        self.step_ms = int(timeframe_delta(timeframe).total_seconds() * 1000)
        self.api_key, self.secret = api_key, secret
        self.latency_s, self.hang_s, self.lifetime_s = latency_s, hang_s, lifetime_s
        self._lock = threading.RLock()
        now_ms = clock.now_ms()
        origin_ms = (now_ms // self.step_ms - history_bars) * self.step_ms
        self.bars = SyntheticBars(self.markets, self.step_ms, origin_ms, history_bars + future_bars, seed)
        self.book = SpotBook(self.markets, self.bars, fee_rate=fee_rate, liquidity_frac=liquidity_frac,
                             balances=balances if balances is not None else {"USDT": 100_000.0})
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._faults: list[_Fault] = []
        self._last_settled_ms = (now_ms // self.step_ms) * self.step_ms  # bars closed before this are settled
        self._ws: set[web.WebSocketResponse] = set()
        self._ws_subs: dict[web.WebSocketResponse, set[str]] = {}
        self._ws_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> MockBinance:
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
        except TimeoutError:
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
    # ----------------------------------------------------------------- market
    def closed_bars(self, symbol: str) -> pd.DataFrame:
        """The truth: every closed bar up to the clock (open-time index, UTC), for assertions."""
        return self.bars.closed(symbol, self.clock.now_ms())

    def price(self, symbol: str) -> float:
        """The current price (the forming bar's close so far)."""
        return self.bars.price(symbol, self.clock.now_ms())

    @property
    def orders(self) -> dict[int, Order]:
        return self.book.orders

    @property
    def trades(self) -> list[dict[str, Any]]:
        return self.book.trades

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
                self.book.settle_bar(open_ms, now_ms)
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
            self.book.rejects.extend([(code, msg)] * times)

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
            free, locked = self.book.balances.get(asset, [0.0, 0.0])
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
        except BinanceError as exc:
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.http)
        if fault is not None and fault.mode == "lost_response":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=504, text="Gateway Timeout")
        return response

    def _check_signed(self, raw: str, api_key: str | None, params: dict[str, str]) -> None:
        if not api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if api_key != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if "&signature=" not in raw or "timestamp" not in params:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        query, sig = raw.rsplit("&signature=", 1)
        want = hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            raise BinanceError(-1022, "Signature for this request is not valid.")

    def _dispatch(self, method: str, path: str, params: dict[str, str], raw: str, api_key: str | None) -> Any:
        now_ms = self.clock.now_ms()
        public = {("GET", "ping"): dict, ("GET", "time"): lambda: {"serverTime": now_ms},
                  ("GET", "exchangeInfo"): lambda: self.book.exchange_info(now_ms),
                  ("GET", "klines"): lambda: self._klines(params, now_ms)}
        if (method, path) in public:
            return public[(method, path)]()
        private = {("GET", "account"): lambda: self.book.account(now_ms),
                   ("POST", "order"): lambda: self.book.create(params, now_ms),
                   ("GET", "order"): lambda: self.book.find(params).payload(),
                   ("DELETE", "order"): lambda: self.book.cancel(self.book.find(params, cancel=True), now_ms),
                   ("GET", "openOrders"): lambda: self.book.list_orders(params, open_only=True),
                   ("GET", "allOrders"): lambda: self.book.list_orders(params, open_only=False),
                   ("DELETE", "openOrders"): lambda: self.book.cancel_all(params, now_ms),
                   ("GET", "myTrades"): lambda: self.book.my_trades(params)}
        if (method, path) not in private:
            raise BinanceError(-1000, f"mock exchange does not serve {method} /api/v3/{path}", 404)
        self._check_signed(raw, api_key, params)
        return private[(method, path)]()

    # ----------------------------------------------------------------- endpoints
    def _klines(self, params: dict[str, str], now_ms: int) -> list[list[Any]]:
        m = self.book.market(params)
        if params.get("interval") != self.timeframe:
            raise BinanceError(-1120, "Invalid interval.")
        limit = min(int(params.get("limit", 500)), 1000)
        cur_open = (now_ms // self.step_ms) * self.step_ms
        end = min(int(params.get("endTime", cur_open)), cur_open)
        if "startTime" in params:
            start = max(-(-int(params["startTime"]) // self.step_ms) * self.step_ms, self.bars.origin_ms)
            opens = list(range(start, end + 1, self.step_ms))[:limit]
        else:
            end_aligned = (end // self.step_ms) * self.step_ms
            opens = list(range(max(self.bars.origin_ms, end_aligned - (limit - 1) * self.step_ms), end_aligned + 1,
                               self.step_ms))
        rows = []
        for o in opens:
            b = self.bars.bar(m.symbol, o, now_ms)
            rows.append([o, fmt(b[0]), fmt(b[1]), fmt(b[2]), fmt(b[3]), fmt(b[4]), o + self.step_ms - 1,
                         fmt(b[4] * b[3]), 100, fmt(b[4] / 2), fmt(b[4] * b[3] / 2), "0"])
        return rows

    # ----------------------------------------------------------------- websocket
    def _kline_event(self, m: MockMarket, open_ms: int, now_ms: int, closed: bool) -> dict[str, Any]:
        o, h, lo, c, v = self.bars.bar(m.symbol, open_ms, now_ms if not closed else open_ms + self.step_ms)
        return {"e": "kline", "E": now_ms, "s": m.market_id,
                "k": {"t": open_ms, "T": open_ms + self.step_ms - 1, "s": m.market_id, "i": self.timeframe,
                      "f": 0, "L": 0, "o": fmt(o), "c": fmt(c), "h": fmt(h), "l": fmt(lo), "v": fmt(v), "n": 1,
                      "x": closed, "q": fmt(v * c), "V": fmt(v / 2), "Q": fmt(v * c / 2), "B": "0"}}

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
