"""Simulated fills on the bars AFTER the decision, with the backtester's cost model (shared by replay and paper).

An order decided at a bar's close (``OrderRequest.decided_utc``) is worked over the ``horizon_bars`` bars that
open at or after that time, never at the decision bar's close. Per working order and per new bar ``i``
(:func:`simulate_fills`):

1. The schedule (:func:`schedule_fractions`) gives the cumulative fraction of the parent due by the end of this
   slot: MARKET is one slot (the next bar's open), TWAP equal slices, VWAP / Almgren-Chriss / PPO the child
   quantities of :meth:`graphwiz_trader.execution.engine.ExecutionEngine.create_execution_plan` made with the
   bars closed at the decision (PPO: its open-loop preview). The child is ``due - filled`` (what an earlier
   slot could not fill rolls into the next one).
2. The bar must be tradable: an open price, volume > 0 and, when impact is on, a trailing ADV > 0 (the
   backtester's rule); otherwise nothing fills in this slot.
3. Participation cap: the child is cut to ``max_participation x volume_i`` (base units): a partial fill.
4. A child below ``costs.min_order_notional`` (quote) is not sent; it rolls into the next slot.
5. The fill is at the bar's open price ``O_i`` (the unaffected price, as in :mod:`graphwiz_trader.backtest.engine`);
   its costs (quote) are charged on top, exactly the backtester's::

       fee_quote             = n * fee_bps / 1e4                           n = qty * O_i (notional, quote)
       spread_slippage_quote = n * (half_spread_bps + slippage_bps) / 1e4
       impact_quote          = impact_coef_bps / 1e4 * n * sqrt(n / ADV)   ADV: mean quote volume per bar over the
                                                                           impact window ending at the bar BEFORE i

   so cash changes by ``-side * n - fee - spread_slippage - impact`` (:func:`cash_change`).
6. After the last slot the order is FILLED, or EXPIRED with what it filled (partial) and the reason.

Quantities are base units, prices quote per base unit, money quote currency, times tz-aware UTC.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.errors import ConfigError, GraphwizError
from graphwiz_trader.execution.schedules import twap_fractions
from graphwiz_trader.trading.types import (
    Fill,
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
    fill_id,
)

log = logging.getLogger(__name__)

__all__ = ["BarQuote", "FillSimulationError", "WorkingOrder", "cash_change", "schedule_fractions",
           "simulate_fills", "trailing_adv_quote"]

_DONE_RTOL = 1e-12
SCHEDULED = ("MARKET", "TWAP", "VWAP", "ALMGREN_CHRISS", "PPO")


class FillSimulationError(GraphwizError):
    """An order cannot be simulated: fills asked for before its decision time, an unknown execution, no planner."""


@dataclass(frozen=True)
class BarQuote:
    """The fill bar of one symbol: ``open`` (quote per base unit) and ``volume`` (base units)."""

    open: float
    volume: float


@dataclass
class WorkingOrder:
    """An accepted order being worked: its request, schedule and what has filled so far.

    Attributes
    ----------
    fractions : the parent's fraction due in each slot of the horizon (sums to 1).
    filled_qty : base units filled; ``notional_quote``: their value at the fill prices.
    slots_used : slots (bars at or after the decision) that have passed.
    """

    request: OrderRequest
    fractions: np.ndarray
    filled_qty: float = 0.0
    notional_quote: float = 0.0
    slots_used: int = 0
    state: OrderState = OrderState.OPEN
    reason: str = ""
    fills: int = 0
    last_ts: pd.Timestamp | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining_qty(self) -> float:
        return max(self.request.qty - self.filled_qty, 0.0)

    @property
    def avg_price(self) -> float | None:
        return self.notional_quote / self.filled_qty if self.filled_qty > 0 else None

    def update(self, ts_utc: pd.Timestamp | None = None) -> OrderUpdate:
        """The order's state as the venue would report it."""
        return OrderUpdate(self.request.client_order_id, self.request.symbol, self.state, self.filled_qty,
                           self.avg_price, ts_utc if ts_utc is not None else self.last_ts, None, self.reason)


