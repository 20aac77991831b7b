"""PaperTradingEngine: live bars from an exchange through ccxt, fills simulated as in the replay.

- Bars: :class:`~graphwiz_trader.trading.engines.bar_feed.BarFeed` (websocket where the exchange has it, REST
  polling otherwise, reconnects, gap back-fill, never the still-forming candle).
- Fills: :func:`~graphwiz_trader.trading.engines.fills.simulate_fills`, the replay's simulation: an order works
  on the bars that open at or after its decision (and after it was submitted), at their opens, with the
  backtester's :class:`~graphwiz_trader.backtest.settings.CostModel`; ``max_participation`` of a bar's volume
  caps each child (partial fills). Each ``next_bars`` first works the open orders over the new bars, then
  hands the bars out (as the replay does), so nothing fills at the close of its decision bar.
- Venue checks, as an exchange would make them: the exchange's real market rules (minimum qty and notional,
  from ccxt markets), spot only (a sell above the free position is rejected), and enough free cash for a buy
  (cash minus what open buys still need, at the last close plus the modelled costs).
- State (cash, positions, working orders, unreported updates and fills, the bar cursor) is written
  atomically to ``state_path`` after every change (:func:`~graphwiz_trader.core.runs.atomic_write_bytes`),
  so a restarted engine resumes where it stopped: bars it missed are back-filled and open orders work over
  them. One process at a time: a lock file beside the state refuses a second one, naming its PID.

Units: quantities base units, prices quote per base unit, money quote currency, times tz-aware UTC.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.core.runs import atomic_write_bytes
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError
from graphwiz_trader.trading.engines.bar_feed import (
    BarFeed,
    close_feed,
    open_feed,
    utc_now,
)
from graphwiz_trader.trading.engines.ccxt_venue import market_rules
from graphwiz_trader.trading.engines.fills import (
    BarQuote,
    WorkingOrder,
    cash_change,
    open_working_order,
    simulate_fills,
    trailing_adv_quote,
)
from graphwiz_trader.trading.types import (
    AccountSnapshot,
    Fill,
    MarketRules,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
)

log = logging.getLogger(__name__)

__all__ = ["PaperTradingEngine"]

STATE_VERSION = 1


class PaperTradingEngine:
    """Live bars, simulated fills, persisted state (see the module docstring).

    Parameters
    ----------
    symbols : the symbols followed (``BTC/USDT``); orders on others are rejected.
    state_path : the state file (JSON); resumed when it exists.
    exchange_id, settings : the ccxt exchange for market data (keys are never needed nor sent).
    timeframe : bar size.
    initial_cash_quote : starting cash of a new state (quote).
    costs : the backtester's cost model; ``max_participation``: cap per child, fraction of bar volume.
    use_websocket : None: stream when the exchange can; False: REST polling.
    clock : the wall clock (UTC); ``feed_options``: :class:`BarFeed` timings.
    keep_bars : recent bars kept per symbol (trailing ADV for impact, VWAP/AC planning).
    keep_final_orders_bars : a final order stays in the state (idempotent resubmit, fills for reconcile)
        for this many bars after its last update.
    """

    name = "paper"

    def __init__(self, symbols: Sequence[str], *, state_path: str | Path, exchange_id: str = "binance",
                 settings: ExchangeSettings | None = None, timeframe: str = "1h",
                 initial_cash_quote: float = 100_000.0, costs: CostModel | None = None,
                 max_participation: float | None = None, quote: str = "USDT", use_websocket: bool | None = None,
                 clock: Callable[[], pd.Timestamp] = utc_now, exchange: Any = None,
                 feed_options: dict[str, Any] | None = None, ppo_model: str | None = None, keep_bars: int = 720,
                 keep_final_orders_bars: int = 48) -> None:
        if not symbols:
            raise ConfigError("the paper engine needs at least one symbol")
        if not (initial_cash_quote > 0):
            raise ConfigError(f"initial cash must be > 0 {quote}, got {initial_cash_quote}")
        if max_participation is not None and not 0 < max_participation <= 1:
            raise ConfigError(f"max_participation must be in (0, 1] of a bar's volume, got {max_participation}")
        self.symbols = list(dict.fromkeys(symbols))
        self.state_path = Path(state_path)
        self.exchange_id, self.timeframe, self.quote = exchange_id, timeframe, quote
        self.settings = (settings or ExchangeSettings()).model_copy(update={"api_key": None, "secret": None})
        self.costs = costs or CostModel()
        self.max_participation = max_participation
        self.use_websocket, self.clock = use_websocket, clock
        self.feed_options = dict(feed_options or {})
        self.keep_bars, self.keep_final_orders_bars = int(keep_bars), int(keep_final_orders_bars)
        self.ppo_model = ppo_model
        self._exchange = exchange
        self.feed: BarFeed | None = None
        self.initial_cash_quote = float(initial_cash_quote)
        self.cash_quote = float(initial_cash_quote)
        self.positions: dict[str, float] = {}
        self._orders: dict[str, WorkingOrder] = {}
        self._eligible: dict[str, pd.Timestamp] = {}  # first bar open an order may fill on
        self._fill_log: dict[str, list[Fill]] = {}
        self._pending_updates: list[OrderUpdate] = []
        self._pending_fills: list[Fill] = []
        self._recent: dict[str, pd.DataFrame] = {}
        self._rules: dict[str, MarketRules] = {}
        self._now: pd.Timestamp | None = None
        self._lock: Any = None
        self._planner: Any = None
        self.fills_total = 0

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Take the state lock, resume the state, connect to the exchange and start the bar feed."""
        from graphwiz_trader.graph.server_process import FolderLock

        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        self._lock = FolderLock(lock_path)
        if not self._lock.try_acquire():
            pid = FolderLock.holder(lock_path)
            self._lock = None
            raise ConfigError(f"paper state {self.state_path} is in use by another process (PID {pid}); "
                              "stop it or use another state file")
        try:
            cursor = self._load_state()
            self.feed = await open_feed(self.exchange_id, self.settings, self.symbols, self.timeframe,
                                        exchange=self._exchange, use_websocket=self.use_websocket,
                                        clock=self.clock, **self.feed_options)
            markets = self.feed.exchange.markets
            mode = getattr(self.feed.exchange, "precisionMode", None)
            self._rules = {s: market_rules(s, markets[s], mode) for s in self.symbols}
            window = self.costs.impact_volume_window_bars
            for sym in self.symbols:  # the trailing volume the impact cost needs, from before any fill bar
                since = cursor[sym] - (window - 1) * self.feed.step if sym in cursor else None
                self._remember(sym, await self.feed.fetch_closed(sym, since, limit=None if since is not None else window))
            if cursor:
                self.feed.set_cursor(cursor)
                self._now = max(cursor.values()) + self.feed.step
                missed = await self.feed.catch_up()
                if missed:
                    log.info("paper engine: working open orders over %d bar(s) closed while it was down",
                             max(len(df) for df in missed.values()))
                    self._advance(missed)
            self._save()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the feed, close the exchange client, release the state lock (the state is already saved)."""
        await close_feed(self.feed)
        self.feed = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def now(self) -> pd.Timestamp:
        """Close of the last bar handed out (before the first: the last closed bar's close by the clock)."""
        if self._now is not None:
            return self._now
        return self.clock().floor(pd.Timedelta(self._step()))

    def _step(self) -> pd.Timedelta:
        from graphwiz_trader.core.timeframes import timeframe_delta

        return timeframe_delta(self.timeframe)

    def data_age(self) -> pd.Timedelta:
        """``now - close of the last closed bar`` of the stalest symbol (``NaT`` before any bar)."""
        return self._feed().data_age()

    def data_ages(self) -> dict[str, pd.Timedelta]:
        return self._feed().data_ages()

    def _feed(self) -> BarFeed:
        if self.feed is None:
            raise ConfigError("the paper engine is not started: await engine.start() first")
        return self.feed

    # ------------------------------------------------------------------------------ bars
    async def history(self, symbols: Sequence[str], n_bars: int) -> dict[str, pd.DataFrame]:
        """The last ``n_bars`` closed bars of each symbol."""
        self._check_symbols(symbols)
        out = await self._feed().history(symbols, n_bars)
        for s, df in out.items():
            self._remember(s, df)
        if self._now is None and any(len(df) for df in out.values()):
            self._now = max(df.index[-1] for df in out.values() if len(df)) + self._feed().step
        return out

    async def next_bars(self) -> dict[str, pd.DataFrame]:
        """Wait for the next close; work open orders over every new bar (in time order), then return the bars."""
        bars = await self._feed().next_bars()
        self._advance(bars)
        self._save()
        return bars

    def _advance(self, bars: dict[str, pd.DataFrame]) -> None:
        """Work the open orders over every new bar in time order; move the clock to the last close."""
        for s, df in bars.items():
            self._remember(s, df)
        times = sorted({t for df in bars.values() for t in df.index})
        for t in times:
            self._work(t, {s: df.loc[t] for s, df in bars.items() if t in df.index})
        if times:
            self._now = max(self._now or times[-1], times[-1] + self._feed().step)
        self._prune()

    def _remember(self, symbol: str, df: pd.DataFrame) -> None:
        if not len(df):
            return
        old = self._recent.get(symbol)
        merged = df if old is None else pd.concat([old, df])
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        self._recent[symbol] = merged.iloc[-self.keep_bars:]

    def _adv(self, symbol: str, t: pd.Timestamp) -> float:
        """Mean quote volume per bar over the impact window ending at the bar before ``t`` (the backtester's)."""
        df = self._recent.get(symbol)
        if df is None:
            return 0.0
        before = df[df.index < t]
        if not len(before):
            return 0.0
        w = self.costs.impact_volume_window_bars
        adv = trailing_adv_quote(before["volume"].to_numpy()[:, None], before["close"].to_numpy()[:, None], w)
        return float(adv[-1, 0])

    def _work(self, t: pd.Timestamp, rows: dict[str, pd.Series]) -> None:
        orders = [w for cid, w in self._orders.items() if not w.state.is_final and self._eligible[cid] <= t]
        if not orders:
            return
        quotes = {s: BarQuote(float(r["open"]), float(r["volume"])) for s, r in rows.items()}
        adv = {w.request.symbol: self._adv(w.request.symbol, t) for w in orders}
        updates, fills = simulate_fills(orders, t, quotes, adv, self.costs, self.max_participation)
        for f in fills:
            self.cash_quote += cash_change(f)
            self.positions[f.symbol] = self.positions.get(f.symbol, 0.0) + f.side.sign * f.qty
            self._fill_log.setdefault(f.client_order_id, []).append(f)
        self.fills_total += len(fills)
        self._pending_updates.extend(updates)
        self._pending_fills.extend(fills)

    # ------------------------------------------------------------------------------ venue
    async def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """The exchange's rules (from ccxt markets) for ``symbols``."""
        self._check_symbols(symbols)
        self._feed()
        return {s: self._rules[s] for s in symbols}

    async def account(self) -> AccountSnapshot:
        return AccountSnapshot(self.cash_quote, {s: q for s, q in self.positions.items() if q != 0.0}, self.now())

    def last_prices(self) -> dict[str, float]:
        """Last close of every symbol seen."""
        return {s: float(df["close"].iloc[-1]) for s, df in self._recent.items() if len(df)}

    def equity_quote(self) -> float:
        prices = self.last_prices()
        return self.cash_quote + sum(q * prices[s] for s, q in self.positions.items() if q)

    async def submit(self, orders: Sequence[OrderRequest]) -> list[OrderUpdate]:
        """Accept orders (idempotent per client order id); they fill on bars after their decision."""
        out: list[OrderUpdate] = []
        now = self.now()
        for o in orders:
            known = self._orders.get(o.client_order_id)
            if known is not None:
                out.append(known.update())
                continue
            reason = self._venue_check(o, now)
            w = open_working_order(o, reason, self._planner_for, now, "paper")
            self._orders[o.client_order_id] = w
            self._eligible[o.client_order_id] = max(pd.Timestamp(o.decided_utc), now)
            out.append(w.update(now))
        self._save()
        return out

    def _venue_check(self, o: OrderRequest, now: pd.Timestamp) -> str:
        """What an exchange would reject: unknown symbol, rules, short sale, missing cash; '' when fine."""
        if o.symbol not in self.symbols:
            return f"unknown symbol {o.symbol} (this paper engine follows {', '.join(self.symbols)})"
        if o.decided_utc > now:
            return f"decided at {o.decided_utc}, after the engine clock {now}"
        rules = self._rules.get(o.symbol)
        price = o.limit_price or self.last_prices().get(o.symbol)
        if price is None:
            return f"no price for {o.symbol} yet: call history() or next_bars() first"
        if rules is not None:
            if o.qty + 1e-12 < rules.min_qty:
                return f"qty {o.qty:.10g} below {o.symbol}'s minimum order qty {rules.min_qty:g}"
            if o.qty * price < rules.min_notional_quote:
                return (f"order notional {o.qty * price:.2f} {self.quote} below {o.symbol}'s minimum notional "
                        f"{rules.min_notional_quote:g} {self.quote}")
        if o.side is Side.SELL:
            free = self._free_position(o.symbol)
            if o.qty > free * (1 + 1e-9) + 1e-12:
                return (f"insufficient balance: sell {o.qty:.10g} {o.symbol} exceeds the free position "
                        f"{free:.10g} (spot: no short selling)")
        else:
            need = o.qty * price * (1 + self._cost_rate())
            free_cash = self._free_cash()
            if need > free_cash + 1e-9:
                return (f"insufficient balance: buy {o.qty:.10g} {o.symbol} needs ~{need:.2f} {self.quote} "
                        f"(at {price:g} plus costs), free cash is {free_cash:.2f} {self.quote}")
        return ""

    def _cost_rate(self) -> float:
        c = self.costs
        return (c.fee_bps + c.half_spread_bps + c.slippage_bps) / 1e4

    def _free_position(self, symbol: str) -> float:
        pending = sum(w.remaining_qty for w in self._orders.values()
                      if not w.state.is_final and w.request.symbol == symbol and w.request.side is Side.SELL)
        return self.positions.get(symbol, 0.0) - pending

    def _free_cash(self) -> float:
        prices = self.last_prices()
        reserved = sum(w.remaining_qty * (w.request.limit_price or prices.get(w.request.symbol, 0.0))
                       * (1 + self._cost_rate()) for w in self._orders.values()
                       if not w.state.is_final and w.request.side is Side.BUY)
        return self.cash_quote - reserved

    def _planner_for(self, order: OrderRequest) -> Any:
        if order.execution.upper() in ("MARKET", "TWAP"):
            return None
        from graphwiz_trader.execution.engine import create_optimal_execution_engine

        decided = pd.Timestamp(order.decided_utc)
        bars = {s: df[df.index + self._step() <= decided] for s, df in self._recent.items()}
        return create_optimal_execution_engine(bars, timeframe=self.timeframe, ppo_model=self.ppo_model)

    async def open_orders(self) -> list[OrderUpdate]:
        return [w.update() for w in self._orders.values() if not w.state.is_final]

    async def order_status(self, client_order_ids: Sequence[str]) -> list[OrderUpdate]:
        """Updates of the orders known among ``client_order_ids`` (unknown ids are left out)."""
        return [self._orders[c].update() for c in client_order_ids if c in self._orders]

    async def poll_updates(self) -> tuple[list[OrderUpdate], list[Fill]]:
        """Order updates and fills since the previous call."""
        ups, fills = self._pending_updates, self._pending_fills
        self._pending_updates, self._pending_fills = [], []
        if ups or fills:
            self._save()
        return ups, fills

    async def fills_for(self, client_order_ids: Sequence[str]) -> list[Fill]:
        """Every fill of the given orders still in the state (for reconciling a journal after a crash)."""
        return [f for c in client_order_ids for f in self._fill_log.get(c, [])]

    async def cancel_all(self, symbols: Sequence[str] | None = None) -> list[OrderUpdate]:
        """Cancel every open order (of ``symbols``); what already filled stays filled."""
        out = []
        for w in self._orders.values():
            if w.state.is_final or (symbols is not None and w.request.symbol not in symbols):
                continue
            w.state, w.reason = OrderState.CANCELED, "canceled by request"
            w.last_ts = self.now()
            out.append(w.update(self.now()))
        self._pending_updates.extend(out)
        self._save()
        return out

    def _check_symbols(self, symbols: Sequence[str]) -> None:
        missing = [s for s in symbols if s not in self.symbols]
        if missing:
            raise UnknownSymbolError(missing, "the paper engine's symbols", self.symbols)

    # ------------------------------------------------------------------------------ state
    def _prune(self) -> None:
        """Forget final orders whose last update is older than ``keep_final_orders_bars`` bars."""
        horizon = self.now() - self.keep_final_orders_bars * self._step()
        reported = {u.client_order_id for u in self._pending_updates} | {f.client_order_id for f in self._pending_fills}
        for cid in [c for c, w in self._orders.items() if w.state.is_final and w.last_ts is not None
                    and w.last_ts < horizon and c not in reported]:
            self._orders.pop(cid)
            self._eligible.pop(cid, None)
            self._fill_log.pop(cid, None)

    def _save(self) -> None:
        cursor = self.feed.cursor() if self.feed is not None else {}
        state = {
            "version": STATE_VERSION, "engine": "paper", "exchange": self.exchange_id, "timeframe": self.timeframe,
            "quote": self.quote, "symbols": self.symbols, "initial_cash_quote": self.initial_cash_quote,
            "cash_quote": self.cash_quote, "positions": self.positions, "fills_total": self.fills_total,
            "now": _iso(self._now), "cursor": {s: _iso(t) for s, t in cursor.items()},
            "orders": {cid: _order_json(w, self._eligible[cid], self._fill_log.get(cid, []))
                       for cid, w in self._orders.items()},
            "pending_updates": [_update_json(u) for u in self._pending_updates],
            "pending_fills": [f.to_dict() | {"ts_utc": _iso(f.ts_utc)} for f in self._pending_fills],
        }
        atomic_write_bytes(self.state_path, json.dumps(state, indent=1, sort_keys=True).encode())

    def _load_state(self) -> dict[str, pd.Timestamp]:
        """Resume from the state file; returns the bar cursor (empty for a new state)."""
        if not self.state_path.exists():
            return {}
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"paper state {self.state_path} is unreadable: {exc}") from None
        where = f"paper state {self.state_path}"
        if state.get("version") != STATE_VERSION or state.get("engine") != "paper":
            raise DataError(f"{where}: not a version-{STATE_VERSION} paper state")
        for key, mine in (("exchange", self.exchange_id), ("timeframe", self.timeframe), ("quote", self.quote)):
            if state.get(key) != mine:
                raise ConfigError(f"{where} was written for {key}={state.get(key)!r}, not {mine!r}: "
                                  "use another state file")
        extra = sorted(set(state.get("positions", {})) - set(self.symbols))
        if extra:
            raise ConfigError(f"{where} holds positions in {', '.join(extra)}, which this engine does not follow")
        self.initial_cash_quote = float(state["initial_cash_quote"])
        self.cash_quote = float(state["cash_quote"])
        self.positions = {s: float(q) for s, q in state.get("positions", {}).items()}
        self.fills_total = int(state.get("fills_total", 0))
        self._now = _ts(state.get("now"))
        for cid, d in state.get("orders", {}).items():
            w, eligible, fills = _order_from_json(d)
            self._orders[cid], self._eligible[cid], self._fill_log[cid] = w, eligible, fills
        self._pending_updates = [_update_from_json(d) for d in state.get("pending_updates", [])]
        self._pending_fills = [_fill_from_json(d) for d in state.get("pending_fills", [])]
        log.info("paper engine resumed from %s: cash %.2f %s, %d position(s), %d open order(s)", self.state_path,
                 self.cash_quote, self.quote, sum(1 for q in self.positions.values() if q),
                 sum(1 for w in self._orders.values() if not w.state.is_final))
        return {s: t for s, t in ((s, _ts(v)) for s, v in state.get("cursor", {}).items()) if t is not None}


