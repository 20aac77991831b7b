"""Operations every store needs: schema, assets, symbol checks and clearing; the base of the other ops."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from graphwiz_trader.core.symbols import split_symbol
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.store.steps import Op, Step, StepResult, _chunks, _counter
from graphwiz_trader.graph.store_errors import GraphStoreError

log = logging.getLogger(__name__)


class _BaseOps:
    """The operations shared by the snapshot and regime operations (step generators)."""

    uri: str
    user: str
    batch_size: int

    # ---------------------------------------------------------------------------------- schema
    def _op_ensure_schema(self) -> Op:
        for name in C.OBSOLETE_INDEXES:
            yield Step(C.drop_index_query(name), label=f"schema: drop obsolete index {name}", autocommit=True)
        for name, stmt in C.CONSTRAINTS + C.INDEXES:
            yield Step(stmt, label=f"schema {name}", autocommit=True)
        res = yield Step(C.SHOW_CONSTRAINTS, write=False, label="show constraints")
        names = {r["name"] for r in res.records}
        res = yield Step(C.SHOW_INDEXES, write=False, label="show indexes")
        names |= {r["name"] for r in res.records}
        missing = sorted(C.SCHEMA_NAMES - names)
        if missing:  # IF NOT EXISTS is a no-op when an equivalent constraint/index exists under another name
            log.info("schema on %s: %s exist under other names (equivalent definitions kept)", self.uri, missing)
        return sorted(names)

    def _op_schema_names(self) -> Op:
        res = yield Step(C.SHOW_CONSTRAINTS, write=False, label="show constraints")
        names = [r["name"] for r in res.records]
        res = yield Step(C.SHOW_INDEXES, write=False, label="show indexes")
        return sorted(set(names) | {r["name"] for r in res.records})

    # ---------------------------------------------------------------------------------- assets
    def _op_upsert_assets(self, symbols: Sequence[str], exchange: str | None, batch_size: int) -> Op:
        syms = sorted(set(symbols))
        rows = [[s, *split_symbol(s)] for s in syms]
        n_tx = 0
        for a, b in _chunks(len(rows), batch_size):
            if exchange:
                yield Step(C.UPSERT_ASSETS_LISTED, {"rows": rows[a:b], "exchange": exchange},
                           label="upsert assets", merge=True)
            else:
                yield Step(C.UPSERT_ASSETS, {"rows": rows[a:b]}, label="upsert assets", merge=True)
            n_tx += 1
        return n_tx

    def _op_symbols(self) -> Op:
        res = yield Step(C.SYMBOLS, write=False, label="list symbols")
        return [r["symbol"] for r in res.records]

    # ---------------------------------------------------------------------------------- clear
    def _op_clear(self, batch_size: int) -> Op:
        limit = max(batch_size, 10_000)
        deleted = 0
        for rel in C.REL_TYPES:  # relationships first, in bounded transactions, so no node delete is huge
            while True:
                r = yield Step(C.delete_rels_query(rel), {"limit": limit}, label=f"clear {rel}")
                n = int(r.records[0]["n"])
                if n < limit:
                    break
        for label in C.NODE_LABELS:
            while True:
                r = yield Step(C.delete_nodes_query(label), {"limit": limit}, label=f"clear {label}")
                n = int(r.records[0]["n"])
                deleted += n
                if n < limit:
                    break
        return deleted

    def _check_created(self, res: StepResult, counter: str, expected: int, what: str) -> None:
        got = _counter(res.counters, counter)
        if got != expected:
            raise GraphStoreError(f"write to {self.uri}: expected {expected} {what} in this batch, the server "
                                  f"reports {got} (an Asset node is missing or a concurrent delete ran)")