def schedule_fractions(request: OrderRequest, planner: Any = None) -> np.ndarray:
    """Fractions of the parent per slot for ``request.execution`` over ``request.horizon_bars``.

    ``planner`` is an :class:`~graphwiz_trader.execution.engine.ExecutionEngine` holding bars closed by the
    decision (needed for VWAP, ALMGREN_CHRISS and PPO; MARKET and TWAP need none). Its plan starts at
    ``request.decided_utc`` (the decision bar's close), so it uses bars closed by then only.

    Raises
    ------
    FillSimulationError
        for an unknown execution name, or VWAP/AC/PPO without a planner.
    """
    ex = request.execution.upper()
    if ex == "MARKET":
        return np.array([1.0])
    if ex == "TWAP":
        return twap_fractions(int(request.horizon_bars))
    if ex not in SCHEDULED:
        raise FillSimulationError(f"order {request.client_order_id}: unknown execution {request.execution!r}; "
                                  f"expected one of {', '.join(SCHEDULED)}")
    if planner is None:
        raise FillSimulationError(f"order {request.client_order_id}: {ex} needs an execution planner "
                                  "(ExecutionEngine over the bars closed at the decision)")
    try:
        plan = planner.create_execution_plan(request.symbol, request.side.value, request.qty, ex,
                                             start=request.decided_utc, horizon=int(request.horizon_bars))
    except ConfigError as exc:
        raise FillSimulationError(f"order {request.client_order_id}: {exc}") from None
    q = np.zeros(int(plan.horizon_bars))
    bar = pd.Timedelta(minutes=plan.bar_minutes)
    for child in plan.children:
        k = int(round((child.time_utc - plan.start_utc) / bar))
        q[min(max(k, 0), len(q) - 1)] += child.quantity_base
    total = q.sum()
    if not (total > 0):
        raise FillSimulationError(f"order {request.client_order_id}: the {ex} plan has no quantity")
    return q / total


def open_working_order(request: OrderRequest, reason: str, planner_for: Callable[[OrderRequest], Any],
                       now: pd.Timestamp, engine: str) -> WorkingOrder:
    """The working order for an accepted ``request`` (its schedule from :func:`schedule_fractions`), or a
    REJECTED one when ``reason`` (the engine's own check) or the schedule says no. Logged by ``engine`` name."""
    fractions = np.array([1.0])
    if not reason:
        try:
            fractions = schedule_fractions(request, planner_for(request))
        except FillSimulationError as exc:
            reason = str(exc)
    w = WorkingOrder(request, fractions, last_ts=now)
    if reason:
        w.state, w.reason = OrderState.REJECTED, reason
        log.info("%s rejected %s: %s", engine, request.client_order_id, reason)
    return w


