"""fills: an index on (run_id, recorded_utc), so the fills recorded since a time are read without a scan
(the graph mirror's per-cycle update).

Revision ID: j0002
Revises: j0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "j0002"
down_revision = "j0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fills_run_id_recorded_utc", "fills", ["run_id", "recorded_utc"])


def downgrade() -> None:
    op.drop_index("ix_fills_run_id_recorded_utc", table_name="fills")
