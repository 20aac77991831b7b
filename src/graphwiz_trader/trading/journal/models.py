"""The trade journal's tables as SQLAlchemy 2 models (the schema the Alembic migrations create).

Units: quantities in base units (``qty``), prices in quote per base unit, money in quote currency
(``*_quote``), weights and drawdowns as fractions. Every time is stored as UTC (:class:`UTCDateTime`):
``timestamptz`` on PostgreSQL, an ISO text without offset on SQLite (always UTC there). JSON payloads
(run config, cycle summary and timings, model info) are stored as sorted JSON text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "Cycle", "EquityPoint", "FillRow", "ModelVersion", "OrderRow", "OrderUpdateRow", "PositionRow",
           "RiskEvent", "Run", "SignalRow", "UTCDateTime", "CYCLE_STATUSES", "ORDER_STATES"]

CYCLE_STATUSES: tuple[str, ...] = ("running", "ok", "failed", "skipped")
ORDER_STATES: tuple[str, ...] = ("new", "open", "partially_filled", "filled", "canceled", "rejected", "expired")

# One name per constraint and index on every backend (Alembic compares and drops them by name).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[pd.Timestamp]):
    """A tz-aware UTC time: bound as an aware ``datetime`` (naive UTC on SQLite), read back as a UTC
    ``pd.Timestamp``. Callers convert and validate first (``journal._utc``); a naive value here is a bug."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            raise ValueError(f"naive time {ts} reached the journal (times are tz-aware UTC)")
        out = ts.tz_convert("UTC").to_pydatetime()
        return out.replace(tzinfo=None) if dialect.name == "sqlite" else out

    def process_result_value(self, value: Any, dialect: Dialect) -> pd.Timestamp | None:
        if value is None:
            return None
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Run(Base):
    """One strategy run (``run_id``): what ran, on which engine, with which config; pause/kill flags."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(128))
    engine: Mapped[str] = mapped_column(String(32))
    config: Mapped[str] = mapped_column(Text)
    started_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    killed: Mapped[bool] = mapped_column(Boolean, default=False)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    state_updated_utc: Mapped[pd.Timestamp | None] = mapped_column(UTCDateTime(), nullable=True)


class Cycle(Base):
    """One decision cycle of a run at bar close ``as_of``; ``status`` running -> ok | failed | skipped."""

    __tablename__ = "cycles"
    __table_args__ = (CheckConstraint(_in("status", CYCLE_STATUSES), name="status"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    as_of: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    finished_utc: Mapped[pd.Timestamp | None] = mapped_column(UTCDateTime(), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings: Mapped[str | None] = mapped_column(Text, nullable=True)


class SignalRow(Base):
    """A cycle's score and target weight per symbol (either may be null when the other is given)."""

    __tablename__ = "signals"
    __table_args__ = (ForeignKeyConstraint(["run_id", "cycle"], ["cycles.run_id", "cycles.cycle"]),)

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    score: Mapped[float | None] = mapped_column(Double, nullable=True)
    target_weight: Mapped[float | None] = mapped_column(Double, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)


class OrderRow(Base):
    """An order, written ahead (state ``new``) before it is submitted; its state follows the venue's updates."""

    __tablename__ = "orders"
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "cycle"], ["cycles.run_id", "cycles.cycle"]),
        CheckConstraint(_in("state", ORDER_STATES), name="state"),
        CheckConstraint(_in("side", ("buy", "sell")), name="side"),
        CheckConstraint("qty > 0", name="qty_positive"),
        Index(None, "run_id", "state"),
    )

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128))
    cycle: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Double)
    order_type: Mapped[str] = mapped_column(String(8))
    limit_price: Mapped[float | None] = mapped_column(Double, nullable=True)
    leg: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    execution: Mapped[str] = mapped_column(String(32))
    horizon_bars: Mapped[int] = mapped_column(Integer)
    decided_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20))
    filled_qty: Mapped[float] = mapped_column(Double, default=0.0)
    avg_price: Mapped[float | None] = mapped_column(Double, nullable=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    created_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    updated_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())


class OrderUpdateRow(Base):
    """Every distinct (state, filled qty) the venue reported for an order; ``applied`` says whether it moved
    the order (an update behind the order's state, or after a final state, is kept but not applied)."""

    __tablename__ = "order_updates"
    __table_args__ = (
        UniqueConstraint("client_order_id", "state", "filled_qty"),
        CheckConstraint(_in("state", ORDER_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("orders.client_order_id"))
    state: Mapped[str] = mapped_column(String(20))
    filled_qty: Mapped[float] = mapped_column(Double)
    avg_price: Mapped[float | None] = mapped_column(Double, nullable=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    ts_utc: Mapped[pd.Timestamp | None] = mapped_column(UTCDateTime(), nullable=True)
    recorded_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    applied: Mapped[bool] = mapped_column(Boolean)


class FillRow(Base):
    """One execution, recorded once by ``fill_id``; ``run_id`` and ``symbol`` repeated for queries."""

    __tablename__ = "fills"
    __table_args__ = (
        CheckConstraint(_in("side", ("buy", "sell")), name="side"),
        CheckConstraint("qty > 0", name="qty_positive"),
        Index(None, "run_id", "symbol"),
        Index(None, "run_id", "recorded_utc"),  # incremental reads (the graph mirror), migration j0002
    )

    fill_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("orders.client_order_id"))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Double)
    price: Mapped[float] = mapped_column(Double)
    fee_quote: Mapped[float] = mapped_column(Double)
    spread_slippage_quote: Mapped[float] = mapped_column(Double, default=0.0)
    impact_quote: Mapped[float] = mapped_column(Double, default=0.0)
    ts_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    recorded_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())


class PositionRow(Base):
    """Positions (signed base units) of a run at ``ts_utc``, marked at ``price``."""

    __tablename__ = "positions"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    ts_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime(), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    qty: Mapped[float] = mapped_column(Double)
    price: Mapped[float | None] = mapped_column(Double, nullable=True)
    value_quote: Mapped[float | None] = mapped_column(Double, nullable=True)


class EquityPoint(Base):
    """Equity, cash (quote), gross exposure and drawdown (fractions of equity) of a run at ``ts_utc``."""

    __tablename__ = "equity"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    ts_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime(), primary_key=True)
    equity_quote: Mapped[float] = mapped_column(Double)
    cash_quote: Mapped[float] = mapped_column(Double)
    gross_exposure: Mapped[float] = mapped_column(Double)
    drawdown: Mapped[float] = mapped_column(Double)


class RiskEvent(Base):
    """A risk decision with its reason (``kind``, ``detail``, ``action``); ``event_key`` (SHA-256 of run,
    cycle, time, kind, detail, action) makes recording the same decision twice a no-op."""

    __tablename__ = "risk_events"
    __table_args__ = (Index(None, "run_id", "ts_utc"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"))
    cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ts_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    recorded_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())


class ModelVersion(Base):
    """A model version a run used, with what describes it (training window, metrics, path) as JSON text."""

    __tablename__ = "model_versions"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(128), primary_key=True)
    info: Mapped[str] = mapped_column(Text)
    recorded_utc: Mapped[pd.Timestamp] = mapped_column(UTCDateTime())
