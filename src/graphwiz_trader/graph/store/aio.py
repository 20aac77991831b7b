"""The asyncio graph store: the same operations as :class:`~graphwiz_trader.graph.store.sync.GraphStore`,
their steps awaited through ``neo4j.AsyncGraphDatabase``."""

from __future__ import annotations

import asyncio
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
from graphwiz_trader.graph.store.sync import _single_read
from graphwiz_trader.graph.store_errors import GraphStoreError
from graphwiz_trader.core.secrets import scrub_exception


class AsyncGraphStore(_StoreBase):
    """The asyncio twin of :class:`GraphStore` (``neo4j.AsyncGraphDatabase``); same methods, awaitable."""

    @classmethod
    async def connect(cls, settings: GraphSettings | None = None, *, data_dir: str | Path | None = None,
                      batch_size: int | None = None, ensure_schema: bool = True) -> "AsyncGraphStore":
        from neo4j import AsyncGraphDatabase
        from neo4j.exceptions import ConfigurationError

        # Starting the embedded server blocks (subprocess + readiness polling): do it off the event loop.
        target = await asyncio.to_thread(_resolve_target, settings, data_dir)
        bs = _batch_size(settings, batch_size)
        auth = (target.user, target.password) if target.password is not None else None
        try:
            driver = AsyncGraphDatabase.driver(target.uri, auth=auth, **_DRIVER_CONFIG)
        except (ValueError, ConfigurationError) as exc:  # a malformed URI or an unsupported scheme
            raise GraphStoreError(f"invalid graph URI {target.uri!r}: {exc}") from scrub_exception(exc)
        try:
            await driver.verify_connectivity()
            agent = (await driver.get_server_info()).agent
            async with driver.session(database=target.database) as session:
                await (await session.run("RETURN 1 AS ok")).consume()
        except Exception as exc:
            await driver.close()
            raise _translate(exc, target.uri, target.user, "connect") from scrub_exception(exc)
        store = cls(driver, target, bs, agent)
        if ensure_schema:
            await store.ensure_schema()
        return store

    async def close(self) -> None:
        await self._driver.close()

    async def __aenter__(self) -> "AsyncGraphStore":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, op: Op, progress: bool = False) -> Any:
        from graphwiz_trader.core.progress import bar as progress_counter

        bar = None
        step: Any = None
        try:
            async with self._driver.session(database=self.database) as session:
                try:
                    step = next(op)
                    while True:
                        if isinstance(step, Progress):
                            bar = progress_counter(total=step.total, desc=step.desc, unit="row", enabled=progress)
                            step = op.send(None)  # type: ignore[arg-type]
                            continue
                        res = await self._execute_retrying(session, step)
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

    async def _execute_retrying(self, session: Any, step: Step) -> StepResult:
        attempt = 1
        while True:
            try:
                return await self._execute(session, step)
            except Exception as exc:
                wait = retry_merge(step, exc, attempt)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
                attempt += 1

    @staticmethod
    async def _execute(session: Any, step: Step) -> StepResult:
        async def work(tx: Any) -> StepResult:
            result = await tx.run(step.query, step.params)
            records = [r async for r in result]
            return StepResult(records, (await result.consume()).counters)

        if step.autocommit:
            result = await session.run(step.query, step.params)
            records = [r async for r in result]
            return StepResult(records, (await result.consume()).counters)
        if step.write:
            return await session.execute_write(work)
        return await session.execute_read(work)

    async def ensure_schema(self) -> list[str]:
        return await self._run(self._op_ensure_schema())

    async def schema_names(self) -> list[str]:
        return await self._run(self._op_schema_names())

    async def upsert_assets(self, symbols: Sequence[str], exchange: str | None = None, *,
                            batch_size: int | None = None) -> int:
        return await self._run(self._op_upsert_assets(symbols, exchange, self._bs(batch_size)))

    async def symbols_in_store(self) -> list[str]:
        return await self._run(self._op_symbols())

    async def write_snapshots(self, snapshots: Sequence[GraphSnapshot], *, build: str,
                              info: Mapping[str, Any] | None = None, exchange: str | None = None,
                              batch_size: int | None = None, progress: bool = False) -> WriteStats:
        return await self._run(self._op_write_snapshots(list(snapshots), build, info, exchange,
                                                        self._bs(batch_size)), progress)

    async def read_snapshots(self, build: str, symbols: Sequence[str] | None = None, start: Any = None,
                             end: Any = None, *, method: str | None = None, window: int | None = None
                             ) -> list[GraphSnapshot]:
        return await self._run(self._op_read_snapshots(build, symbols, start, end, method, window))

    async def list_snapshots(self, build: str, end: Any = None, *, method: str | None = None,
                             window: int | None = None) -> pd.DataFrame:
        return await self._run(self._op_list_snapshots(build, end, method, window))

    async def write_regimes(self, frame: pd.DataFrame, *, build: str, info: Mapping[str, Any] | None = None,
                            batch_size: int | None = None, progress: bool = False) -> WriteStats:
        return await self._run(self._op_write_regimes(frame, build, info, self._bs(batch_size)), progress)

    async def read_regimes(self, build: str, scopes: Sequence[str] | str | None = None, end: Any = None,
                           start: Any = None) -> pd.DataFrame:
        return await self._run(self._op_read_regimes(build, scopes, start, end))

    async def read_transitions(self, build: str, scopes: Sequence[str] | str | None = None) -> pd.DataFrame:
        return await self._run(self._op_read_transitions(build, scopes))

    async def write_trades(self, trades: pd.DataFrame, *, run: str, build: str | None = None,
                           regime_scope: str = "market", batch_size: int | None = None,
                           progress: bool = False) -> TradeWriteStats:
        return await self._run(self._op_write_trades(trades, run, build, regime_scope, self._bs(batch_size)),
                               progress)

    async def write_signals(self, signals: pd.DataFrame, *, run: str, batch_size: int | None = None,
                            progress: bool = False) -> TradeWriteStats:
        return await self._run(self._op_write_signals(signals, run, self._bs(batch_size)), progress)

    async def read_trades(self, run: str) -> pd.DataFrame:
        return await self._run(self._op_read_trades(run))

    async def delete_run(self, run: str, *, batch_size: int | None = None) -> int:
        return await self._run(self._op_delete_run(run, self._bs(batch_size)))

    async def list_builds(self) -> pd.DataFrame:
        return await self._run(self._op_list_builds())

    async def delete_build(self, build: str, *, batch_size: int | None = None) -> int:
        return await self._run(self._op_delete_build(build, self._bs(batch_size)))

    async def clear(self, *, batch_size: int | None = None) -> int:
        return await self._run(self._op_clear(self._bs(batch_size)))

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return await self._run(_single_read(cypher, params))
