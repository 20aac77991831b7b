"""Alembic environment of the trade journal: runs on the connection ``engine.upgrade_head`` passes in.

Imported by Alembic only (``alembic.context`` is set up by it); importing it elsewhere does nothing.
"""

from __future__ import annotations

from alembic import context

from graphwiz_trader.trading.journal.models import Base


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the journal's migrations run through TradeJournal.open (engine.upgrade_head), "
                           "which passes its connection in; there is no alembic.ini")
    # SQLite DDL is transactional here: the journal opens its transactions itself (BEGIN IMMEDIATE), so the
    # whole upgrade is one transaction on both backends.
    context.configure(connection=connection, target_metadata=Base.metadata, transactional_ddl=True,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # inside an Alembic run
    run_migrations_online()
