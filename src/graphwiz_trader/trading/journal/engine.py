"""Where the journal lives and how it is opened: the URL, the SQLAlchemy engine, SQLite's WAL mode and locking,
and the Alembic upgrade run by :meth:`TradeJournal.open`.

SQLite (the default) runs in WAL mode with a busy timeout: readers never block the writer, and two processes
on one file take turns (each write transaction starts with ``BEGIN IMMEDIATE``, so a writer waits up to the
busy timeout for the other one instead of failing half-way). ``synchronous=NORMAL``: a committed transaction
survives a crash of the process (SIGKILL); after a power loss the last commits may be missing, never
half-written. PostgreSQL through a URL (``postgresql+psycopg://user:pw@host/db``); the upgrade there holds a
transaction-level advisory lock, so two processes opening a new database do not both create the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from graphwiz_trader.core.secrets import mask_secrets, redact_uri
from graphwiz_trader.errors import GraphwizError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_S = 30.0
_PG_LOCK_KEY = 0x67775F6A6F75726E  # 'gw_journ': the advisory lock taken while migrating a PostgreSQL journal
READ_ONLY = "graphwiz_journal_read"  # execution option: begin a read transaction (no write lock on SQLite)


class JournalError(GraphwizError):
    """A journal operation failed; the message names the journal (credentials stripped) and the operation."""

    def __init__(self, url: str, operation: str, detail: str) -> None:
        self.url = url
        self.operation = operation
        super().__init__(f"trade journal {url}: {operation}: {mask_secrets(detail)}")


def resolve_url(url_or_path: str | Path) -> tuple[str, str]:
    """``(sqlalchemy url, shown url)``: a path becomes ``sqlite:///<absolute path>``; the shown one has no
    credentials. Only SQLite and PostgreSQL are supported."""
    if isinstance(url_or_path, Path) or "://" not in str(url_or_path):
        text_path = str(url_or_path)
        if text_path in ("", ":memory:"):
            return "sqlite://", "sqlite:// (in memory)"
        path = Path(text_path).expanduser().resolve()
        return f"sqlite:///{path}", f"sqlite:///{path}"
    raw = str(url_or_path)
    shown = redact_uri(raw)
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise JournalError(shown, "open", f"not a database URL ({exc})") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise JournalError(shown, "open", f"unsupported database {url.get_backend_name()!r}: the journal runs on "
                                          "SQLite (a path or sqlite:///path) or PostgreSQL "
                                          "(postgresql+psycopg://user:password@host/db)")
    return raw, shown


def create_journal_engine(url: str, shown: str, busy_timeout_s: float) -> Engine:
    """The engine, with SQLite's pragmas and ``BEGIN IMMEDIATE`` for write transactions."""
    sa_url = make_url(url)
    kwargs: dict[str, Any] = {}
    sqlite = sa_url.get_backend_name() == "sqlite"
    memory = sqlite and sa_url.database in (None, "", ":memory:")
    if sqlite:
        if not memory:
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
        if memory:
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(sa_url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise JournalError(shown, "open", f"the database driver is not installed ({exc}); for PostgreSQL install "
                                          "psycopg (pip install 'psycopg[binary]') and use postgresql+psycopg://")
    if sqlite:
        _sqlite_events(engine, shown, busy_timeout_s, memory)
    return engine


def _sqlite_events(engine: Engine, shown: str, busy_timeout_s: float, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver never opens transactions by itself; see _on_begin
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if not memory and str(mode).lower() != "wal":
                raise JournalError(shown, "open", f"SQLite refused WAL mode (journal_mode is {mode!r}); the file "
                                                  "must be on a local filesystem")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front (waiting up to the busy timeout), so it never
        # fails half-way because another process wrote first; reads take a snapshot only.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine, shown: str, operation: str, *, read: bool = False) -> Iterator[Connection]:
    """One transaction named ``operation``; any database error becomes a :class:`JournalError`."""
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise JournalError(shown, operation, db_detail(exc)) from None
    try:
        if read:
            conn = conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            yield conn
    except JournalError:
        raise
    except SQLAlchemyError as exc:
        raise JournalError(shown, operation, db_detail(exc)) from None
    finally:
        conn.close()


def db_detail(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    msg = str(orig) if orig is not None else str(exc).split("\n", 1)[0]
    return f"{type(orig or exc).__name__}: {msg}"


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic config without ``alembic.ini``: the migrations shipped in this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_head(engine: Engine, shown: str) -> None:
    """Run ``alembic upgrade head`` in one transaction (serialised between processes; a no-op when current)."""
    from alembic import command
    from alembic.util import CommandError

    with transaction(engine, shown, "migrate the schema (alembic upgrade head)") as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        try:
            command.upgrade(alembic_config(conn), "head")
        except CommandError as exc:  # e.g. the database is at a revision this version does not know (newer)
            raise JournalError(shown, "migrate the schema (alembic upgrade head)",
                               f"{exc}; is the journal from a newer graphwiz_trader?") from None


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
