"""Closed bars from a ccxt exchange as they close: websocket where the exchange has it, REST polling otherwise.

:class:`BarFeed` hands out every closed bar exactly once, in order, with no gaps:

- the still-forming candle (open time + bar length > now) is never handed out;
- websocket (``ccxt.pro`` ``watch_ohlcv_for_symbols``): a background task keeps the stream open and
  reconnects with exponential backoff (each reconnect counted). A streamed bar is used only when it is
  provably final: the connection was up before the bar opened (so every update of the bar arrived on it)
  and the stream has moved on to a later bar. Everything else comes from REST;
- REST: after a bar's close (plus ``close_grace_s`` seconds for the exchange to settle it) the missing
  bars are fetched with ``fetch_ohlcv(since=...)``, paging, with retries and backoff
  (:func:`~graphwiz_trader.trading.engines.ccxt_venue.call_with_retries`). That is also the gap back-fill:
  bars missed while disconnected, or while the process was down, are fetched from the last bar handed out;
- data age: :meth:`BarFeed.data_age` is ``now - close of the last closed bar`` per symbol (the stalest
  symbol by default), so a strategy can refuse to trade on stale bars.

``clock`` is the wall clock (``pd.Timestamp`` UTC); tests pass a virtual one. Grace periods and timeouts are
real (monotonic) seconds measured from the moment the clock passed a bar's close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import ConfigError, UnknownSymbolError
from graphwiz_trader.trading.engines.ccxt_venue import call_with_retries, rows_to_frame

log = logging.getLogger(__name__)

__all__ = ["BarFeed", "utc_now"]


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class BarFeed:
    """Closed OHLCV bars of ``symbols`` as they close (see the module docstring).

    Parameters
    ----------
    exchange : a ccxt async exchange (REST), markets loaded or loadable.
    symbols, timeframe : what to follow (``["BTC/USDT"]``, ``"1h"``).
    settings : retry policy (``max_retries``, ``retry_backoff_s``).
    ws_exchange : a ``ccxt.pro`` exchange with ``watch_ohlcv_for_symbols`` (None: REST polling only).
    clock : the wall clock (UTC).
    poll_interval_s : how often to look at the clock while waiting for a close (seconds).
    close_grace_s : REST: seconds after a bar's close before fetching it.
    ws_grace_s : websocket: seconds after a close to wait for the stream before fetching by REST.
    bar_timeout_s : seconds after a close after which a symbol whose bar has not appeared is handed out
        without it (its data age grows; the strategy sees it). Default: one bar length.
    """

    def __init__(self, exchange: Any, symbols: Sequence[str], timeframe: str, *, settings: ExchangeSettings,
                 exchange_id: str = "binance", ws_exchange: Any = None,
                 clock: Callable[[], pd.Timestamp] = utc_now, poll_interval_s: float = 1.0,
                 close_grace_s: float = 2.0, ws_grace_s: float = 5.0, bar_timeout_s: float | None = None) -> None:
        self.exchange, self.ws_exchange = exchange, ws_exchange
        self.symbols = list(dict.fromkeys(symbols))
        self.timeframe = timeframe
        self.step = timeframe_delta(timeframe)
        self.settings, self.exchange_id = settings, exchange_id
        self.clock = clock
        self.poll_interval_s, self.close_grace_s, self.ws_grace_s = poll_interval_s, close_grace_s, ws_grace_s
        self.bar_timeout_s = self.step.total_seconds() if bar_timeout_s is None else bar_timeout_s
        self._last: dict[str, pd.Timestamp] = {}  # open time of the last bar handed out, per symbol
        self._last_close: dict[str, pd.Timestamp] = {}  # close time of the newest closed bar seen, per symbol
        self.last_prices: dict[str, float] = {}  # close price of the newest closed bar seen, per symbol
        self._ws_task: asyncio.Task[None] | None = None
        self._ws_event = asyncio.Event()
        self._ws_since: pd.Timestamp | None = None  # clock when the current connection delivered its first message
        self._ws_client: Any = None
        self._closing = False
        self.stats = {"ws_bars": 0, "rest_bars": 0, "gap_bars": 0, "reconnects": 0, "rest_requests": 0}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start handing out bars that close from now on; start the websocket task (with a ``ws_exchange``)."""
        for s in self.symbols:
            self._last.setdefault(s, self._latest_closed_open())
        if self.ws_exchange is not None and self._ws_task is None:
            self._ws_task = asyncio.create_task(self._ws_loop(), name="bar-feed-ws")

    async def close(self) -> None:
        self._closing = True
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ws_task
            self._ws_task = None

    @property
    def streaming(self) -> bool:
        """True while the websocket is connected and delivering."""
        return self._ws_since is not None

    # ------------------------------------------------------------------ cursor and age
    def cursor(self) -> dict[str, pd.Timestamp]:
        """Open time of the last bar handed out, per symbol (persist it to resume without gaps)."""
        return dict(self._last)

    def set_cursor(self, last_open: dict[str, pd.Timestamp]) -> None:
        """Resume after ``last_open`` (bars after it are back-filled by the next :meth:`next_bars`)."""
        for s, t in last_open.items():
            self._last[s] = pd.Timestamp(t)
            self._last_close[s] = max(self._last_close.get(s, pd.Timestamp(t) + self.step), pd.Timestamp(t) + self.step)

    def data_ages(self) -> dict[str, pd.Timedelta]:
        """``now - close of the newest closed bar`` per symbol (``NaT`` before the first bar)."""
        now = self.clock()
        return {s: (now - self._last_close[s]) if s in self._last_close else pd.NaT for s in self.symbols}

    def data_age(self) -> pd.Timedelta:
        """The stalest symbol's data age (``NaT`` when a symbol has no bar yet)."""
        ages = list(self.data_ages().values())
        if not ages or any(pd.isna(a) for a in ages):
            return pd.NaT
        return max(ages)

    def _latest_closed_open(self) -> pd.Timestamp:
        return self.clock().floor(self.step) - self.step

    # ------------------------------------------------------------------ REST
    async def fetch_closed(self, symbol: str, since: pd.Timestamp | None, limit: int | None = None) -> pd.DataFrame:
        """Closed bars of ``symbol`` opening at or after ``since`` (paging), or the latest ``limit`` closed bars."""
        if symbol not in (getattr(self.exchange, "markets", None) or {symbol: None}):
            raise UnknownSymbolError([symbol], f"exchange {self.exchange_id}")
        step_ms = int(self.step.total_seconds() * 1000)
        now = self.clock()
        last_open_ms = int(self._latest_closed_open().value // 1_000_000)
        if since is None:
            n = int(limit or 1)
            since = now.floor(self.step) - n * self.step
        cursor = int(pd.Timestamp(since).value // 1_000_000)
        rows: list[list[Any]] = []
        while cursor <= last_open_ms:
            want = min(1000, (last_open_ms - cursor) // step_ms + 1)
            page = await call_with_retries(self.exchange.fetch_ohlcv, symbol, self.timeframe, cursor, want,
                                           what=f"fetching {symbol} {self.timeframe} bars since "
                                                f"{pd.Timestamp(cursor, unit='ms', tz='UTC')}",
                                           settings=self.settings, exchange_id=self.exchange_id)
            self.stats["rest_requests"] += 1
            page = [r for r in page if cursor <= r[0] <= last_open_ms]
            if not page:
                break
            rows.extend(page)
            cursor = int(page[-1][0]) + step_ms
        df = rows_to_frame(rows)
        if limit is not None:
            df = df.iloc[-int(limit):]
        if len(df):
            validate_bars({symbol: df}, self.timeframe, strict=True)
            self._note_close(symbol, df)
        return df

    def _note_close(self, symbol: str, df: pd.DataFrame) -> None:
        close = df.index[-1] + self.step
        if close >= self._last_close.get(symbol, pd.Timestamp.min.tz_localize("UTC")):
            self._last_close[symbol] = close
            self.last_prices[symbol] = float(df["close"].iloc[-1])

    async def history(self, symbols: Sequence[str], n_bars: int) -> dict[str, pd.DataFrame]:
        """The last ``n_bars`` closed bars of each symbol (REST); :meth:`next_bars` hands out only later ones."""
        out = {}
        for s in symbols:
            df = await self.fetch_closed(s, None, limit=int(n_bars))
            out[s] = df
            if s in self.symbols and len(df) and (s not in self._last or df.index[-1] > self._last[s]):
                self._last[s] = df.index[-1]
        return out

    # ------------------------------------------------------------------ hand-out
    async def next_bars(self) -> dict[str, pd.DataFrame]:
        """Wait for the next bar close, then return every bar closed since the last hand-out, per symbol.

        Bars missed (disconnects, a restarted process, a slow caller) come back together, in order.
        """
        for s in self.symbols:
            self._last.setdefault(s, self._latest_closed_open())
        target_open = min(self._last[s] for s in self.symbols) + self.step
        await self._wait_for_close(target_open + self.step)
        return await self.catch_up(self.bar_timeout_s)

    async def catch_up(self, wait_s: float = 0.0) -> dict[str, pd.DataFrame]:
        """Every bar closed since the last hand-out, per symbol (may be empty); a symbol whose newest closed bar
        the exchange does not have yet is polled for up to ``wait_s`` seconds."""
        for s in self.symbols:
            self._last.setdefault(s, self._latest_closed_open())
        out: dict[str, pd.DataFrame] = {}
        passed_at = time.monotonic()
        pending = list(self.symbols)
        while pending:
            latest = self._latest_closed_open()
            still: list[str] = []
            for s in pending:
                df = await self._new_bars(s, latest)
                if len(df):
                    out[s] = df
                    self._last[s] = df.index[-1]
                    self.stats["gap_bars"] += max(0, len(df) - 1)
                if self._last[s] < latest:
                    still.append(s)
            pending = [s for s in still if s not in out]
            if not pending or time.monotonic() - passed_at >= wait_s or self._closing:
                break
            await asyncio.sleep(self.poll_interval_s)
        for s in pending:
            log.warning("%s: bar opening at %s not available %.0fs after its close; handed out without it "
                        "(data age %s)", s, self._last[s] + self.step, wait_s, self.data_ages().get(s))
        return out

    async def _wait_for_close(self, close: pd.Timestamp) -> None:
        """Sleep until the clock passes ``close``, then the grace (websocket: until the stream has it)."""
        while self.clock() < close and not self._closing:
            remaining = (close - self.clock()).total_seconds()
            self._ws_event.clear()
            try:
                await asyncio.wait_for(self._ws_event.wait(), timeout=max(0.0, min(self.poll_interval_s, remaining)))
            except TimeoutError:
                pass
        passed = time.monotonic()
        grace = self.ws_grace_s if self.streaming else self.close_grace_s
        bar_open = close - self.step
        while time.monotonic() - passed < grace and not self._closing:
            if self.streaming and (self._ws_since is None or bar_open < self._ws_since
                                   or all(self._ws_final(s, bar_open) is not None for s in self.symbols)):
                return  # the stream has the bar, or cannot have it whole: REST now
            self._ws_event.clear()
            try:
                await asyncio.wait_for(self._ws_event.wait(),
                                       timeout=min(self.poll_interval_s, grace - (time.monotonic() - passed)))
            except TimeoutError:
                pass

    async def _new_bars(self, symbol: str, latest_open: pd.Timestamp) -> pd.DataFrame:
        """Bars of ``symbol`` after the cursor up to ``latest_open``: final streamed bars, the rest by REST."""
        first = self._last[symbol] + self.step
        if first > latest_open:
            return rows_to_frame([])
        opens = pd.date_range(first, latest_open, freq=self.step)
        rows: list[list[Any]] = []
        missing_from: pd.Timestamp | None = None
        for t in opens:
            row = self._ws_final(symbol, t) if self.streaming else None
            if row is None:
                missing_from = t
                break
            rows.append(row)
        self.stats["ws_bars"] += len(rows)
        if missing_from is not None:
            rest = await self.fetch_closed(symbol, missing_from)
            self.stats["rest_bars"] += len(rest)
            if len(rest) and self.streaming:
                log.info("%s: %d bar(s) from %s back-filled by REST", symbol, len(rest), missing_from)
            frame = pd.concat([rows_to_frame(rows), rest]) if rows else rest
        else:
            frame = rows_to_frame(rows)
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        frame = frame[(frame.index >= first) & (frame.index <= latest_open)]
        if len(frame):
            validate_bars({symbol: frame}, self.timeframe, strict=True)
            self._note_close(symbol, frame)
        return frame

    # ------------------------------------------------------------------ websocket
    def _ws_cache(self, symbol: str) -> list[list[Any]]:
        store = getattr(self.ws_exchange, "ohlcvs", None) or {}
        return list((store.get(symbol) or {}).get(self.timeframe) or [])

    def _ws_final(self, symbol: str, open_time: pd.Timestamp) -> list[Any] | None:
        """The streamed bar opening at ``open_time`` if provably final (see the module docstring), else None."""
        if self._ws_since is None or open_time < self._ws_since or open_time + self.step > self.clock():
            return None
        t_ms = int(open_time.value // 1_000_000)
        cache = self._ws_cache(symbol)
        row = next((r for r in cache if int(r[0]) == t_ms), None)
        if row is None or not any(int(r[0]) > t_ms for r in cache):
            return None
        return [int(row[0]), *(float(x) for x in row[1:6])]

    def _current_client(self) -> Any:
        clients = getattr(self.ws_exchange, "clients", None) or {}
        return next(iter(clients.values()), None)

    async def _ws_loop(self) -> None:
        import ccxt

        pairs = [[s, self.timeframe] for s in self.symbols]
        backoff = self.settings.retry_backoff_s
        while not self._closing:
            try:
                await self.ws_exchange.watch_ohlcv_for_symbols(pairs)
                client = self._current_client()
                if self._ws_since is None or client is not self._ws_client:
                    self._ws_client = client
                    # bars opening from here on arrive whole on this connection
                    self._ws_since = self.clock().ceil(self.step)
                backoff = self.settings.retry_backoff_s
                self._ws_event.set()
            except asyncio.CancelledError:
                raise
            except (ccxt.NetworkError, ccxt.ExchangeClosedByUser) as exc:
                if self._closing:
                    return
                self._ws_since, self._ws_client = None, None
                self.stats["reconnects"] += 1
                log.warning("%s websocket: %s: %s; reconnecting in %.2fs (REST back-fills the gap)", self.exchange_id,
                            type(exc).__name__, str(exc)[:200], backoff)
                self._ws_event.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
            except ccxt.BaseError as exc:
                self._ws_since = None
                log.error("%s websocket unusable (%s: %s); bars come from REST polling", self.exchange_id,
                          type(exc).__name__, str(exc)[:200])
                self._ws_event.set()
                return


async def open_feed(exchange_id: str, settings: ExchangeSettings, symbols: Sequence[str], timeframe: str, *,
                    exchange: Any = None, use_websocket: bool | None = None,
                    clock: Callable[[], pd.Timestamp] = utc_now, **feed_options: Any) -> BarFeed:
    """A started :class:`BarFeed` over ``exchange`` (built from ``settings`` when None, markets loaded).

    ``use_websocket``: None streams when the exchange's ``ccxt.pro`` class has ``watchOHLCVForSymbols``;
    True asks for it (falls back to REST polling, with a warning, when the exchange has none); False polls.
    The websocket client is for public market data only: it never gets the API keys.
    """
    from graphwiz_trader.trading.engines.ccxt_venue import build_exchange

    if exchange is None:
        exchange = build_exchange(exchange_id, settings)
    await call_with_retries(exchange.load_markets, what="loading markets", settings=settings,
                            exchange_id=exchange_id)
    missing = [s for s in symbols if s not in (exchange.markets or {})]
    if missing:
        raise UnknownSymbolError(missing, f"exchange {exchange_id}", sorted(exchange.markets or {}))
    ws = None
    if use_websocket is not False:
        public = settings.model_copy(update={"api_key": None, "secret": None})
        try:
            ws = build_exchange(exchange_id, public, pro=True)
        except ConfigError as exc:  # no ccxt.pro class for this exchange: REST polling
            log.info("%s: no websocket client (%s); polling REST", exchange_id, exc)
        if ws is not None and not (ws.has.get("watchOHLCVForSymbols") or False):
            if use_websocket:
                log.warning("%s has no watchOHLCVForSymbols in ccxt.pro; polling REST instead", exchange_id)
            await ws.close()
            ws = None
        if ws is not None:
            await call_with_retries(ws.load_markets, what="loading markets (websocket client)", settings=settings,
                                    exchange_id=exchange_id)
    feed = BarFeed(exchange, symbols, timeframe, settings=settings, exchange_id=exchange_id, ws_exchange=ws,
                   clock=clock, **feed_options)
    await feed.start()
    return feed


async def close_feed(feed: BarFeed | None) -> None:
    """Stop the feed and close its exchange clients."""
    if feed is None:
        return
    await feed.close()
    for ex in (feed.ws_exchange, feed.exchange):
        if ex is not None and hasattr(ex, "close"):
            try:
                await ex.close()
            except Exception as exc:  # closing must not hide the caller's error
                log.debug("closing %s: %s", getattr(ex, "id", ex), exc)
