"""What a strategy keeps and records: its open-order book and entry prices, the journal writes of a cycle (in
batches, one transaction each), and the mirror of journaled signals and fills into the graph store.

:class:`StrategyRecords` is the part of :class:`~graphwiz_trader.strategies.core.Strategy` that does this; it
reads the strategy's ``journal``, ``mirror``, ``graph``, ``scores``, ``run_id``, ``bar`` (bar length),
``orders`` (client order id -> [request, filled qty]), ``_pos`` and ``entry_price`` (quote per unit).
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.trading.types import AccountSnapshot, Fill, OrderRequest, OrderUpdate

log = logging.getLogger("graphwiz_trader.strategies.core")

__all__ = ["StrategyRecords", "jsonable", "rounded"]


class StrategyRecords:
    """Journal writes, the order book and the graph mirror of a strategy (see the module docstring)."""

    journal: Any
    mirror: Any
    graph: Any
    scores: Any
    run_id: str
    bar: pd.Timedelta
    orders: dict[str, list[Any]]
    entry_price: dict[str, float]
    _pos: dict[str, float]
    _unmirrored: list[int]
    _mirrored_builds: int
    _mirror_since: Any

    def _mirror(self, final: bool) -> None:
        """Mirror the cycles not yet mirrored (their signals and fills) into the graph store, in one batch, once the
        live graph has written the snapshot build whose regime records cover their fills (or at the end)."""
        if self.mirror is None or self.journal is None or not self._unmirrored:
            return
        builds = len(self.graph.build_ids) if self.graph is not None else 0
        if not final and self.graph is not None and builds == self._mirrored_builds:
            return
        from graphwiz_trader.graph.store import SIGNAL_COLUMNS, TRADE_COLUMNS
        from graphwiz_trader.trading.graph_mirror import journal_signals

        build = self.mirror.build() if callable(self.mirror.build) else self.mirror.build
        # fills recorded since the last batch (by the journal's clock, a second of overlap: MERGE makes repeats
        # no-ops), late TWAP fills of earlier orders included; the signals of the cycles not yet mirrored
        fills = self.journal.fills_frame(self.run_id, recorded_since=self._mirror_since)
        if len(fills):
            self.mirror.store.write_trades(fills.rename(columns={"ts_utc": "ts"})[TRADE_COLUMNS], run=self.run_id,
                                           build=build, regime_scope=self.mirror.regime_scope,
                                           batch_size=self.mirror.batch_size)
            self._mirror_since = fills["recorded_utc"].max() - pd.Timedelta(seconds=1)
        sig = journal_signals(self.journal, self.run_id, from_cycle=min(self._unmirrored))
        sig = sig[sig["cycle"].isin(self._unmirrored)]
        if len(sig):
            self.mirror.store.write_signals(sig[SIGNAL_COLUMNS].reset_index(drop=True), run=self.run_id,
                                            batch_size=self.mirror.batch_size)
        self._unmirrored.clear()
        self._mirrored_builds = builds

    def _record_cycle_end(self, cycle: int, t: pd.Timestamp, d: dict[str, Any], weights: pd.Series,
                          account: AccountSnapshot, prices: dict[str, float], equity: float, gross: float, dd: float,
                          summary: dict[str, Any], timings: dict[str, float]) -> None:
        """Signals, model version, equity, positions and the cycle's end, journaled (inside the caller's batch)."""
        j = self.journal
        assert j is not None
        j.record_signals(self.run_id, cycle, t, d["raw"], weights if len(weights) else None,
                         getattr(self.scores, "version", None))
        if d.get("retrained"):
            j.record_model_version(self.run_id, d["retrained"]["version"], jsonable(d["retrained"]))
        j.record_equity(self.run_id, t + self.bar, equity, account.cash_quote, gross / equity if equity else 0.0, dd)
        j.record_positions(self.run_id, t + self.bar, dict(account.positions),
                           {s: prices[s] for s in account.positions if s in prices})
        j.finish_cycle(self.run_id, cycle, "ok" if summary["status"] == "ok" else "skipped", jsonable(summary),
                       rounded(timings))

    def _batch(self, operation: str) -> AbstractContextManager[Any]:
        """One journal transaction for the block (nothing when there is no journal)."""
        return self.journal.batch(operation) if self.journal is not None else nullcontext()

    def _apply(self, updates: list[OrderUpdate], fills: list[Fill]) -> None:
        """Journal order updates and fills, and keep the open-order book and entry prices."""
        if self.journal is not None:
            if fills:
                self.journal.record_fills(fills)
            if updates:
                self.journal.record_updates(updates)
        for f in fills:
            entry = self.orders.get(f.client_order_id)
            if entry is not None:
                entry[1] += f.qty
            self._entry(f)
        for u in updates:
            if u.state.is_final:
                self.orders.pop(u.client_order_id, None)

    def _entry(self, f: Fill) -> None:
        """Average entry price of the position (quote per unit); reset when the position closes or flips."""
        pos = self._pos
        q0 = pos.get(f.symbol, 0.0)
        q1 = q0 + f.side.sign * f.qty
        if q0 == 0 or np.sign(q0) != np.sign(q1) and q1 != 0:
            self.entry_price[f.symbol] = f.price
        elif abs(q1) > abs(q0):
            self.entry_price[f.symbol] = (self.entry_price.get(f.symbol, f.price) * abs(q0) + f.price * f.qty) / abs(q1)
        if abs(q1) <= 1e-12:
            self.entry_price.pop(f.symbol, None)
        pos[f.symbol] = q1

    def _pending(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for req, filled in self.orders.values():
            out[req.symbol] = out.get(req.symbol, 0.0) + req.side.sign * max(req.qty - filled, 0.0)
        return out

    def _pending_buys_quote(self, prices: dict[str, float]) -> float:
        """Quote still committed to open buy orders (at the last closes)."""
        return sum(max(req.qty - filled, 0.0) * prices.get(req.symbol, 0.0)
                   for req, filled in self.orders.values() if req.side.sign > 0)

    def _exits(self, account: AccountSnapshot, prices: dict[str, float], cycle: int, t: pd.Timestamp) -> list[OrderRequest]:
        held = {s: q for s, q in account.positions.items() if q}
        if not held:
            return []
        entries = {s: self.entry_price.get(s, prices.get(s)) for s in held}
        return self.risk.exit_orders(held, entries, prices, self.run_id, cycle, t + self.bar)

    def _event(self, cycle: int, t: pd.Timestamp, kind: str, detail: str, action: str) -> None:
        log.warning("cycle %d at %s: %s: %s (%s)", cycle, t, kind, detail, action)
        if self.journal is not None:
            self.journal.record_risk_event(self.run_id, cycle, t + self.bar, kind, detail, action)


def rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in timings.items()}


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (pd.Timestamp, pd.Timedelta)):
        return str(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x