def _iso(t: pd.Timestamp | None) -> str | None:
    return None if t is None else pd.Timestamp(t).isoformat()


def _ts(v: str | None) -> pd.Timestamp | None:
    return None if v is None else pd.Timestamp(v)


def _request_from_json(d: dict[str, Any]) -> OrderRequest:
    return OrderRequest(**{**d, "side": Side(d["side"]), "decided_utc": pd.Timestamp(d["decided_utc"])})


def _order_json(w: WorkingOrder, eligible: pd.Timestamp, fills: list[Fill]) -> dict[str, Any]:
    req = w.request.to_dict() | {"decided_utc": _iso(w.request.decided_utc)}
    return {"request": req, "fractions": [float(x) for x in w.fractions], "filled_qty": w.filled_qty,
            "notional_quote": w.notional_quote, "slots_used": w.slots_used, "state": w.state.value,
            "reason": w.reason, "fills": w.fills, "last_ts": _iso(w.last_ts), "eligible": _iso(eligible),
            "fill_log": [f.to_dict() | {"ts_utc": _iso(f.ts_utc)} for f in fills]}


def _order_from_json(d: dict[str, Any]) -> tuple[WorkingOrder, pd.Timestamp, list[Fill]]:
    w = WorkingOrder(_request_from_json(d["request"]), np.asarray(d["fractions"], dtype=float),
                     filled_qty=float(d["filled_qty"]), notional_quote=float(d["notional_quote"]),
                     slots_used=int(d["slots_used"]), state=OrderState(d["state"]), reason=d.get("reason", ""),
                     fills=int(d.get("fills", 0)), last_ts=_ts(d.get("last_ts")))
    return w, pd.Timestamp(d["eligible"]), [_fill_from_json(f) for f in d.get("fill_log", [])]


def _update_json(u: OrderUpdate) -> dict[str, Any]:
    return {"client_order_id": u.client_order_id, "symbol": u.symbol, "state": u.state.value,
            "filled_qty": u.filled_qty, "avg_price": u.avg_price, "ts_utc": _iso(u.ts_utc),
            "venue_order_id": u.venue_order_id, "reason": u.reason}


def _update_from_json(d: dict[str, Any]) -> OrderUpdate:
    return OrderUpdate(d["client_order_id"], d["symbol"], OrderState(d["state"]), float(d["filled_qty"]),
                       d.get("avg_price"), _ts(d.get("ts_utc")), d.get("venue_order_id"), d.get("reason", ""))


def _fill_from_json(d: dict[str, Any]) -> Fill:
    return Fill(**{**d, "side": Side(d["side"]), "ts_utc": pd.Timestamp(d["ts_utc"])})
