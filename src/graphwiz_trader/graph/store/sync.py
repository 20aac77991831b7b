"""The synchronous graph store: runs each operation's steps through the neo4j driver's blocking API."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.snapshot import GraphSnapshot
from graphwiz_trader.graph.store.connection import _DRIVER_CONFIG, _batch_size, _resolve_target, _StoreBase
from graphwiz_trader.graph.store.ops_trades import TradeWriteStats
from graphwiz_trader.graph.store.steps import Op, Progress, Step, StepResult, WriteStats, _translate, retry_merge
from graphwiz_trader.graph.store_errors import GraphStoreError
from graphwiz_trader.core.secrets import scrub_exception

log = logging.getLogger(__name__)


class GraphStore(_StoreBase):
    """Synchronous graph store over the official neo4j driver (Neo4j 5 or the embedded ArcadeDB server).

    Create with :meth:`connect`. Every write is batched: ``UNWIND $rows`` statements of at most
    ``batch_size`` rows, each in its own managed transaction (retried by the driver on transient errors).
    """

    @classmethod
    def connect(cls, settings: GraphSettings | None = None, *, data_dir: str | Path | None = None,
                batch_size: int | None = None, ensure_schema: bool = True) -> "GraphStore":
        """Connect from settings (``uri=None``: the embedded server under ``data_dir``) or from ``NEO4J_*`` env.

        Raises :class:`GraphUnavailableError` (names the URI and how to start a server),
        :class:`GraphAuthError` on bad credentials.
        """
        from neo4j import GraphDatabase
        from neo4j.exceptions import ConfigurationError

        target = _resolve_target(settings, data_dir)
        bs = _batch_size(settings, batch_size)
        auth = (target.user, target.password) if target.password is not None else None
        try:
            driver = GraphDatabase.driver(target.uri, auth=auth, **_DRIVER_CONFIG)
        except (ValueError, ConfigurationError) as exc:  # a malformed URI or an unsupported scheme
            raise GraphStoreError(f"invalid graph URI {target.uri!r}: {exc}") from scrub_exception(exc)
        try:
            driver.verify_connectivity()
            agent = driver.get_server_info().agent
            with driver.session(database=target.database) as session:
                session.run("RETURN 1 AS ok").consume()
        except Exception as exc:
            driver.close()
            raise _translate(exc, target.uri, target.user, "connect") from scrub_exception(exc)
        store = cls(driver, target, bs, agent)
        log.info("graph store connected: %s (%s)", target.uri, agent)
        if ensure_schema:
            store.ensure_schema()
        return store

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------- runner
    def _run(self, op: Op, progress: bool = False) -> Any:
        from graphwiz_trader.core.progress import bar as progress_counter

        bar = None
        step: Any = None
        try:
            with self._driver.session(database=self.database) as session:
                try:
                    step = next(op)
                    while True:
                        if isinstance(step, Progress):
                            bar = progress_counter(total=step.total, desc=step.desc, unit="row", enabled=progress)
                            step = op.send(None)  # type: ignore[arg-type]
                            continue
                        res = self._execute_retrying(session, step)
                        if bar is not None and step.rows:
                            bar.update(step.rows)
                        step = op.send(res)
                except StopIteration as stop:
                    return stop.value
        except (GraphStoreError, DataError):
            raise
        except Exception as exc:
            translated = self._translate_failure(exc, step)
            if translated is exc:
                raise
            raise translated from scrub_exception(exc)
        finally:
            op.close()  # an operation cut short (a failed step) runs its cleanup now, not at garbage collection
            if bar is not None:
                bar.close()

    def _execute_retrying(self, session: Any, step: Step) -> StepResult:
        attempt = 1
        while True:
            try:
                return self._execute(session, step)
            except Exception as exc:
                wait = retry_merge(step, exc, attempt)
                if wait is None:
                    raise
                log.debug("%s: a concurrent writer created the same key; running it again (attempt %d)",
                          step.label, attempt + 1)
                time.sleep(wait)
                attempt += 1

    @staticmethod
    def _execute(session: Any, step: Step) -> StepResult:
        def work(tx: Any) -> StepResult:
            result = tx.run(step.query, step.params)
            records = list(result)
            return StepResult(records, result.consume().counters)

        if step.autocommit:
            result = session.run(step.query, step.params)
            records = list(result)
            return StepResult(records, result.consume().counters)
        if step.write:
            return session.execute_write(work)
        return session.execute_read(work)

    # ---------------------------------------------------------------------------------- API
    def ensure_schema(self) -> list[str]:
        """Create the uniqueness constraints and indexes if absent (idempotent); return their names."""
        return self._run(self._op_ensure_schema())

    def schema_names(self) -> list[str]:
        """Names of all constraints and indexes on the server (graphwiz's and any others)."""
        return self._run(self._op_schema_names())

    def upsert_assets(self, symbols: Sequence[str], exchange: str | None = None, *,
                      batch_size: int | None = None) -> int:
        """MERGE ``(:Asset {symbol, base, quote})`` (and ``-[:LISTED_ON]->(:Exchange {id})``); returns #transactions."""
        return self._run(self._op_upsert_assets(symbols, exchange, self._bs(batch_size)))

    def symbols_in_store(self) -> list[str]:
        """All asset symbols in the store, sorted."""
        return self._run(self._op_symbols())

    def write_snapshots(self, snapshots: Sequence[GraphSnapshot], *, build: str,
                        info: Mapping[str, Any] | None = None, exchange: str | None = None,
                        batch_size: int | None = None, progress: bool = False) -> WriteStats:
        """Write ``snapshots`` as the complete snapshot set of ``build``, replacing the build's previous set.

        Written as a new generation and switched in by one transaction once every part is stored, then the
        previous generation is deleted: a crash at any point leaves the previous complete set readable.
        ``info`` (spec, universe, bars fingerprint) is kept on the ``(:Build)`` node as JSON text.
        """
        return self._run(self._op_write_snapshots(list(snapshots), build, info, exchange, self._bs(batch_size)),
                         progress)

    def read_snapshots(self, build: str, symbols: Sequence[str] | None = None, start: Any = None,
                       end: Any = None, *, method: str | None = None, window: int | None = None
                       ) -> list[GraphSnapshot]:
        """The build's snapshots with ``start <= as_of <= end`` (UTC; either bound optional), oldest first.

        With ``symbols``, each snapshot is restricted to them (assets, edges and leads with both ends among
        them, their community ids); a symbol the build never had raises :class:`UnknownSymbolError`, a build
        without complete snapshots :class:`UnknownBuildError`.
        """
        return self._run(self._op_read_snapshots(build, symbols, start, end, method, window))

    def list_snapshots(self, build: str, end: Any = None, *, method: str | None = None,
                       window: int | None = None) -> pd.DataFrame:
        """Catalog of the build's snapshots (``as_of, method, window, n_assets, n_edges, n_leads``), as_of <= end."""
        return self._run(self._op_list_snapshots(build, end, method, window))

    def write_regimes(self, frame: pd.DataFrame, *, build: str, info: Mapping[str, Any] | None = None,
                      batch_size: int | None = None, progress: bool = False) -> WriteStats:
        """Write regime-state records (``scope, datetime, regime, prob``) as the complete regime state of
        ``build`` (replacing the build's previous one, crash-safe as :meth:`write_snapshots`), with
        ``TRANSITIONS_TO`` computed from them. Each record's ``to`` is the next record's time of its scope.
        """
        return self._run(self._op_write_regimes(frame, build, info, self._bs(batch_size)), progress)

    def read_regimes(self, build: str, scopes: Sequence[str] | str | None = None, end: Any = None,
                     start: Any = None) -> pd.DataFrame:
        """The build's regime records with ``start <= datetime <= end`` (long frame of ``snapshot.REGIME_COLUMNS``)."""
        return self._run(self._op_read_regimes(build, scopes, start, end))

    def read_transitions(self, build: str, scopes: Sequence[str] | str | None = None) -> pd.DataFrame:
        """The build's ``TRANSITIONS_TO`` statistics (see :func:`regime_transitions`)."""
        return self._run(self._op_read_transitions(build, scopes))

    def write_trades(self, trades: pd.DataFrame, *, run: str, build: str | None = None,
                     regime_scope: str = "market", batch_size: int | None = None,
                     progress: bool = False) -> TradeWriteStats:
        """MERGE a run's trades (columns ``ops_trades.TRADE_COLUMNS``, one row per fill, ``ts`` UTC) as
        ``(:Trade {run, ...})-[:OF]->(:Asset)``; with ``build``, link each to the regime record of that build
        holding its time (``regime_scope`` ``market``, or ``asset``: the traded asset's own regime) by
        ``-[:DURING]->(:Regime)``. Idempotent (MERGE on ``run|fill_id``)."""
        return self._run(self._op_write_trades(trades, run, build, regime_scope, self._bs(batch_size)), progress)

    def write_signals(self, signals: pd.DataFrame, *, run: str, batch_size: int | None = None,
                      progress: bool = False) -> TradeWriteStats:
        """MERGE a run's signals (columns ``ops_trades.SIGNAL_COLUMNS``: ``cycle, as_of, symbol, score, weight,
        model_version``) as ``(:Signal {run, ...})-[:FOR]->(:Asset)``. Idempotent (MERGE on ``run|cycle|symbol``)."""
        return self._run(self._op_write_signals(signals, run, self._bs(batch_size)), progress)

    def read_trades(self, run: str) -> pd.DataFrame:
        """A run's trades in the store with their ``regimes`` (``[build, scope, name]`` per DURING link)."""
        return self._run(self._op_read_trades(run))

    def delete_run(self, run: str, *, batch_size: int | None = None) -> int:
        """Delete a run's trades and signals (and their links); returns the number of nodes deleted."""
        return self._run(self._op_delete_run(run, self._bs(batch_size)))

    def list_builds(self) -> pd.DataFrame:
        """Every build in the store, newest first: ``build, updated`` (UTC), the current ``snapshots_gen`` and
        ``regimes_gen`` with their sizes, and ``info`` (what it was built from, JSON text)."""
        return self._run(self._op_list_builds())

    def delete_build(self, build: str, *, batch_size: int | None = None) -> int:
        """Delete everything ``build`` wrote (its pointer, then its generations); returns #generations deleted.

        A generation another live process is still writing is left alone (when that writer switches it in, the
        build exists again). Assets and exchanges stay (they are shared). Raises :class:`UnknownBuildError`
        when the store holds nothing of ``build``.
        """
        return self._run(self._op_delete_build(build, self._bs(batch_size)))

    def clear(self, *, batch_size: int | None = None) -> int:
        """Delete every graphwiz node and relationship (labels in ``cypher.NODE_LABELS``); returns #nodes."""
        return self._run(self._op_clear(self._bs(batch_size)))

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only Cypher query (exploration) and return its rows as dicts."""
        return self._run(_single_read(cypher, params))


def _single_read(cypher: str, params: dict[str, Any]) -> Op:
    res = yield Step(cypher, params, write=False, label="query")
    return [r.data() for r in res.records]