def trailing_adv_quote(volume: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Mean quote volume per bar over the ``window`` rows ending at each row, as the backtester computes it.

    ``volume`` and ``close`` are ``T x N`` on one bar index (NaN where a symbol has no bar): missing volume
    counts as 0, closes carry forward (0 before the first). Row ``t`` uses rows ``<= t``; a fill at bar ``i``
    reads row ``i - 1``.
    """
    c = pd.DataFrame(close).ffill().to_numpy()
    qv = pd.DataFrame(np.nan_to_num(volume, nan=0.0) * np.nan_to_num(c, nan=0.0))
    return qv.rolling(int(window), min_periods=1).mean().to_numpy()


def cash_change(fill: Fill) -> float:
    """Quote cash a fill moves: ``-side x qty x price - fee - spread_slippage - impact``."""
    return -fill.side.sign * fill.qty * fill.price - fill.fee_quote - fill.spread_slippage_quote - fill.impact_quote


def simulate_fills(working: Sequence[WorkingOrder], ts_utc: pd.Timestamp, bars: Mapping[str, BarQuote],
                   adv_quote: Mapping[str, float], costs: CostModel,
                   max_participation: float | None = None) -> tuple[list[OrderUpdate], list[Fill]]:
    """Work every open order over one new bar (see the module docstring); mutates ``working`` in place.

    Parameters
    ----------
    working : orders not yet final; each must be decided at or before ``ts_utc`` (the bar's open).
    ts_utc : the new bar's open time (UTC).
    bars : symbol -> the new bar's open and volume; a symbol absent here has no bar (nothing fills).
    adv_quote : symbol -> mean quote volume per bar over ``costs.impact_volume_window_bars`` bars ending at
        the previous bar (known before this bar opens).
    costs : the backtester's :class:`~graphwiz_trader.backtest.settings.CostModel`.
    max_participation : cap on one child, as a fraction of the bar's volume (None: no cap).

    Returns
    -------
    (updates, fills) : one update per order whose state or fill changed, the fills in order.

    Raises
    ------
    FillSimulationError
        when an order was decided after ``ts_utc`` (a fill at or before its decision would be look-ahead).
    """
    fee_rate = costs.fee_bps / 1e4
    ss_rate = (costs.half_spread_bps + costs.slippage_bps) / 1e4
    impact_k = costs.impact_coef_bps / 1e4
    updates: list[OrderUpdate] = []
    fills: list[Fill] = []
    for w in working:
        if w.state.is_final:
            continue
        req = w.request
        if req.decided_utc > ts_utc:
            raise FillSimulationError(f"order {req.client_order_id} decided at {req.decided_utc} cannot fill on the "
                                      f"bar opening at {ts_utc}: fills come from bars after the decision")
        n_slots = len(w.fractions)
        slot = w.slots_used
        w.slots_used += 1
        last = w.slots_used >= n_slots
        due = req.qty * float(np.sum(w.fractions[: slot + 1])) if not last else req.qty
        child = due - w.filled_qty
        q = bars.get(req.symbol)
        adv = float(adv_quote.get(req.symbol, 0.0) or 0.0)
        tradable = (q is not None and math.isfinite(q.open) and q.open > 0 and math.isfinite(q.volume)
                    and q.volume > 0 and (impact_k == 0 or adv > 0))
        changed = False
        if child > _DONE_RTOL * req.qty and tradable:
            assert q is not None
            if max_participation is not None:
                cap = max_participation * q.volume
                if child > cap:
                    child = cap
                    w.reason = f"participation cap {max_participation:g} of bar volume"
            n = child * q.open
            if n >= costs.min_order_notional and child > 0:
                imp = impact_k * n * math.sqrt(n / adv) if impact_k > 0 else 0.0
                w.fills += 1
                fills.append(Fill(fill_id(req.client_order_id, f"{ts_utc:%Y%m%dT%H%M%S}"), req.client_order_id,
                                  req.symbol, req.side, child, q.open, n * fee_rate, ts_utc,
                                  spread_slippage_quote=n * ss_rate, impact_quote=imp))
                w.filled_qty += child
                w.notional_quote += n
                changed = True
            elif last:
                w.reason = f"remaining notional {n:.6g} below the minimum order notional {costs.min_order_notional:g}"
        elif not tradable and last and w.remaining_qty > _DONE_RTOL * req.qty:
            w.reason = w.reason or "no tradable bar (missing bar, zero volume or no volume history) in the horizon"
        if w.remaining_qty <= _DONE_RTOL * req.qty:
            w.state, w.reason, changed = OrderState.FILLED, "", True
        elif last:
            w.state, changed = OrderState.EXPIRED, True
        elif changed:
            w.state = OrderState.PARTIALLY_FILLED
        if changed:
            w.last_ts = ts_utc
            updates.append(w.update(ts_utc))
    return updates, fills


def side_of(delta_qty: float) -> Side:
    """BUY for a positive quantity change, SELL otherwise."""
    return Side.BUY if delta_qty > 0 else Side.SELL
