"""The journal's schema comes from its Alembic migrations: they create exactly the models' tables, opening again
changes nothing, and two processes opening or writing one SQLite file at once both succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, event, inspect

from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.journal.engine import current_revision, head_revision
from graphwiz_trader.trading.journal.models import Base

EXPECTED_TABLES = {"runs", "cycles", "signals", "orders", "order_updates", "fills", "positions", "equity",
                   "risk_events", "model_versions"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "journal.sqlite")
    if not os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is not set (the PostgreSQL journal tests run against it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    return os.environ["DATABASE_URL"]


def test_the_migrations_create_exactly_the_models_schema(url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with TradeJournal.open(url) as j, j.engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "j0002"
        tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
        assert tables == EXPECTED_TABLES == set(Base.metadata.tables)
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_the_comparison_would_see_a_column_the_migrations_lack(tmp_path):
    """The schema check can fail: a column only in the models shows up as a difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import Column, MetaData, String

    with TradeJournal.open(tmp_path / "j.sqlite") as j, j.engine.connect() as conn:
        md = MetaData()
        for t in Base.metadata.tables.values():
            t.to_metadata(md)
        md.tables["fills"].append_column(Column("venue", String(32)))
        diff = compare_metadata(MigrationContext.configure(conn), md)
        assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "fills", "venue")]


def test_opening_an_existing_journal_again_runs_no_ddl_and_keeps_its_rows(url):
    j = TradeJournal.open(url)
    run = f"again-{os.getpid()}-{id(j)}"
    j.start_run(run, "s", "replay", {}, pd.Timestamp("2024-01-01", tz="UTC"))
    j.close()
    statements: list[str] = []

    def spy(conn, cursor, statement, *args):  # every statement any engine sends
        statements.append(statement.strip().split()[0].upper())

    event.listen(Engine, "before_cursor_execute", spy)
    try:
        j2 = TradeJournal.open(url)
    finally:
        event.remove(Engine, "before_cursor_execute", spy)
    assert statements and not {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE"} & set(statements)
    assert j2.run_state(run)["strategy"] == "s"
    j2.close()


_CHILD = textwrap.dedent("""
    import sys, pandas as pd
    from graphwiz_trader.trading.journal import TradeJournal
    from graphwiz_trader.trading.types import Fill, OrderRequest, Side, client_order_id, fill_id
    path, run, start_file = sys.argv[1], sys.argv[2], sys.argv[3]
    import os, time
    while not os.path.exists(start_file):  # both processes start together
        time.sleep(0.005)
    t = pd.Timestamp("2024-01-01", tz="UTC")
    j = TradeJournal.open(path, busy_timeout_s=60)
    j.start_run(run, "s", "replay", {}, t)
    for c in range(1, 21):
        j.begin_cycle(run, c, t + pd.Timedelta(hours=c))
        o = OrderRequest(client_order_id(run, c, "BTC/USDT"), run, c, "BTC/USDT", Side.BUY, 1.0, t)
        j.record_orders([o])
        j.record_fills([Fill(fill_id(o.client_order_id, k), o.client_order_id, "BTC/USDT", Side.BUY, 0.1, 100.0,
                             0.0, t + pd.Timedelta(hours=c + 1)) for k in range(10)])
        j.finish_cycle(run, c, "ok", {}, {})
    print(j.positions_from_fills(run)["BTC/USDT"])
""")


def test_two_processes_open_a_new_sqlite_file_at_once_and_write_to_it_in_turns(tmp_path):
    path = tmp_path / "shared" / "journal.sqlite"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(path), f"run-{k}", str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    go.write_text("go")
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert abs(float(out.strip()) - 20.0) < 1e-9
    with TradeJournal.open(path) as j:
        assert set(j.runs()["run_id"]) == {"run-1", "run-2"}
        assert len(j.fills_frame("run-1")) == len(j.fills_frame("run-2")) == 200


def test_a_journal_from_a_newer_version_is_refused_with_a_clear_error(tmp_path):
    import sqlite3

    from graphwiz_trader.trading.journal import JournalError

    path = tmp_path / "j.sqlite"
    TradeJournal.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'j9999'")
    with pytest.raises(JournalError, match=r"migrate the schema .*j9999.*from a newer graphwiz_trader"):
        TradeJournal.open(path)


def test_a_journal_at_the_first_revision_is_upgraded_on_open_and_keeps_its_rows(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from graphwiz_trader.trading.journal.engine import alembic_config

    path = tmp_path / "old.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "j0001")
        conn.exec_driver_sql("INSERT INTO runs (run_id, strategy, engine, config, started_utc, paused, killed, "
                             "state_reason) VALUES ('old', 's', 'replay', '{}', '2024-01-01 00:00:00.000000', 0, 0, "
                             "'')")
    engine.dispose()
    with TradeJournal.open(path) as j, j.engine.connect() as conn:
        assert current_revision(conn) == "j0002"
        assert "ix_fills_run_id_recorded_utc" in {i["name"] for i in inspect(conn).get_indexes("fills")}
        assert j.run_state("old")["started_utc"] == pd.Timestamp("2024-01-01", tz="UTC")
