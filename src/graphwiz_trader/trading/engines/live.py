"""LiveTradingEngine: real orders through ccxt (``sandbox`` switch), with client ids that never double an order.

- Keys come from :class:`~graphwiz_trader.config.settings.ExchangeSettings` (``${BINANCE_API_KEY}``,
  ``SecretStr``); the engine refuses to start without them and never logs or shows them.
- ``sandbox=True`` uses the exchange's testnet (ccxt ``set_sandbox_mode``).
- Submitting is idempotent per :func:`~graphwiz_trader.trading.types.client_order_id` (passed as
  ``newClientOrderId``/``clientOrderId``): an id this process knows is only re-queried; an unknown id is first
  looked up on the exchange (Binance accepts a used id again once its order is closed, so the exchange alone
  does not prevent a second order); when creating fails with a network error the request may still have
  reached the exchange, so the engine looks the id up (with retries) and only creates again when the exchange
  says the order does not exist; a duplicate-id rejection is resolved by fetching the existing order. When the
  exchange stays unreachable :class:`~graphwiz_trader.errors.ExchangeUnavailableError` is raised and the
  order stays unknown (``NEW`` in the write-ahead journal) until :func:`~graphwiz_trader.trading.reconcile.reconcile`
  settles it.
- Rejections come back as ``REJECTED`` updates whose reason says what and why (below the minimum notional,
  below the minimum qty, insufficient balance, ...). Refused keys raise
  :class:`~graphwiz_trader.trading.engines.ccxt_venue.VenueAuthError`.
- ``start()`` reconciles open orders, fills and positions with the journal when one is given
  (:attr:`LiveTradingEngine.last_reconcile`). ``state_path`` keeps the balances at the run's first start (the
  baseline positions are compared against the journal's fills).
- Bars: :class:`~graphwiz_trader.trading.engines.bar_feed.BarFeed` (websocket where available, else REST).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.core.runs import atomic_write_bytes
from graphwiz_trader.errors import (
    ConfigError,
    GraphwizError,
    ExchangeUnavailableError,
    UnknownSymbolError,
)
from graphwiz_trader.trading.engines.bar_feed import (
    BarFeed,
    close_feed,
    open_feed,
    utc_now,
)
from graphwiz_trader.trading.engines.ccxt_venue import (
    _short,
    build_exchange,
    call_with_retries,
    market_rules,
    order_update,
    trade_fill,
    venue_error,
)
from graphwiz_trader.trading.types import (
    AccountSnapshot,
    Fill,
    MarketRules,
    OrderRequest,
    OrderState,
    OrderUpdate,
)

log = logging.getLogger(__name__)

__all__ = ["LiveTradingEngine"]


class LiveTradingEngine:
    """Orders on a real (or sandbox) exchange through ccxt (see the module docstring).

    Parameters
    ----------
    symbols : the symbols traded; ``timeframe``: bar size.
    settings : keys, ``sandbox``, timeouts and the retry policy.
    journal, run_id : the trade journal and run to reconcile with on :meth:`start` (optional).
    state_path : where the run's baseline balances are kept (optional; without it positions are compared
        as if the account held none of the traded assets when the run started).
    use_websocket, clock, feed_options : the bar feed (see :class:`BarFeed`).
    exchange : an already built ccxt exchange (otherwise built from ``settings``).
    """

    name = "live"

    def __init__(self, symbols: Sequence[str], *, settings: ExchangeSettings, exchange_id: str = "binance",
                 timeframe: str = "1h", quote: str = "USDT", journal: Any = None, run_id: str | None = None,
                 state_path: str | Path | None = None, use_websocket: bool | None = None,
                 clock: Callable[[], pd.Timestamp] = utc_now, feed_options: dict[str, Any] | None = None,
                 exchange: Any = None, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if not symbols:
            raise ConfigError("the live engine needs at least one symbol")
        self.symbols = list(dict.fromkeys(symbols))
        self.settings, self.exchange_id = settings, exchange_id
        self.timeframe, self.quote = timeframe, quote
        self.journal, self.run_id = journal, run_id
        self.state_path = Path(state_path) if state_path is not None else None
        self.use_websocket, self.clock = use_websocket, clock
        self.feed_options = dict(feed_options or {})
        self._sleep = sleep
        self.exchange = exchange
        self.feed: BarFeed | None = None
        self.baseline_positions: dict[str, float] = {}
        self.last_reconcile: Any = None
        self._orders: dict[str, dict[str, Any]] = {}  # client id -> {symbol, venue_id, update, trades: set}
        self._now: pd.Timestamp | None = None

    def __repr__(self) -> str:  # never shows keys
        return (f"LiveTradingEngine(exchange={self.exchange_id!r}, sandbox={self.settings.sandbox}, "
                f"symbols={len(self.symbols)}, started={self.feed is not None})")

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Check the keys, connect, load markets, start the bar feed, reconcile with the journal (if any)."""
        if self.exchange is None:
            if self.settings.api_key is None or self.settings.secret is None:
                raise ConfigError(f"live trading on {self.exchange_id} needs exchanges.{self.exchange_id}.api_key "
                                  f"and secret (from the environment, e.g. ${{{self.exchange_id.upper()}_API_KEY}} "
                                  f"and ${{{self.exchange_id.upper()}_SECRET}}); "
                                  + ("use testnet keys with sandbox" if self.settings.sandbox
                                     else "add sandbox: true to trade on the testnet"))
            self.exchange = build_exchange(self.exchange_id, self.settings)
        try:
            self.feed = await open_feed(self.exchange_id, self.settings, self.symbols, self.timeframe,
                                        exchange=self.exchange, use_websocket=self.use_websocket, clock=self.clock,
                                        **self.feed_options)
            balances = await self._call(self.exchange.fetch_balance, what="fetching balances")
            self._load_baseline(balances)
            if self.journal is not None and self.run_id is not None:
                from graphwiz_trader.trading.reconcile import reconcile

                self.last_reconcile = await reconcile(self, self.journal, self.run_id,
                                                      baseline_positions=self.baseline_positions)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the bar feed and close the exchange clients."""
        if self.feed is not None:
            await close_feed(self.feed)  # closes self.exchange too
        elif self.exchange is not None:
            try:
                await self.exchange.close()
            except Exception as exc:  # closing must not hide the caller's error
                log.debug("closing %s: %s", self.exchange_id, exc)
        self.feed = None

    def _load_baseline(self, balances: dict[str, Any]) -> None:
        """The run's baseline positions: read from ``state_path``, or taken now and written there."""
        current = self._positions(balances)
        if self.state_path is None:
            return
        if self.state_path.exists():
            try:
                state = json.loads(self.state_path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"live state {self.state_path} is unreadable: {exc}") from None
            if state.get("run_id") == self.run_id and state.get("exchange") == self.exchange_id:
                self.baseline_positions = {s: float(q) for s, q in state.get("baseline_positions", {}).items()}
                return
        self.baseline_positions = current
        state = {"engine": "live", "exchange": self.exchange_id, "run_id": self.run_id,
                 "sandbox": self.settings.sandbox, "started_utc": self.clock().isoformat(),
                 "baseline_positions": current}
        atomic_write_bytes(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode())

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, what: str, **kwargs: Any) -> Any:
        return await call_with_retries(fn, *args, what=what, settings=self.settings, exchange_id=self.exchange_id,
                                       sleep=self._sleep, **kwargs)

    def _feed(self) -> BarFeed:
        if self.feed is None:
            raise ConfigError("the live engine is not started: await engine.start() first")
        return self.feed

    # ------------------------------------------------------------------------------ clock and bars
    def now(self) -> pd.Timestamp:
        """Close of the last bar handed out (before the first: the last closed bar's close by the clock)."""
        if self._now is not None:
            return self._now
        return self.clock().floor(self._feed().step)

    def data_age(self) -> pd.Timedelta:
        """``now - close of the last closed bar`` of the stalest symbol (``NaT`` before any bar)."""
        return self._feed().data_age()

    def data_ages(self) -> dict[str, pd.Timedelta]:
        return self._feed().data_ages()

    async def history(self, symbols: Sequence[str], n_bars: int) -> dict[str, pd.DataFrame]:
        self._check_symbols(symbols)
        out = await self._feed().history(symbols, n_bars)
        if self._now is None and any(len(df) for df in out.values()):
            self._now = max(df.index[-1] for df in out.values() if len(df)) + self._feed().step
        return out

    async def next_bars(self) -> dict[str, pd.DataFrame]:
        bars = await self._feed().next_bars()
        if bars:
            last = max(df.index[-1] for df in bars.values() if len(df)) + self._feed().step
            self._now = max(self._now or last, last)
        return bars

    # ------------------------------------------------------------------------------ venue
    async def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        self._check_symbols(symbols)
        self._feed()
        mode = getattr(self.exchange, "precisionMode", None)
        return {s: market_rules(s, self.exchange.markets[s], mode) for s in symbols}

    def _positions(self, balances: dict[str, Any]) -> dict[str, float]:
        totals = balances.get("total") or {}
        out = {}
        for s in self.symbols:
            q = float(totals.get(s.split("/")[0]) or 0.0)
            if q:
                out[s] = q
        return out

    async def account(self) -> AccountSnapshot:
        """Cash (the quote currency's total balance) and the traded symbols' base balances, as the exchange has them."""
        balances = await self._call(self.exchange.fetch_balance, what="fetching balances")
        cash = float((balances.get("total") or {}).get(self.quote) or 0.0)
        return AccountSnapshot(cash, self._positions(balances), self.clock())

    async def submit(self, orders: Sequence[OrderRequest]) -> list[OrderUpdate]:
        """Send orders (idempotent per client order id; see the module docstring)."""
        return [await self._submit_one(o) for o in orders]

    async def _submit_one(self, o: OrderRequest) -> OrderUpdate:
        import ccxt

        cid = o.client_order_id
        if self._orders.get(cid, {}).get("update") is not None:  # seen on the exchange: only re-query it
            known = await self.order_status([cid])
            if known:
                return known[0]
        if o.symbol not in self.symbols or o.symbol not in (self.exchange.markets or {}):
            return OrderUpdate(cid, o.symbol, OrderState.REJECTED, ts_utc=self.clock(),
                               reason=f"unknown symbol {o.symbol} (this engine trades {', '.join(self.symbols)})")
        existing = await self._lookup(cid, o.symbol)
        if existing is not None:
            log.info("order %s already on %s (%s): not sent again", cid, self.exchange_id, existing.state.value)
            return existing
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                order = await self.exchange.create_order(
                    o.symbol, o.order_type, o.side.value, o.qty, o.limit_price if o.order_type == "limit" else None,
                    {"newClientOrderId": cid, "clientOrderId": cid})
                return self._track(cid, o.symbol, order)
            except ccxt.NetworkError as exc:
                delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                log.warning("%s: %s sending %s (attempt %d/%d); checking whether it arrived", self.exchange_id,
                            type(exc).__name__, cid, attempt, attempts)
                await self._sleep(delay)
                existing = await self._lookup(cid, o.symbol)  # raises when the exchange stays unreachable
                if existing is not None:
                    return existing
                if attempt == attempts:
                    raise ExchangeUnavailableError(
                        f"exchange {self.exchange_id} unreachable while sending order {cid} ({o.side.value} "
                        f"{o.qty:g} {o.symbol}) after {attempts} attempt(s): {type(exc).__name__}: {_short(exc)}; "
                        "the exchange does not have it") from None
            except ccxt.InvalidOrder as exc:
                if "duplicate" in str(exc).lower():
                    existing = await self._lookup(cid, o.symbol)
                    if existing is not None:
                        log.info("order %s: duplicate client id; the existing order is used", cid)
                        return existing
                return await self._rejected(o, exc)
            except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as exc:
                raise venue_error(exc, self.exchange_id, f"order {cid}") from None
            except ccxt.ExchangeError as exc:
                return await self._rejected(o, exc)
        raise AssertionError("unreachable")

    async def _lookup(self, cid: str, symbol: str) -> OrderUpdate | None:
        """The exchange's order with client id ``cid`` (tracked from now on), or None when it has none."""
        import ccxt

        async def fetch() -> Any:
            try:
                return await self.exchange.fetch_order("", symbol, {"clientOrderId": cid})
            except ccxt.OrderNotFound:
                return None

        order = await self._call(fetch, what=f"looking up order {cid} on {symbol}")
        return None if order is None else self._track(cid, symbol, order)

    def _track(self, cid: str, symbol: str, order: dict[str, Any]) -> OrderUpdate:
        up = order_update(order, symbol)
        if not up.client_order_id:
            up = OrderUpdate(cid, symbol, up.state, up.filled_qty, up.avg_price, up.ts_utc, up.venue_order_id, up.reason)
        entry = self._orders.setdefault(cid, {"symbol": symbol, "trades": set(), "since": order.get("timestamp")})
        entry["venue_id"] = up.venue_order_id
        entry["update"] = up
        return up

    async def _rejected(self, o: OrderRequest, exc: Exception) -> OrderUpdate:
        """A REJECTED update whose reason says what was asked, which limit it broke, and what the exchange said."""
        import ccxt

        text = str(exc)
        said = f"(exchange: {_short(exc, 160)})"
        rules = market_rules(o.symbol, self.exchange.markets[o.symbol], getattr(self.exchange, "precisionMode", None))
        what = f"{o.side.value} {o.qty:.10g} {o.symbol}"
        if "NOTIONAL" in text:
            price = o.limit_price or await self._price(o.symbol)
            notional = f"{o.qty * price:.2f} {self.quote}" if price else "the order's notional"
            reason = (f"{what}: order notional {notional} is below the minimum notional "
                      f"{rules.min_notional_quote:g} {self.quote} {said}")
        elif "LOT_SIZE" in text or "minimum amount precision" in text:
            reason = (f"{what}: qty is below the minimum {rules.min_qty:g} or not a multiple of the step "
                      f"{rules.qty_step:g} {said}")
        elif isinstance(exc, ccxt.InsufficientFunds):
            price = o.limit_price or await self._price(o.symbol)
            asset = o.symbol.split("/")[1] if o.side.value == "buy" else o.symbol.split("/")[0]
            need = (f"needs ~{o.qty * price:.2f} {self.quote}" if o.side.value == "buy" and price
                    else f"needs {o.qty:.10g} {asset}")
            try:
                bal = await self.exchange.fetch_balance()
                have = f", free {float((bal.get('free') or {}).get(asset) or 0.0):.8g} {asset}"
            except ccxt.BaseError:
                have = ""
            reason = f"{what}: insufficient balance: {need}{have} {said}"
        else:
            reason = f"{what}: rejected {said}"
        log.warning("%s rejected %s: %s", self.exchange_id, o.client_order_id, reason)
        return OrderUpdate(o.client_order_id, o.symbol, OrderState.REJECTED, ts_utc=self.clock(), reason=reason)

    async def _price(self, symbol: str) -> float | None:
        """The last closed bar's close (from the feed, else one REST request); None when unavailable."""
        feed = self._feed()
        if symbol not in feed.last_prices:
            try:
                await feed.fetch_closed(symbol, None, limit=1)
            except GraphwizError as exc:  # only for a message: never fail the rejection on it
                log.debug("no price for %s: %s", symbol, exc)
        return feed.last_prices.get(symbol)

    async def open_orders(self) -> list[OrderUpdate]:
        """Every open order on the exchange for the traded symbols (tracked from now on)."""
        out = []
        for s in self.symbols:
            orders = await self._call(self.exchange.fetch_open_orders, s, what=f"fetching open orders of {s}")
            for order in orders:
                cid = str(order.get("clientOrderId") or "")
                out.append(self._track(cid, s, order) if cid else order_update(order, s))
        return out

    def remember(self, orders: Sequence[OrderRequest | tuple[str, str]]) -> None:
        """Learn the symbols of client ids (requests, or ``(client_id, symbol)`` pairs, from a journal) so that
        :meth:`order_status` and :meth:`fills_for` can query them."""
        for o in orders:
            cid, symbol = (o.client_order_id, o.symbol) if isinstance(o, OrderRequest) else o
            self._orders.setdefault(cid, {"symbol": symbol, "trades": set(), "since": None})

    async def order_status(self, client_order_ids: Sequence[str]) -> list[OrderUpdate]:
        """Fresh states of the orders among ``client_order_ids`` the exchange has (unknown ids are left out).

        An id this engine has not seen (submitted, looked up, listed or :meth:`remember`-ed) is searched in
        every traded symbol.
        """
        out = []
        for cid in client_order_ids:
            symbols = [self._orders[cid]["symbol"]] if cid in self._orders else self.symbols
            for s in symbols:
                up = await self._lookup(cid, s)
                if up is not None:
                    out.append(up)
                    break
        return out

    async def poll_updates(self) -> tuple[list[OrderUpdate], list[Fill]]:
        """Updates of tracked orders whose state or fill changed, and their new fills (trades), since the last call."""
        updates: list[OrderUpdate] = []
        for cid, entry in list(self._orders.items()):
            old = entry.get("update")
            if old is not None and old.state.is_final and self._seen_qty(entry) >= old.filled_qty - 1e-12:
                continue
            new = await self._lookup(cid, entry["symbol"])
            if new is None:  # remembered from a journal but never reached the exchange
                if old is None:
                    self._orders.pop(cid, None)
                continue
            if old is None or new.state != old.state or abs(new.filled_qty - old.filled_qty) > 1e-12:
                updates.append(new)
        fills = await self._new_fills([c for c, e in self._orders.items() if e.get("update") is not None
                                       and e["update"].filled_qty > self._seen_qty(e) + 1e-12])
        return updates, fills

    @staticmethod
    def _seen_qty(entry: dict[str, Any]) -> float:
        return float(sum(q for _, q in entry["trades"]))

    async def _new_fills(self, client_ids: Sequence[str]) -> list[Fill]:
        """Trades of these orders not returned before (by the exchange's trade id), as fills."""
        out: list[Fill] = []
        for cid in client_ids:
            entry = self._orders[cid]
            if entry.get("venue_id") is None:
                continue
            trades = await self._call(self.exchange.fetch_my_trades, entry["symbol"], None, None,
                                      {"orderId": entry["venue_id"]}, what=f"fetching trades of order {cid}")
            seen = {t for t, _ in entry["trades"]}
            for t in trades:
                if str(t.get("order")) != str(entry["venue_id"]) or str(t["id"]) in seen:
                    continue
                entry["trades"].add((str(t["id"]), float(t["amount"])))
                out.append(trade_fill(t, cid, self.quote))
        return out

    async def fills_for(self, client_order_ids: Sequence[str]) -> list[Fill]:
        """Every fill (exchange trade) of the given orders: what a journal may have missed in a crash."""
        for cid in client_order_ids:
            entry = self._orders.get(cid)
            if entry is not None and entry.get("venue_id") is None:
                await self._lookup(cid, entry["symbol"])
        out = []
        for cid in client_order_ids:
            entry = self._orders.get(cid)
            if entry is None or entry.get("venue_id") is None:
                continue
            trades = await self._call(self.exchange.fetch_my_trades, entry["symbol"], None, None,
                                      {"orderId": entry["venue_id"]}, what=f"fetching trades of order {cid}")
            for t in trades:
                if str(t.get("order")) == str(entry["venue_id"]):
                    entry["trades"].add((str(t["id"]), float(t["amount"])))
                    out.append(trade_fill(t, cid, self.quote))
        return out

    async def cancel_all(self, symbols: Sequence[str] | None = None) -> list[OrderUpdate]:
        """Cancel every open order of ``symbols`` (default: all traded) on the exchange; filled parts stay."""
        import ccxt

        out = []
        for s in symbols if symbols is not None else self.symbols:
            for order in await self._call(self.exchange.fetch_open_orders, s, what=f"fetching open orders of {s}"):
                async def cancel(order_id: str = str(order["id"]), sym: str = s) -> Any:
                    try:
                        return await self.exchange.cancel_order(order_id, sym)
                    except ccxt.OrderNotFound:  # filled or canceled meanwhile
                        return await self.exchange.fetch_order(order_id, sym)
                done = await self._call(cancel, what=f"canceling order {order['id']} on {s}")
                cid = str(done.get("clientOrderId") or order.get("clientOrderId") or "")
                up = self._track(cid, s, done) if cid else order_update(done, s)
                out.append(OrderUpdate(up.client_order_id, s, up.state, up.filled_qty, up.avg_price, up.ts_utc,
                                       up.venue_order_id, "canceled by request"))
        return out

    def _check_symbols(self, symbols: Sequence[str]) -> None:
        missing = [s for s in symbols if s not in self.symbols]
        if missing:
            raise UnknownSymbolError(missing, "the live engine's symbols", self.symbols)
