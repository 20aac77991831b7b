"""The trade journal: every run, cycle, signal, order, order update, fill, position, equity point, risk decision
and model version, one transaction per call.

Write-ahead: ``record_orders`` stores orders (state ``new``) before they are submitted, and the deterministic
client order ids make every re-record a no-op, so a process killed at any point leaves each call's rows all
there or all absent, and the restarted process records the rest without duplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from graphwiz_trader.trading.journal import values as V
from graphwiz_trader.trading.journal.engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    JournalError,
    create_journal_engine,
    db_detail,
    resolve_url,
    transaction,
    upgrade_head,
)
from graphwiz_trader.trading.journal.models import (
    Cycle,
    EquityPoint,
    FillRow,
    ModelVersion,
    OrderRow,
    OrderUpdateRow,
    PositionRow,
    RiskEvent,
    Run,
    SignalRow,
)
from graphwiz_trader.trading.journal.reads import JournalReads
from graphwiz_trader.trading.types import Fill, OrderRequest, OrderState, OrderUpdate

log = logging.getLogger(__name__)

_RANK = {OrderState.NEW: 0, OrderState.OPEN: 1, OrderState.PARTIALLY_FILLED: 2}
_FINAL_RANK = 3
_RUN_FLAGS = ("paused", "killed", "reason")


def _rank(state: OrderState) -> int:
    return _FINAL_RANK if state.is_final else _RANK[state]


class TradeJournal(JournalReads):
    """The journal of one database (SQLite file or PostgreSQL). Open with :meth:`open`; close with :meth:`close`.

    Every method is one transaction and raises :class:`JournalError` (naming the journal without credentials
    and the operation) on bad input or a database failure; a failed call writes nothing. Inside
    :meth:`batch`, the calls of one thread share one transaction (each call a savepoint in it).
    """

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self._engine = engine
        self.url = shown_url
        self._local = threading.local()

    # ------------------------------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url_or_path: str | Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> "TradeJournal":
        """Open (creating if needed) the journal at a path (SQLite, WAL mode) or a database URL, and bring its
        schema to the latest migration (``alembic upgrade head``; a no-op when it is current).

        ``busy_timeout_s``: how long a write waits for another process's write on the same SQLite file (s).
        """
        url, shown = resolve_url(url_or_path)
        engine = create_journal_engine(url, shown, busy_timeout_s)
        try:
            upgrade_head(engine, shown)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, shown)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for ad-hoc reads; write through the methods)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "TradeJournal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TradeJournal({self.url})"

    @contextmanager
    def batch(self, operation: str) -> Iterator["TradeJournal"]:
        """One transaction for every call this thread makes inside the block: one commit, all or nothing.

        A cycle writes a dozen small records; one commit for them instead of one each is what keeps the loop
        fast. Each call inside still writes nothing when it fails (it runs in a savepoint), so a caller may
        catch its :class:`JournalError` and go on. An exception leaving the block rolls the whole batch back.
        A batch inside a batch joins the outer one. Keep exchange calls out of a batch whose records must
        survive their failure.
        """
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self._tx(operation) as conn:
            self._local.conn = conn
            try:
                yield self
            finally:
                self._local.conn = None

    @contextmanager
    def _tx(self, operation: str, *, read: bool = False) -> Iterator[Connection]:
        outer: Connection | None = getattr(self._local, "conn", None)
        try:
            if outer is not None:
                try:
                    with outer.begin_nested():
                        yield outer
                except SQLAlchemyError as exc:
                    raise JournalError(self.url, operation, db_detail(exc)) from None
                return
            with transaction(self._engine, self.url, operation, read=read) as conn:
                yield conn
        except V.InvalidValue as exc:
            raise JournalError(self.url, operation, str(exc)) from None

    def _insert(self, conn: Connection, model: Any) -> Any:
        return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(model)

    # ------------------------------------------------------------------------------------------ runs, cycles
    def start_run(self, run_id: str, strategy: str, engine: str, config: Any, started_utc: Any) -> None:
        """Record a run. Idempotent for the same ``run_id``: starting it again (a restart) keeps the first
        record; a different strategy, engine or config under the same id is refused."""
        op = f"start_run({run_id!r})"
        with self._tx(op) as conn:
            cfg = V.json_text(V.mapping(config, "config"), "config")
            started = V.utc(started_utc, "started_utc")
            row = conn.execute(select(Run.strategy, Run.engine, Run.config).where(Run.run_id == run_id)).first()
            if row is None:
                conn.execute(insert(Run).values(run_id=run_id, strategy=strategy, engine=engine, config=cfg,
                                                started_utc=started, paused=False, killed=False, state_reason=""))
                return
            diff = [n for n, a, b in (("strategy", row.strategy, strategy), ("engine", row.engine, engine),
                                      ("config", row.config, cfg)) if a != b]
            if diff:
                raise V.InvalidValue(f"run {run_id!r} exists with another {', '.join(diff)} (stored strategy "
                                     f"{row.strategy!r}, engine {row.engine!r}); start a new run id")

    def begin_cycle(self, run_id: str, cycle: int, as_of: Any) -> None:
        """Mark cycle ``cycle`` (decision at bar close ``as_of``) as running. Beginning a running, failed or
        skipped cycle again (a retry) counts an attempt; a cycle that finished ``ok`` or another ``as_of`` under
        the same number is refused."""
        op = f"begin_cycle({run_id!r}, {cycle})"
        with self._tx(op) as conn:
            t = V.utc(as_of, "as_of")
            self._require_run(conn, run_id)
            row = conn.execute(select(Cycle.status, Cycle.as_of).where(Cycle.run_id == run_id,
                                                                      Cycle.cycle == int(cycle))).first()
            now = V.now_utc()
            if row is None:
                conn.execute(insert(Cycle).values(run_id=run_id, cycle=int(cycle), as_of=t, status="running",
                                                  attempts=1, started_utc=now))
                return
            if row.as_of != t:
                raise V.InvalidValue(f"cycle {cycle} of run {run_id!r} was begun at as_of {row.as_of}, not {t}")
            if row.status == "ok":
                raise V.InvalidValue(f"cycle {cycle} of run {run_id!r} already finished ok; begin cycle "
                                     f"{self._last_cycle(conn, run_id) + 1} next")
            conn.execute(update(Cycle).where(Cycle.run_id == run_id, Cycle.cycle == int(cycle)).values(
                status="running", attempts=Cycle.attempts + 1, started_utc=now, finished_utc=None))

    def finish_cycle(self, run_id: str, cycle: int, status: str, summary: Mapping[str, Any] | None = None,
                     timings: Mapping[str, Any] | None = None) -> None:
        """Close a cycle with ``status`` ``ok``, ``failed`` or ``skipped``, its summary and timings (s)."""
        op = f"finish_cycle({run_id!r}, {cycle}, {status!r})"
        with self._tx(op) as conn:
            if status not in ("ok", "failed", "skipped"):
                raise V.InvalidValue(f"status must be 'ok', 'failed' or 'skipped', got {status!r}")
            res = conn.execute(update(Cycle).where(Cycle.run_id == run_id, Cycle.cycle == int(cycle)).values(
                status=status, finished_utc=V.now_utc(), summary=V.json_text(V.mapping(summary, "summary"), "summary"),
                timings=V.json_text(V.mapping(timings, "timings"), "timings")))
            if res.rowcount == 0:
                raise V.InvalidValue(f"cycle {cycle} of run {run_id!r} was never begun (begin_cycle first)")

    def set_run_state(self, run_id: str, **flags: Any) -> dict[str, Any]:
        """Set ``paused`` / ``killed`` (bools) and ``reason`` (text) of a run; returns the new run state."""
        op = f"set_run_state({run_id!r})"
        with self._tx(op) as conn:
            unknown = sorted(set(flags) - set(_RUN_FLAGS))
            if unknown:
                raise V.InvalidValue(f"unknown run state flag(s) {unknown}; known: {list(_RUN_FLAGS)}")
            self._require_run(conn, run_id)
            vals: dict[str, Any] = {"state_updated_utc": V.now_utc()}
            for name in ("paused", "killed"):
                if name in flags:
                    if not isinstance(flags[name], bool):
                        raise V.InvalidValue(f"{name} must be True or False, got {flags[name]!r}")
                    vals[name] = flags[name]
            if "reason" in flags:
                vals["state_reason"] = str(flags["reason"])
            conn.execute(update(Run).where(Run.run_id == run_id).values(**vals))
            return self._run_state(conn, run_id)

    # ------------------------------------------------------------------------------------------ signals
    def record_signals(self, run_id: str, cycle: int, as_of: Any, scores: pd.Series | None,
                       target_weights: pd.Series | None, model_version: str | None = None) -> int:
        """Scores and target weights (fractions of equity) per symbol of a cycle; recording the cycle's signals
        again replaces them. NaN is stored as missing. Returns the number of symbols."""
        op = f"record_signals({run_id!r}, {cycle})"
        with self._tx(op) as conn:
            t = V.utc(as_of, "as_of")
            s = V.symbol_series(scores, "scores")
            w = V.symbol_series(target_weights, "target_weights")
            self._require_cycles(conn, {(run_id, int(cycle))})
            symbols = sorted(set(map(str, s.index)) | set(map(str, w.index)))
            rows = [{"run_id": run_id, "cycle": int(cycle), "symbol": sym, "as_of": t,
                     "score": V.optional_float(s.get(sym), f"score of {sym}"),
                     "target_weight": V.optional_float(w.get(sym), f"target weight of {sym}"),
                     "model_version": model_version} for sym in symbols]
            conn.execute(delete(SignalRow).where(SignalRow.run_id == run_id, SignalRow.cycle == int(cycle)))
            if rows:
                conn.execute(insert(SignalRow), rows)
            return len(rows)

    # ------------------------------------------------------------------------------------------ orders
    def record_orders(self, orders: Sequence[OrderRequest]) -> int:
        """Write orders ahead of submitting them (state ``new``), all in one transaction; returns how many were
        new. An order already journaled under its client id is left as it is (a retry); the same id with
        another symbol, side, type, leg, cycle, qty or limit price is refused. Their cycles must be begun."""
        orders = list(orders)
        op = f"record_orders({len(orders)} orders)"
        with self._tx(op) as conn:
            by_id: dict[str, OrderRequest] = {}
            for o in orders:
                prev = by_id.get(o.client_order_id)
                if prev is not None and _order_diff(o, _order_fields(prev)):
                    raise V.InvalidValue(f"order {o.client_order_id} is given twice with different contents")
                by_id[o.client_order_id] = o
            self._require_cycles(conn, {(o.run_id, int(o.cycle)) for o in by_id.values()})
            existing = self._rows_by_id(conn, OrderRow, OrderRow.client_order_id, list(by_id))
            for cid, row in existing.items():
                diff = _order_diff(by_id[cid], row)
                if diff:
                    raise V.InvalidValue(f"order {cid} ({row['symbol']}) is journaled with {diff[0]} {diff[1]!r}; "
                                         f"this request has {diff[2]!r}: a client order id names one order only")
            now = V.now_utc()
            rows = []
            for cid, o in by_id.items():
                if cid in existing:
                    continue
                rows.append({**_order_fields(o), "decided_utc": V.utc(o.decided_utc, f"decided_utc of order {cid}"),
                             "state": OrderState.NEW.value, "filled_qty": 0.0, "avg_price": None,
                             "venue_order_id": None, "state_reason": "", "created_utc": now, "updated_utc": now})
            if rows:
                conn.execute(insert(OrderRow), rows)
            return len(rows)

    def record_updates(self, updates: Sequence[OrderUpdate]) -> int:
        """Apply the venue's order updates in order; returns how many changed an order.

        An order's state only moves forward (new -> open -> partially filled -> a final state) and its filled
        qty never decreases; an update behind the order, or after a final state, is kept in ``order_updates``
        (``applied`` false) and changes nothing. Updates of orders never journaled are refused.
        """
        updates = list(updates)
        op = f"record_updates({len(updates)} updates)"
        with self._tx(op) as conn:
            ids = sorted({u.client_order_id for u in updates})
            current = self._rows_by_id(conn, OrderRow, OrderRow.client_order_id, ids)
            unknown = [i for i in ids if i not in current]
            if unknown:
                raise V.InvalidValue(f"updates for {len(unknown)} order(s) never journaled: {unknown[:5]} "
                                     "(record_orders writes orders before they are submitted)")
            now = V.now_utc()
            history, changed = [], {}
            for u in updates:
                row = changed.get(u.client_order_id) or dict(current[u.client_order_id])
                state = OrderState(u.state)
                filled = V.finite(u.filled_qty, f"filled_qty of {u.client_order_id}", nonnegative=True)
                cur = OrderState(row["state"])
                applies = (not cur.is_final and _rank(state) >= _rank(cur) and filled >= row["filled_qty"])
                history.append({"client_order_id": u.client_order_id, "state": state.value, "filled_qty": filled,
                                "avg_price": V.optional_float(u.avg_price, "avg_price"),
                                "venue_order_id": u.venue_order_id, "reason": u.reason or "",
                                "ts_utc": None if u.ts_utc is None else V.utc(u.ts_utc, "ts_utc"),
                                "recorded_utc": now, "applied": applies})
                if not applies:
                    continue
                new = dict(row, state=state.value, filled_qty=filled, state_reason=u.reason or row["state_reason"])
                if u.avg_price is not None:
                    new["avg_price"] = history[-1]["avg_price"]
                if u.venue_order_id:
                    new["venue_order_id"] = u.venue_order_id
                if new != row or u.client_order_id in changed:
                    changed[u.client_order_id] = new
            if history:
                conn.execute(self._insert(conn, OrderUpdateRow).on_conflict_do_nothing(
                    index_elements=["client_order_id", "state", "filled_qty"]), history)
            if changed:
                t = OrderRow.__table__
                cols = ("state", "filled_qty", "avg_price", "venue_order_id", "state_reason")
                stmt = update(t).where(t.c.client_order_id == bindparam("b_id")).values(
                    {**{c: bindparam(f"b_{c}") for c in cols}, "updated_utc": now})
                conn.execute(stmt, [{"b_id": cid, **{f"b_{c}": new[c] for c in cols}} for cid, new in changed.items()])
            return len(changed)

    # ------------------------------------------------------------------------------------------ fills
    def record_fills(self, fills: Sequence[Fill]) -> int:
        """Record fills once each by ``fill_id`` (all in one transaction); returns how many were new.

        A fill id recorded before with another order, symbol, side, qty or price is refused, as is a fill of an
        order never journaled or whose symbol or side differs from the order's.
        """
        fills = list(fills)
        op = f"record_fills({len(fills)} fills)"
        with self._tx(op) as conn:
            by_id: dict[str, dict[str, Any]] = {}
            for f in fills:
                row = _fill_fields(f)
                prev = by_id.get(f.fill_id)
                if prev is not None and _fill_diff(prev, row):
                    raise V.InvalidValue(f"fill {f.fill_id} is given twice with different contents")
                by_id[f.fill_id] = row
            orders = self._rows_by_id(conn, OrderRow, OrderRow.client_order_id,
                                      sorted({r["client_order_id"] for r in by_id.values()}))
            for fid, r in by_id.items():
                o = orders.get(r["client_order_id"])
                if o is None:
                    raise V.InvalidValue(f"fill {fid} belongs to order {r['client_order_id']}, which was never "
                                         "journaled (record_orders before submitting)")
                if (o["symbol"], o["side"]) != (r["symbol"], r["side"]):
                    raise V.InvalidValue(f"fill {fid} is a {r['side']} of {r['symbol']}; its order "
                                         f"{r['client_order_id']} is a {o['side']} of {o['symbol']}")
                r["run_id"] = o["run_id"]
            existing = self._rows_by_id(conn, FillRow, FillRow.fill_id, list(by_id))
            for fid, old in existing.items():
                diff = _fill_diff(old, by_id[fid])
                if diff:
                    raise V.InvalidValue(f"fill {fid} is journaled with {diff[0]} {diff[1]!r}; this one has "
                                         f"{diff[2]!r}: a fill id names one execution only")
            now = V.now_utc()
            new_rows = [{**r, "recorded_utc": now} for fid, r in by_id.items() if fid not in existing]
            if not new_rows:
                return 0
            stmt = self._insert(conn, FillRow).on_conflict_do_nothing(index_elements=["fill_id"])
            return len(conn.execute(stmt.returning(FillRow.fill_id), new_rows).all())

    # ------------------------------------------------------------------------------------------ portfolio
    def record_equity(self, run_id: str, ts: Any, equity_quote: float, cash_quote: float, gross_exposure: float,
                      drawdown: float) -> None:
        """Equity and cash (quote), gross exposure and drawdown (fractions of equity) at ``ts``; recording the
        same time again replaces the point."""
        op = f"record_equity({run_id!r})"
        with self._tx(op) as conn:
            row = {"run_id": run_id, "ts_utc": V.utc(ts, "ts"),
                   "equity_quote": V.finite(equity_quote, "equity_quote"),
                   "cash_quote": V.finite(cash_quote, "cash_quote"),
                   "gross_exposure": V.finite(gross_exposure, "gross_exposure", nonnegative=True),
                   "drawdown": V.finite(drawdown, "drawdown")}
            self._require_run(conn, run_id)
            stmt = self._insert(conn, EquityPoint)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["run_id", "ts_utc"],
                set_={k: getattr(stmt.excluded, k) for k in ("equity_quote", "cash_quote", "gross_exposure",
                                                             "drawdown")}), row)

    def record_positions(self, run_id: str, ts: Any, positions: Mapping[str, float],
                         prices: Mapping[str, float]) -> int:
        """Positions (signed base units) at ``ts`` marked at ``prices``; replaces the run's positions at ``ts``.
        A symbol without a price is stored without a value (never valued at zero). Returns the row count."""
        op = f"record_positions({run_id!r})"
        with self._tx(op) as conn:
            t = V.utc(ts, "ts")
            rows = []
            for sym in sorted(positions):
                qty = V.finite(positions[sym], f"position of {sym}")
                price = V.optional_float(prices.get(sym), f"price of {sym}")
                rows.append({"run_id": run_id, "ts_utc": t, "symbol": sym, "qty": qty, "price": price,
                             "value_quote": None if price is None else qty * price})
            self._require_run(conn, run_id)
            conn.execute(delete(PositionRow).where(PositionRow.run_id == run_id, PositionRow.ts_utc == t))
            if rows:
                conn.execute(insert(PositionRow), rows)
            return len(rows)

    def record_risk_event(self, run_id: str, cycle: int | None, ts: Any, kind: str, detail: str,
                          action: str) -> bool:
        """A risk decision with its reason (``kind``: what was checked, ``detail``: why, with the numbers;
        ``action``: what was done). The same decision recorded twice is kept once; returns True if new."""
        op = f"record_risk_event({run_id!r}, {kind!r})"
        with self._tx(op) as conn:
            t = V.utc(ts, "ts")
            c = None if cycle is None else int(cycle)
            self._require_run(conn, run_id)
            stmt = self._insert(conn, RiskEvent).on_conflict_do_nothing(index_elements=["event_key"])
            res = conn.execute(stmt.returning(RiskEvent.id), {
                "event_key": V.event_key(run_id, c, t, kind, detail, action), "run_id": run_id, "cycle": c,
                "ts_utc": t, "kind": kind, "detail": detail, "action": action, "recorded_utc": V.now_utc()})
            return len(res.all()) == 1

    def record_model_version(self, run_id: str, version: str, info: Mapping[str, Any] | None = None) -> None:
        """A model version the run uses and what describes it (JSON); recording it again updates ``info``."""
        op = f"record_model_version({run_id!r}, {version!r})"
        with self._tx(op) as conn:
            text_info = V.json_text(V.mapping(info, "info"), "info")
            self._require_run(conn, run_id)
            stmt = self._insert(conn, ModelVersion)
            conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "version"],
                                                    set_={"info": stmt.excluded.info}),
                         {"run_id": run_id, "version": version, "info": text_info, "recorded_utc": V.now_utc()})

    # ------------------------------------------------------------------------------------------ helpers
    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.execute(select(Run.run_id).where(Run.run_id == run_id)).first() is None:
            raise V.InvalidValue(f"run {run_id!r} was never started (start_run first)")

    def _require_cycles(self, conn: Connection, pairs: set[tuple[str, int]]) -> None:
        for run_id in sorted({r for r, _ in pairs}):
            wanted = sorted(c for r, c in pairs if r == run_id)
            have: set[int] = set()
            for part in V.chunks(wanted):
                have |= set(conn.execute(select(Cycle.cycle).where(Cycle.run_id == run_id,
                                                                   Cycle.cycle.in_(part))).scalars())
            missing = [c for c in wanted if c not in have]
            if missing:
                raise V.InvalidValue(f"cycle(s) {missing[:5]} of run {run_id!r} were never begun (begin_cycle first)")

    @staticmethod
    def _rows_by_id(conn: Connection, model: Any, key: Any, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for part in V.chunks(list(ids)):
            for row in conn.execute(select(model.__table__).where(key.in_(part))).mappings():
                out[row[key.key]] = dict(row)
        return out

    @staticmethod
    def _last_cycle(conn: Connection, run_id: str) -> int:
        return int(conn.execute(select(func.max(Cycle.cycle)).where(Cycle.run_id == run_id)).scalar() or 0)


def _order_fields(o: OrderRequest) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "run_id": o.run_id, "cycle": int(o.cycle), "symbol": o.symbol,
            "side": o.side.value, "qty": V.finite(o.qty, f"qty of order {o.client_order_id}", positive=True),
            "order_type": o.order_type, "limit_price": V.optional_float(o.limit_price, "limit_price"),
            "leg": int(o.leg), "reason": o.reason, "execution": o.execution, "horizon_bars": int(o.horizon_bars)}


def _order_diff(o: OrderRequest, row: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    new = _order_fields(o)
    for name in ("run_id", "cycle", "symbol", "side", "order_type", "leg"):
        if row[name] != new[name]:
            return name, row[name], new[name]
    for name in ("qty", "limit_price"):
        if not V.same_float(row[name], new[name]):
            return name, row[name], new[name]
    return None


def _fill_fields(f: Fill) -> dict[str, Any]:
    what = f"fill {f.fill_id}"
    return {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "symbol": f.symbol, "side": f.side.value,
            "qty": V.finite(f.qty, f"qty of {what}", positive=True),
            "price": V.finite(f.price, f"price of {what}", positive=True),
            "fee_quote": V.finite(f.fee_quote, f"fee_quote of {what}"),
            "spread_slippage_quote": V.finite(f.spread_slippage_quote, f"spread_slippage_quote of {what}"),
            "impact_quote": V.finite(f.impact_quote, f"impact_quote of {what}"),
            "ts_utc": V.utc(f.ts_utc, f"ts_utc of {what}")}


def _fill_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    for name in ("client_order_id", "symbol", "side"):
        if old[name] != new[name]:
            return name, old[name], new[name]
    for name in ("qty", "price"):
        if not V.same_float(old[name], new[name]):
            return name, old[name], new[name]
    return None
