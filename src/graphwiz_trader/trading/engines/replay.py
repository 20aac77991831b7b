"""ReplayEngine: historical bars handed out one at a time as if live; fills from the following bars.

The bars are aligned on the union of their times (as :class:`~graphwiz_trader.backtest.engine.MarketPanel`
does). ``history`` returns the bars closed by the engine clock (the warm-up before ``start``); each
``next_bars`` call first works the open orders over the next bar (fills at its open, with the backtester's
costs: :mod:`graphwiz_trader.trading.engines.fills`), then hands that bar out. So an order decided at bar t's
close fills at bar t+1's open at the earliest, never at the close of its decision bar.

Clock: bars are labelled by their open time (the data layer's convention); ``now()`` is the close of the last
bar handed out (label + bar length), which is also the ``decided_utc`` of orders decided on that bar.

The venue is spot: cash (quote) and positions (base units) only; a sell larger than the position is rejected at
submit, like an exchange would (no short selling). Buying power is the risk manager's check, not the venue's:
as in the backtester, costs are paid from cash and may take it slightly below zero when fully invested.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.engine import MarketPanel
from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.core.timeframes import infer_timeframe, timeframe_delta
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError, UnknownSymbolError
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
)

log = logging.getLogger(__name__)

__all__ = ["ReplayEngine"]


class ReplayEngine:
    """Replay ``bars`` from ``start`` to ``end`` as if live (see the module docstring).

    Parameters
    ----------
    bars : canonical bars ``{symbol: frame}`` (tz-aware UTC index of bar open times, OHLCV floats), including
        the warm-up before ``start``.
    start, end : first and last bar handed out by :meth:`next_bars` (UTC; default: the second bar, the last).
    initial_cash_quote : starting cash (quote currency).
    costs : the backtester's cost model (fees, half-spread, slippage, sqrt impact, minimum notional).
    max_participation : cap on one child fill as a fraction of its bar's volume (None: no cap).
    quote : quote currency of cash and prices.
    timeframe : bar size (default: inferred from the bars).
    rules : per-symbol market rules (default: the cost model's minimum notional, no quantity step).
    ppo_model : a saved PPO execution policy (``models/<name>.zip``) for PPO orders.
    keep_final_orders_bars : a final order is remembered (idempotent resubmit, ``order_status``) for this many bars
        after its last update, then forgotten, so memory stays flat over long replays.
    """

    name = "replay"

    def __init__(self, bars: Mapping[str, pd.DataFrame], *, start: Any = None, end: Any = None,
                 initial_cash_quote: float = 100_000.0, costs: CostModel | None = None,
                 max_participation: float | None = None, quote: str = "USDT", timeframe: str | None = None,
                 rules: Mapping[str, MarketRules] | None = None, ppo_model: str | None = None,
                 keep_final_orders_bars: int = 48) -> None:
        if not bars:
            raise DataError("the replay engine needs bars for at least one symbol")
        if not (initial_cash_quote > 0):
            raise DataError(f"initial cash must be > 0 {quote}, got {initial_cash_quote}")
        if max_participation is not None and not 0 < max_participation <= 1:
            raise DataError(f"max_participation must be in (0, 1] of a bar's volume, got {max_participation}")
        self._bars = dict(bars)
        self.timeframe = timeframe or infer_timeframe(next(iter(self._bars.values())).index)
        self.bar = timeframe_delta(self.timeframe)
        self.quote = quote
        self.costs = costs or CostModel()
        self.max_participation = max_participation
        self.panel = MarketPanel.from_bars(self._bars, bar=self.bar)
        idx = self.panel.index
        self._adv = trailing_adv_quote(self.panel.volume, self.panel.close, self.costs.impact_volume_window_bars)
        self._row_of = {s: self._bars[s].index.get_indexer(idx) for s in self.panel.symbols}
        self._col = {s: k for k, s in enumerate(self.panel.symbols)}
        first = idx.searchsorted(to_utc(start, "replay start")) if start is not None else min(1, len(idx) - 1)
        last = idx.searchsorted(to_utc(end, "replay end"), side="right") - 1 if end is not None else len(idx) - 1
        if first >= len(idx) or last < first:
            raise DataError(f"no bars to replay between {start} and {end} (bars cover {idx[0]} .. {idx[-1]})")
        self.first_pos, self.last_pos = int(first), int(last)
        self._i = self.first_pos - 1
        self.cash_quote = float(initial_cash_quote)
        self.initial_cash_quote = float(initial_cash_quote)
        self.positions: dict[str, float] = {s: 0.0 for s in self.panel.symbols}
        self._orders: dict[str, WorkingOrder] = {}
        self._active: dict[str, WorkingOrder] = {}   # not final
        self.keep_final_orders_bars = int(keep_final_orders_bars)
        self._pending_updates: list[OrderUpdate] = []
        self._pending_fills: list[Fill] = []
        self._rules = dict(rules or {})
        self._ppo_model = ppo_model
        self._planner: Any = None
        self.fills_total = 0

    # ------------------------------------------------------------------------------------------ clock and bars
    async def start(self) -> None:
        """Nothing to connect; the replay is ready at construction."""

    async def close(self) -> None:
        """Nothing to release."""

    @property
    def position_index(self) -> int:
        """Row (in the union bar index) of the last bar handed out (``first_pos - 1`` before the first)."""
        return self._i

    @property
    def remaining_bars(self) -> int:
        return self.last_pos - self._i

    def now(self) -> pd.Timestamp:
        """Close of the last bar handed out (before the first: the close of the last warm-up bar)."""
        if self._i < 0:
            return self.panel.index[0]
        return self.panel.index[self._i] + self.bar

    async def history(self, symbols: Sequence[str], n_bars: int) -> dict[str, pd.DataFrame]:
        """The last ``n_bars`` closed bars of each symbol (bars labelled at or before the last bar handed out)."""
        self._check_symbols(symbols, "the replay's history")
        out: dict[str, pd.DataFrame] = {}
        if self._i < 0:
            return {s: self._bars[s].iloc[:0] for s in symbols}
        t = self.panel.index[self._i]
        for s in symbols:
            df = self._bars[s]
            end = int(df.index.searchsorted(t, side="right"))
            out[s] = df.iloc[max(0, end - int(n_bars)):end]
        return out

    async def next_bars(self) -> dict[str, pd.DataFrame] | None:
        """Work open orders over the next bar (fills at its open), then return it; ``None`` when the replay is over."""
        if self._i >= self.last_pos:
            return None
        self._i += 1
        i = self._i
        t = self.panel.index[i]
        if self._active:
            self._work(list(self._active.values()), i, t)
            self._active = {c: w for c, w in self._active.items() if not w.state.is_final}
        if i % 16 == 0:
            self._prune(t)
        out: dict[str, pd.DataFrame] = {}
        for s in self.panel.symbols:
            r = self._row_of[s][i]
            if r >= 0:
                out[s] = self._bars[s].iloc[r:r + 1]
        return out

    def _prune(self, t: pd.Timestamp) -> None:
        """Forget final orders last updated more than ``keep_final_orders_bars`` bars before ``t``."""
        horizon = t - self.keep_final_orders_bars * self.bar
        old = [c for c, w in self._orders.items() if c not in self._active and w.last_ts is not None
               and w.last_ts < horizon]
        for c in old:
            del self._orders[c]

    def _work(self, orders: list[WorkingOrder], i: int, t: pd.Timestamp) -> None:
        quotes: dict[str, BarQuote] = {}
        adv: dict[str, float] = {}
        for w in orders:
            s = w.request.symbol
            if s in quotes:
                continue
            k = self._col[s]
            quotes[s] = BarQuote(float(self.panel.open[i, k]), float(self.panel.volume[i, k]))
            adv[s] = float(self._adv[i - 1, k]) if i > 0 else 0.0
        updates, fills = simulate_fills(orders, t, quotes, adv, self.costs, self.max_participation)
        for f in fills:
            self.cash_quote += cash_change(f)
            self.positions[f.symbol] = self.positions.get(f.symbol, 0.0) + f.side.sign * f.qty
        self.fills_total += len(fills)
        self._pending_updates.extend(updates)
        self._pending_fills.extend(fills)

    # ------------------------------------------------------------------------------------------ venue
    async def market_rules(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        """Per-symbol rules: those given at construction, else the cost model's minimum notional."""
        self._check_symbols(symbols, "the replay's markets")
        return {s: self._rules.get(s, MarketRules(s, min_notional_quote=self.costs.min_order_notional))
                for s in symbols}

    async def account(self) -> AccountSnapshot:
        return AccountSnapshot(self.cash_quote, {s: q for s, q in self.positions.items() if q != 0.0}, self.now())

    def last_prices(self) -> dict[str, float]:
        """Last close of every symbol at the engine clock (carried over gaps; NaN before its first bar)."""
        if self._i < 0:
            return {}
        col = self.panel.close[: self._i + 1]
        out = {}
        for s, k in self._col.items():
            v = col[:, k]
            ok = np.flatnonzero(np.isfinite(v))
            if len(ok):
                out[s] = float(v[ok[-1]])
        return out

    async def submit(self, orders: Sequence[OrderRequest]) -> list[OrderUpdate]:
        """Accept orders (idempotent per client order id); they fill on the bars after their decision."""
        out: list[OrderUpdate] = []
        now = self.now()
        for o in orders:
            known = self._orders.get(o.client_order_id)
            if known is not None:
                out.append(known.update())
                continue
            reason = ""
            if o.symbol not in self._col:
                reason = f"unknown symbol {o.symbol} (replayed: {', '.join(self.panel.symbols[:12])})"
            elif o.decided_utc > now:
                reason = f"decided at {o.decided_utc}, after the engine clock {now}"
            elif o.side.sign < 0 and o.qty > self._sellable(o.symbol) * (1 + 1e-9) + 1e-12:
                reason = (f"sell of {o.qty:.10g} {o.symbol} exceeds the free position {self._sellable(o.symbol):.10g} "
                          "(spot: no short selling)")
            w = open_working_order(o, reason, self._planner_for, now, "replay")
            if w.state is not OrderState.REJECTED:
                self._active[o.client_order_id] = w
            self._orders[o.client_order_id] = w
            out.append(w.update(now))
        return out

    def _sellable(self, symbol: str) -> float:
        """Position minus what open sell orders still have to sell."""
        held = self.positions.get(symbol, 0.0)
        pending = sum(w.remaining_qty for w in self._active.values()
                      if w.request.symbol == symbol and w.request.side.sign < 0)
        return held - pending

    def _planner_for(self, order: OrderRequest) -> Any:
        if order.execution.upper() in ("MARKET", "TWAP"):
            return None
        if self._planner is None:
            from graphwiz_trader.execution.engine import create_optimal_execution_engine

            self._planner = create_optimal_execution_engine(self._bars, timeframe=self.timeframe,
                                                            ppo_model=self._ppo_model)
        return self._planner

    async def open_orders(self) -> list[OrderUpdate]:
        return [w.update() for w in self._active.values()]

    async def order_status(self, client_order_ids: Sequence[str]) -> list[OrderUpdate]:
        """Updates of the orders the venue knows among ``client_order_ids`` (unknown ids are left out)."""
        return [self._orders[c].update() for c in client_order_ids if c in self._orders]

    async def poll_updates(self) -> tuple[list[OrderUpdate], list[Fill]]:
        """Order updates and fills since the previous call."""
        ups, fills = self._pending_updates, self._pending_fills
        self._pending_updates, self._pending_fills = [], []
        return ups, fills

    async def cancel_all(self, symbols: Sequence[str] | None = None) -> list[OrderUpdate]:
        """Cancel every open order (of ``symbols``); what already filled stays filled."""
        out = []
        for c, w in list(self._active.items()):
            if symbols is not None and w.request.symbol not in symbols:
                continue
            w.state, w.reason = OrderState.CANCELED, "canceled by request"
            w.last_ts = self.now()
            out.append(w.update(self.now()))
            del self._active[c]
        self._pending_updates.extend(out)
        return out

    # ------------------------------------------------------------------------------------------ helpers
    def _check_symbols(self, symbols: Sequence[str], where: str) -> None:
        missing = [s for s in symbols if s not in self._col]
        if missing:
            raise UnknownSymbolError(missing, where, list(self.panel.symbols))

    def equity_quote(self) -> float:
        """Cash plus positions marked at the last closes."""
        prices = self.last_prices()
        return self.cash_quote + sum(q * prices[s] for s, q in self.positions.items() if q)
