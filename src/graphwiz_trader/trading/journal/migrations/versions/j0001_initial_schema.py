"""The trade journal's first schema: runs, cycles, signals, orders, order updates, fills, positions, equity,
risk events and model versions.

Revision ID: j0001
Revises:
Create Date: 2026-11-29

Times are ``DateTime(timezone=True)`` (``timestamptz`` on PostgreSQL, UTC text on SQLite); the models read
and write them through ``models.UTCDateTime``. Constraint names follow ``models.NAMING``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0001"
down_revision = None
branch_labels = None
depends_on = None

ORDER_STATES = "state IN ('new', 'open', 'partially_filled', 'filled', 'canceled', 'rejected', 'expired')"
SIDES = "side IN ('buy', 'sell')"


def _utc(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=f"fk_{table}_run_id_runs")


def _cycle_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id", "cycle"], ["cycles.run_id", "cycles.cycle"],
                                   name=f"fk_{table}_run_id_cycle_cycles")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("strategy", sa.String(128), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        _utc("started_utc"),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("killed", sa.Boolean(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=False),
        _utc("state_updated_utc", nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_table(
        "cycles",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Integer(), autoincrement=False, nullable=False),
        _utc("as_of"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("started_utc"),
        _utc("finished_utc", nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("timings", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'ok', 'failed', 'skipped')", name="ck_cycles_status"),
        _run_fk("cycles"),
        sa.PrimaryKeyConstraint("run_id", "cycle", name="pk_cycles"),
    )
    op.create_table(
        "signals",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        _utc("as_of"),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("target_weight", sa.Double(), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        _cycle_fk("signals"),
        sa.PrimaryKeyConstraint("run_id", "cycle", "symbol", name="pk_signals"),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("limit_price", sa.Double(), nullable=True),
        sa.Column("leg", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("execution", sa.String(32), nullable=False),
        sa.Column("horizon_bars", sa.Integer(), nullable=False),
        _utc("decided_utc"),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("filled_qty", sa.Double(), nullable=False),
        sa.Column("avg_price", sa.Double(), nullable=True),
        sa.Column("venue_order_id", sa.String(128), nullable=True),
        sa.Column("state_reason", sa.Text(), nullable=False),
        _utc("created_utc"),
        _utc("updated_utc"),
        sa.CheckConstraint(SIDES, name="ck_orders_side"),
        sa.CheckConstraint(ORDER_STATES, name="ck_orders_state"),
        sa.CheckConstraint("qty > 0", name="ck_orders_qty_positive"),
        _cycle_fk("orders"),
        sa.PrimaryKeyConstraint("client_order_id", name="pk_orders"),
    )
    op.create_index("ix_orders_run_id_state", "orders", ["run_id", "state"])
    op.create_table(
        "order_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("filled_qty", sa.Double(), nullable=False),
        sa.Column("avg_price", sa.Double(), nullable=True),
        sa.Column("venue_order_id", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        _utc("ts_utc", nullable=True),
        _utc("recorded_utc"),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.CheckConstraint(ORDER_STATES, name="ck_order_updates_state"),
        sa.ForeignKeyConstraint(["client_order_id"], ["orders.client_order_id"],
                                name="fk_order_updates_client_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_updates"),
        sa.UniqueConstraint("client_order_id", "state", "filled_qty",
                            name="uq_order_updates_client_order_id_state_filled_qty"),
    )
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.String(200), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("fee_quote", sa.Double(), nullable=False),
        sa.Column("spread_slippage_quote", sa.Double(), nullable=False),
        sa.Column("impact_quote", sa.Double(), nullable=False),
        _utc("ts_utc"),
        _utc("recorded_utc"),
        sa.CheckConstraint(SIDES, name="ck_fills_side"),
        sa.CheckConstraint("qty > 0", name="ck_fills_qty_positive"),
        sa.ForeignKeyConstraint(["client_order_id"], ["orders.client_order_id"],
                                name="fk_fills_client_order_id_orders"),
        _run_fk("fills"),
        sa.PrimaryKeyConstraint("fill_id", name="pk_fills"),
    )
    op.create_index("ix_fills_run_id_symbol", "fills", ["run_id", "symbol"])
    op.create_table(
        "positions",
        sa.Column("run_id", sa.String(128), nullable=False),
        _utc("ts_utc"),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("price", sa.Double(), nullable=True),
        sa.Column("value_quote", sa.Double(), nullable=True),
        _run_fk("positions"),
        sa.PrimaryKeyConstraint("run_id", "ts_utc", "symbol", name="pk_positions"),
    )
    op.create_table(
        "equity",
        sa.Column("run_id", sa.String(128), nullable=False),
        _utc("ts_utc"),
        sa.Column("equity_quote", sa.Double(), nullable=False),
        sa.Column("cash_quote", sa.Double(), nullable=False),
        sa.Column("gross_exposure", sa.Double(), nullable=False),
        sa.Column("drawdown", sa.Double(), nullable=False),
        _run_fk("equity"),
        sa.PrimaryKeyConstraint("run_id", "ts_utc", name="pk_equity"),
    )
    op.create_table(
        "risk_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=True),
        _utc("ts_utc"),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        _utc("recorded_utc"),
        _run_fk("risk_events"),
        sa.PrimaryKeyConstraint("id", name="pk_risk_events"),
        sa.UniqueConstraint("event_key", name="uq_risk_events_event_key"),
    )
    op.create_index("ix_risk_events_run_id_ts_utc", "risk_events", ["run_id", "ts_utc"])
    op.create_table(
        "model_versions",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
        _utc("recorded_utc"),
        _run_fk("model_versions"),
        sa.PrimaryKeyConstraint("run_id", "version", name="pk_model_versions"),
    )


def downgrade() -> None:
    for table in ("model_versions", "risk_events", "equity", "positions", "fills", "order_updates", "orders",
                  "signals", "cycles", "runs"):
        op.drop_table(table)
