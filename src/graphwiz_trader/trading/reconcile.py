"""Reconcile the trade journal with an engine (exchange): orders, fills, positions and cash; report every difference.

:func:`reconcile` is run when an engine starts (the live engine does it in ``start()``; a strategy may call it
for any engine). The venue is the truth for what happened to an order; the journal is brought up to it where
that is safe and every difference is reported, repaired or not:

========================  ==================================================  ==================================
kind                      what differs                                        action
========================  ==================================================  ==================================
``order_state``           a journal-open order's state differs on the venue   the venue's update is journaled
``order_missing``         a journal-open order the venue does not have        ``new`` (never sent): journaled
                                                                              as expired; else reported only
``order_not_in_journal``  an order open on the venue the journal has not      reported only (cancel it or look)
                          open (another process's, manual, or final here)
``fills_missing``         venue fills (trades) of an order not in the         the fills are journaled (once each,
                          journal                                             by fill id)
``position``              venue position - baseline != journal's fill sum     reported only
``cash``                  venue cash != baseline cash + journal fills' cash   reported only (when a baseline
                                                                              cash is given)
========================  ==================================================  ==================================

Each difference is logged (WARNING) and journaled as a risk event of kind ``reconcile`` with its action.
Quantities are base units, cash quote currency.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.trading.types import Fill, OrderState, OrderUpdate, Side

log = logging.getLogger(__name__)

__all__ = ["Difference", "ReconcileReport", "reconcile"]

NEVER_SENT = "not on the venue at reconcile: never sent (the process stopped between journaling and sending it)"


@dataclass(frozen=True)
class Difference:
    """One difference between the journal and the venue, and what reconcile did about it."""

    kind: str
    symbol: str
    client_order_id: str | None
    journal: Any
    exchange: Any
    action: str

    @property
    def repaired(self) -> bool:
        return not self.action.startswith("none")

    def describe(self) -> str:
        who = f"{self.symbol}" + (f" order {self.client_order_id}" if self.client_order_id else "")
        return f"{self.kind}: {who}: journal {self.journal!r}, venue {self.exchange!r} -> {self.action}"


@dataclass
class ReconcileReport:
    """Every difference found, and how many updates and fills were journaled to repair the journal."""

    run_id: str
    ts_utc: pd.Timestamp
    differences: list[Difference] = field(default_factory=list)
    updates_recorded: int = 0
    fills_recorded: int = 0

    @property
    def unresolved(self) -> list[Difference]:
        """Differences reconcile could only report (positions, cash, orders the journal does not expect)."""
        return [d for d in self.differences if not d.repaired]

    @property
    def ok(self) -> bool:
        return not self.unresolved

    def of_kind(self, kind: str) -> list[Difference]:
        return [d for d in self.differences if d.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ts_utc": self.ts_utc.isoformat(), "ok": self.ok,
                "updates_recorded": self.updates_recorded, "fills_recorded": self.fills_recorded,
                "differences": [asdict(d) for d in self.differences]}


def _close(a: float, b: float, abs_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


async def reconcile(engine: Any, journal: Any, run_id: str, *, baseline_positions: Mapping[str, float] | None = None,
                    baseline_cash: float | None = None, qty_tol: float = 1e-9, cash_tol: float = 1e-6,
                    record_events: bool = True) -> ReconcileReport:
    """Compare ``journal`` (run ``run_id``) with ``engine`` and repair what is safe (see the module docstring).

    Parameters
    ----------
    engine : a started :class:`~graphwiz_trader.trading.engines.base.TradingEngine`; ``fills_for(ids)`` and
        ``remember(requests)`` are used when it has them (paper, live).
    journal : a :class:`~graphwiz_trader.trading.journal.TradeJournal` (or anything with its methods).
    baseline_positions : venue positions (base units) when the run started; subtracted before comparing.
    baseline_cash : venue cash (quote) when the run started; cash is compared only when given.
    qty_tol, cash_tol : absolute tolerances (base units, quote) on top of a 1e-9 relative one.
    """
    clock = getattr(engine, "clock", None)
    report = ReconcileReport(run_id, clock() if callable(clock) else pd.Timestamp.now(tz="UTC"))
    journal_open = {req.client_order_id: (req, state) for req, state in journal.open_orders(run_id)}
    if hasattr(engine, "remember"):
        engine.remember([req for req, _ in journal_open.values()])
    venue = {u.client_order_id: u for u in await engine.order_status(list(journal_open))}

    # 1. orders the journal has open
    touched: set[str] = set()
    for cid, (req, jstate) in journal_open.items():
        u = venue.get(cid)
        if u is None:
            if jstate is OrderState.NEW:
                report.updates_recorded += journal.record_updates(
                    [OrderUpdate(cid, req.symbol, OrderState.EXPIRED, 0.0, None, report.ts_utc, None, NEVER_SENT)])
                action = "journal: expired (never sent)"
            else:
                action = "none: the venue no longer knows an order it acknowledged; check it by hand"
            report.differences.append(Difference("order_missing", req.symbol, cid, jstate.value, "absent", action))
            continue
        touched.add(cid)
        changed = journal.record_updates([u])
        report.updates_recorded += changed
        if u.state is not jstate:
            report.differences.append(Difference("order_state", req.symbol, cid, jstate.value,
                                                 f"{u.state.value} (filled {u.filled_qty:g})",
                                                 "journal updated" if changed else "none: the journal refused it"))

    # 2. orders open on the venue that the journal does not have open
    for u in await engine.open_orders():
        if u.client_order_id not in journal_open:
            report.differences.append(Difference("order_not_in_journal", u.symbol, u.client_order_id or None,
                                                 "not open", f"{u.state.value} (filled {u.filled_qty:g})",
                                                 "none: an order the journal does not expect; cancel it or look"))

    # 3. fills: of the orders above, and of journaled orders whose fills fall short of their filled qty
    short = _short_of_fills(journal, run_id)
    if short and hasattr(engine, "remember"):
        engine.remember(sorted(short.items()))
    candidates = set(touched) | set(short)
    if candidates and hasattr(engine, "fills_for"):
        fills: list[Fill] = await engine.fills_for(sorted(candidates))
        by_order: dict[str, list[Fill]] = {}
        for f in fills:
            by_order.setdefault(f.client_order_id, []).append(f)
        for cid, fs in sorted(by_order.items()):
            new = journal.record_fills(fs)
            report.fills_recorded += new
            if new:
                report.differences.append(Difference("fills_missing", fs[0].symbol, cid, len(fs) - new, len(fs),
                                                     f"recorded {new} fill(s)"))

    # 4. positions and cash
    account = await engine.account()
    base = dict(baseline_positions or {})
    jpos = journal.positions_from_fills(run_id)
    for sym in sorted(set(jpos) | set(account.positions) | set(base)):
        venue_pos = float(account.positions.get(sym, 0.0)) - float(base.get(sym, 0.0))
        jq = float(jpos.get(sym, 0.0))
        if not _close(jq, venue_pos, qty_tol):
            report.differences.append(Difference("position", sym, None, jq, venue_pos,
                                                 "none: positions differ after journaling the venue's fills"))
    if baseline_cash is not None:
        expected = _cash_from_fills(journal, run_id)
        if expected is not None and not _close(baseline_cash + expected, account.cash_quote, cash_tol):
            report.differences.append(Difference("cash", getattr(engine, "quote", "quote"), None,
                                                 baseline_cash + expected, account.cash_quote,
                                                 "none: cash differs from the baseline plus the journal's fills"))
    _report(journal, run_id, report, record_events)
    return report


def _short_of_fills(journal: Any, run_id: str) -> dict[str, str]:
    """Journaled orders (client id -> symbol) whose filled qty exceeds the sum of their journaled fills (needs
    the journal's frame reads)."""
    if not (hasattr(journal, "orders_frame") and hasattr(journal, "fills_frame")):
        return {}
    orders = journal.orders_frame(run_id)
    if orders is None or not len(orders):
        return {}
    fills = journal.fills_frame(run_id)
    got = fills.groupby("client_order_id")["qty"].sum() if len(fills) else pd.Series(dtype=float)
    out = {}
    for cid, sym, filled in zip(orders["client_order_id"], orders["symbol"], orders["filled_qty"]):
        if float(filled or 0.0) > float(got.get(cid, 0.0)) * (1 + 1e-9) + 1e-12:
            out[str(cid)] = str(sym)
    return out


def _cash_from_fills(journal: Any, run_id: str) -> float | None:
    """Cash the journal's fills moved: ``sum(-side x qty x price - fee - spread/slippage - impact)``."""
    if not hasattr(journal, "fills_frame"):
        return None
    f = journal.fills_frame(run_id)
    if not len(f):
        return 0.0
    sign = f["side"].map({Side.BUY.value: 1.0, Side.SELL.value: -1.0}).astype(float)
    costs = f["fee_quote"] + f.get("spread_slippage_quote", 0.0) + f.get("impact_quote", 0.0)
    return float(math.fsum(-sign * f["qty"] * f["price"] - costs))


def _report(journal: Any, run_id: str, report: ReconcileReport, record_events: bool) -> None:
    if not report.differences:
        log.info("reconcile %s: journal and venue agree", run_id)
        return
    if record_events and hasattr(journal, "run_state"):
        try:
            journal.run_state(run_id)
        except GraphwizError:  # the run is not journaled yet (a first start): the log has the differences
            record_events = False
    cycle = journal.last_cycle(run_id) if hasattr(journal, "last_cycle") else None
    for d in report.differences:
        log.warning("reconcile %s: %s", run_id, d.describe())
        if record_events:
            journal.record_risk_event(run_id, cycle, report.ts_utc, "reconcile", d.describe(), d.action)
