"""What the journal answers: open orders, positions from fills, the last cycle, a run's state, and its tables
as frames (for status commands, reports and the graph mirror). Each read is one snapshot transaction."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from graphwiz_trader.execution.types import Side
from graphwiz_trader.trading.journal.models import (
    Cycle,
    EquityPoint,
    FillRow,
    ModelVersion,
    OrderRow,
    RiskEvent,
    Run,
    SignalRow,
)
from graphwiz_trader.trading.types import OrderRequest, OrderState

FINAL_STATES = tuple(s.value for s in OrderState if s.is_final)


class JournalReads:
    """Read methods of :class:`~graphwiz_trader.trading.journal.journal.TradeJournal`."""

    url: str

    def _tx(self, operation: str, *, read: bool = False) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # provided by TradeJournal

    def open_orders(self, run_id: str) -> list[tuple[OrderRequest, OrderState]]:
        """The run's orders not in a final state (new, open, partially filled), oldest first."""
        with self._tx(f"open_orders({run_id!r})", read=True) as conn:
            rows = conn.execute(select(OrderRow.__table__).where(OrderRow.run_id == run_id,
                                                                 OrderRow.state.not_in(FINAL_STATES))
                                .order_by(OrderRow.cycle, OrderRow.created_utc, OrderRow.symbol, OrderRow.leg)
                                ).mappings().all()
            return [(order_request(r), OrderState(r["state"])) for r in rows]

    def positions_from_fills(self, run_id: str) -> dict[str, float]:
        """Signed base units per symbol: buys minus sells over every fill of the run (exactly rounded sums)."""
        with self._tx(f"positions_from_fills({run_id!r})", read=True) as conn:
            parts: dict[str, list[float]] = defaultdict(list)
            for sym, side, qty in conn.execute(select(FillRow.symbol, FillRow.side, FillRow.qty)
                                               .where(FillRow.run_id == run_id)):
                parts[sym].append(qty if side == Side.BUY.value else -qty)
            return {sym: math.fsum(q) for sym, q in sorted(parts.items())}

    def last_cycle(self, run_id: str) -> int | None:
        """The highest cycle number begun in the run (whatever its status), or None."""
        with self._tx(f"last_cycle({run_id!r})", read=True) as conn:
            value = conn.execute(select(func.max(Cycle.cycle)).where(Cycle.run_id == run_id)).scalar()
            return None if value is None else int(value)

    def cycle_status(self, run_id: str, cycle: int) -> str | None:
        """``running``, ``ok``, ``failed``, ``skipped``, or None for a cycle never begun."""
        with self._tx(f"cycle_status({run_id!r}, {cycle})", read=True) as conn:
            return conn.execute(select(Cycle.status).where(Cycle.run_id == run_id,
                                                           Cycle.cycle == int(cycle))).scalar()

    def run_state(self, run_id: str) -> dict[str, Any]:
        """``{run_id, strategy, engine, started_utc, paused, killed, reason, updated_utc}``."""
        with self._tx(f"run_state({run_id!r})", read=True) as conn:
            return self._run_state(conn, run_id)

    def _run_state(self, conn: Connection, run_id: str) -> dict[str, Any]:
        from graphwiz_trader.trading.journal.values import InvalidValue

        r = conn.execute(select(Run.__table__).where(Run.run_id == run_id)).mappings().first()
        if r is None:
            runs = list(conn.execute(select(Run.run_id).order_by(Run.started_utc.desc()).limit(8)).scalars())
            raise InvalidValue(f"no run {run_id!r} in the journal; runs there: {', '.join(runs) or 'none'}")
        return {"run_id": r["run_id"], "strategy": r["strategy"], "engine": r["engine"],
                "started_utc": r["started_utc"], "paused": bool(r["paused"]), "killed": bool(r["killed"]),
                "reason": r["state_reason"], "updated_utc": r["state_updated_utc"]}

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, with its state flags and cycle count."""
        with self._tx("runs", read=True) as conn:
            n = (select(Cycle.run_id, func.count().label("cycles"), func.max(Cycle.cycle).label("last_cycle"))
                 .group_by(Cycle.run_id).subquery())
            q = (select(Run.run_id, Run.strategy, Run.engine, Run.started_utc, Run.paused, Run.killed,
                        Run.state_reason, n.c.cycles, n.c.last_cycle)
                 .outerjoin(n, n.c.run_id == Run.run_id).order_by(Run.started_utc.desc()))
            return _frame(conn, q)

    def config(self, run_id: str) -> dict[str, Any]:
        """The config the run was started with."""
        with self._tx(f"config({run_id!r})", read=True) as conn:
            self._run_state(conn, run_id)
            return json.loads(conn.execute(select(Run.config).where(Run.run_id == run_id)).scalar_one())

    def cycles_frame(self, run_id: str) -> pd.DataFrame:
        return self._table(run_id, Cycle, (Cycle.cycle,))

    def signals_frame(self, run_id: str, cycle: int | None = None, from_cycle: int | None = None) -> pd.DataFrame:
        """The run's signals (of one ``cycle``, or of the cycles from ``from_cycle`` on, when given), by cycle and
        symbol."""
        where = (() if cycle is None else (SignalRow.cycle == int(cycle),)) + \
            (() if from_cycle is None else (SignalRow.cycle >= int(from_cycle),))
        return self._table(run_id, SignalRow, (SignalRow.cycle, SignalRow.symbol), where)

    def orders_frame(self, run_id: str) -> pd.DataFrame:
        return self._table(run_id, OrderRow, (OrderRow.cycle, OrderRow.symbol, OrderRow.leg))

    def fills_frame(self, run_id: str, recorded_since: Any = None) -> pd.DataFrame:
        """The run's fills with their order's cycle and reason, oldest first; with ``recorded_since`` (UTC) only
        those recorded at or after it (``recorded_utc`` is the journal's wall clock at recording)."""
        with self._tx(f"fills_frame({run_id!r})", read=True) as conn:
            q = (select(FillRow.__table__, OrderRow.cycle, OrderRow.reason)
                 .join(OrderRow, OrderRow.client_order_id == FillRow.client_order_id)
                 .where(FillRow.run_id == run_id).order_by(FillRow.ts_utc, FillRow.fill_id))
            if recorded_since is not None:
                from graphwiz_trader.trading.journal.values import utc

                q = q.where(FillRow.recorded_utc >= utc(recorded_since, "recorded_since"))
            return _frame(conn, q)

    def equity_frame(self, run_id: str) -> pd.DataFrame:
        return self._table(run_id, EquityPoint, (EquityPoint.ts_utc,))

    def risk_events_frame(self, run_id: str) -> pd.DataFrame:
        return self._table(run_id, RiskEvent, (RiskEvent.ts_utc, RiskEvent.id))

    def model_versions_frame(self, run_id: str) -> pd.DataFrame:
        return self._table(run_id, ModelVersion, (ModelVersion.recorded_utc,))

    def _table(self, run_id: str, model: Any, order: tuple[Any, ...], where: tuple[Any, ...] = ()) -> pd.DataFrame:
        with self._tx(f"read {model.__tablename__} of {run_id!r}", read=True) as conn:
            return _frame(conn, select(model.__table__).where(model.run_id == run_id, *where).order_by(*order))


def order_request(r: Any) -> OrderRequest:
    """The :class:`OrderRequest` of an ``orders`` row (a mapping)."""
    return OrderRequest(client_order_id=r["client_order_id"], run_id=r["run_id"], cycle=int(r["cycle"]),
                        symbol=r["symbol"], side=Side(r["side"]), qty=float(r["qty"]), decided_utc=r["decided_utc"],
                        order_type=r["order_type"], limit_price=r["limit_price"], leg=int(r["leg"]),
                        reason=r["reason"], execution=r["execution"], horizon_bars=int(r["horizon_bars"]))


def _frame(conn: Connection, query: Any) -> pd.DataFrame:
    res = conn.execute(query)
    cols = list(res.keys())
    rows = [tuple(r) for r in res]
    df = pd.DataFrame(rows, columns=cols)
    for c in df.columns:  # times come back as UTC Timestamps; make the column a datetime64[ns, UTC] one
        if len(df) and isinstance(_first(df[c]), pd.Timestamp):
            df[c] = pd.to_datetime(df[c], utc=True)
    return df


def _first(col: pd.Series) -> Any:
    it: Iterator[Any] = (v for v in col if v is not None)
    return next(it, None)
