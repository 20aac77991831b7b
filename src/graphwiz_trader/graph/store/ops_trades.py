"""Trading operations: a run's trades and signals mirrored into the graph, tagged with the run id.

- ``(:Trade {id, run, fill_id, client_order_id, symbol, side, qty, price, fee_quote, ts, cycle, reason})``
  ``-[:OF]->(:Asset)``
- ``(:Trade)-[:DURING {build, prob, from}]->(:Regime)``: the regime record of a build whose ``[from, to)`` holds
  the trade's time, in the build's current regime generation (market scope, or the traded asset's own scope)
- ``(:Signal {id, run, cycle, as_of, symbol, score, weight, model_version})-[:FOR]->(:Asset)``

Every write is an idempotent ``MERGE`` on the node's ``id`` (``run|fill_id``, ``run|cycle|symbol``) in batched
``UNWIND`` statements, so mirroring a run again (or a cycle at a time) never duplicates anything. Trades and
signals are run data, not build data: they carry no generation and survive re-writes of any build. A build's
regime re-write deletes its old Regime nodes and with them the DURING links into them; mirroring again links
the trades to the new generation (and removes links of this build into any other generation).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import check_symbol
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.store.frames import MARKET_SCOPE, regime_key
from graphwiz_trader.graph.store.generations import Current, _GenerationOps, check_build_id
from graphwiz_trader.graph.store.steps import Op, Progress, Step, _chunks
from graphwiz_trader.graph.store_errors import GraphStoreError

TRADE_COLUMNS = ["fill_id", "client_order_id", "symbol", "side", "qty", "price", "fee_quote", "ts", "cycle", "reason"]
SIGNAL_COLUMNS = ["cycle", "as_of", "symbol", "score", "weight", "model_version"]
REGIME_SCOPES = ("market", "asset")


@dataclass(frozen=True)
class TradeWriteStats:
    """What a trade or signal write did: nodes written (new or updated), trades linked to a regime record and
    trades with no record at or before their time (``unlinked``), the regime generation used, transactions."""

    run: str
    trades: int = 0
    signals: int = 0
    linked: int = 0
    unlinked: int = 0
    build: str | None = None
    generation: str | None = None
    transactions: int = 0
    seconds: float = 0.0


def trade_node_id(run: str, fill_id: str) -> str:
    return f"{run}|{fill_id}"


def signal_node_id(run: str, cycle: int, symbol: str) -> str:
    return f"{run}|{int(cycle)}|{symbol}"


def _check_run(run: Any) -> str:
    if not isinstance(run, str) or not run.strip() or len(run) > 128:
        raise DataError(f"a run id is a non-empty string of at most 128 characters, got {run!r}")
    return run


def _columns(frame: Any, columns: list[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing column(s) {missing}; expected {columns}")
    for sym in frame["symbol"].unique():
        check_symbol(sym, f"{what}: symbol")
    return frame[columns].reset_index(drop=True)


def _utc_list(values: pd.Series, what: str) -> list[pd.Timestamp]:
    return [to_utc(v, what, naive="error") for v in values]


def _num(value: Any, what: str, *, positive: bool = False, optional: bool = False) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if optional:
            return None
        raise DataError(f"{what} is missing")
    x = float(value)
    if not math.isfinite(x) or (positive and x <= 0):
        raise DataError(f"{what} must be a finite{' positive' if positive else ''} number, got {value!r}")
    return x


def _indexed(symbols: list[str]) -> tuple[list[str], dict[str, int]]:
    syms = sorted(set(symbols))
    return syms, {s: i for i, s in enumerate(syms)}


class _TradeOps(_GenerationOps):
    """Trade and signal operations as step generators."""

    def _op_merge_run_rows(self, rows_all: list[list[Any]], symbols: list[str], query: str, run: str, what: str,
                           batch_size: int) -> Op:
        """MERGE ``rows_all`` (column 3 is the symbol, sent as an index into ``syms``) in batches, after the
        assets they point at; returns the number of transactions."""
        n_tx = 0
        if rows_all:
            n_tx += yield from self._op_upsert_assets(symbols, None, batch_size)
        for a, b in _chunks(len(rows_all), batch_size):
            syms, index = _indexed([r[3] for r in rows_all[a:b]])
            rows = [[*r[:3], index[r[3]], *r[4:]] for r in rows_all[a:b]]
            res = yield Step(query, {"run": run, "syms": syms, "rows": rows}, label=f"merge {what}",
                             rows=b - a, merge=True)
            n_tx += 1
            self._check_count(res, b - a, what)
        return n_tx

    def _op_write_trades(self, frame: pd.DataFrame, run: str, build: str | None, regime_scope: str,
                         batch_size: int) -> Op:
        t0 = time.perf_counter()
        run = _check_run(run)
        if regime_scope not in REGIME_SCOPES:
            raise DataError(f"regime_scope must be one of {REGIME_SCOPES}, got {regime_scope!r}")
        df = _columns(frame, TRADE_COLUMNS, f"trades of run {run}")
        if df["fill_id"].duplicated().any():
            dup = sorted(df["fill_id"][df["fill_id"].duplicated()])
            raise DataError(f"trades of run {run}: fill ids given twice: {dup[:3]}")
        bad_side = sorted(set(df["side"]) - {"buy", "sell"})
        if bad_side:
            raise DataError(f"trades of run {run}: side must be 'buy' or 'sell', got {bad_side}")
        ts = _utc_list(df["ts"], f"trade time (run {run})")
        ids = [trade_node_id(run, f) for f in df["fill_id"]]
        rows_all = []
        for i, r in enumerate(df.itertuples(index=False)):
            w = f"trade {r.fill_id} of run {run}"
            rows_all.append([ids[i], str(r.fill_id), str(r.client_order_id), r.symbol, r.side,
                             _num(r.qty, f"{w}: qty", positive=True), _num(r.price, f"{w}: price", positive=True),
                             _num(r.fee_quote, f"{w}: fee_quote"), ts[i], int(r.cycle), str(r.reason)])
        yield Progress(total=len(rows_all), desc="trades write")
        n_tx = yield from self._op_merge_run_rows(rows_all, list(df["symbol"]), C.UPSERT_TRADES, run, "trades",
                                                  batch_size)
        linked = unlinked = 0
        gen = None
        if build is not None and rows_all:
            gen, linked, unlinked, tx = yield from self._op_link_regimes(
                ids, list(df["symbol"]), ts, check_build_id(build), regime_scope, batch_size)
            n_tx += tx
        return TradeWriteStats(run=run, trades=len(rows_all), linked=linked, unlinked=unlinked, build=build,
                               generation=gen, transactions=n_tx, seconds=time.perf_counter() - t0)

    def _op_link_regimes(self, ids: list[str], symbols: list[str], ts: list[pd.Timestamp], build: str,
                         regime_scope: str, batch_size: int) -> Op:
        """DURING links from each trade to the build's regime record holding its time; (gen, linked, unlinked, tx)."""
        scope_of = [MARKET_SCOPE if regime_scope == "market" else s for s in symbols]
        wanted = sorted(set(scope_of))
        end = max(ts)

        def read(cur: Current) -> Op:
            if regime_scope == "market" and MARKET_SCOPE not in cur.names:
                raise GraphStoreError(f"build {build} has no market regime records in the graph store at "
                                      f"{self.uri} (its regime scopes: {', '.join(cur.names) or 'none'})")
            scopes = [s for s in wanted if s in set(cur.names)]
            if not scopes:
                return cur.gen, {}
            res = yield Step(C.read_regime_records_query(start=False, end=True, scopes=True),
                             {"gen": cur.gen, "end": end, "scopes": scopes}, write=False,
                             label=f"build {build}: regime records for the trades")
            return cur.gen, {r["scope"]: r["rows"] for r in res.records}

        gen, records = yield from self._op_consistent_read(build, "regimes", read)
        table: dict[str, tuple[np.ndarray, list[Any]]] = {}
        for scope, rows in records.items():
            rows = sorted(rows, key=lambda r: (r[0], r[1]))
            table[scope] = (np.asarray([r[0] * 1_000_000_000 + r[1] for r in rows], dtype=np.int64), rows)
        links = []
        for tid, scope, t in zip(ids, scope_of, ts):
            if scope not in table:
                continue
            starts, rows = table[scope]
            k = int(np.searchsorted(starts, t.value, side="right")) - 1
            if k >= 0:
                rec = rows[k]
                links.append([tid, regime_key(gen, scope, rec[2]), float(rec[3]),
                              pd.Timestamp(int(starts[k]), tz="UTC")])
        n_tx = 0
        for a, b in _chunks(len(ids), batch_size):
            yield Step(C.DELETE_STALE_DURING, {"ids": ids[a:b], "build": build, "gen": gen},
                       label=f"build {build}: drop DURING links into older regime generations")
            n_tx += 1
        for a, b in _chunks(len(links), batch_size):
            res = yield Step(C.LINK_DURING, {"build": build, "rows": links[a:b]}, label="link trades to regimes",
                             rows=b - a)
            n_tx += 1
            if int(res.records[0]["n"]) != b - a:
                raise GraphStoreError(f"build {build}: its regime generation {gen} changed while trades were linked "
                                      f"to it on {self.uri} (linked {res.records[0]['n']} of {b - a}); mirror again")
        return gen, len(links), len(ids) - len(links), n_tx

    def _op_write_signals(self, frame: pd.DataFrame, run: str, batch_size: int) -> Op:
        t0 = time.perf_counter()
        run = _check_run(run)
        df = _columns(frame, SIGNAL_COLUMNS, f"signals of run {run}")
        key = df["cycle"].astype(int).astype(str) + "|" + df["symbol"]
        if key.duplicated().any():
            raise DataError(f"signals of run {run}: (cycle, symbol) given twice: {sorted(key[key.duplicated()])[:3]}")
        as_of = _utc_list(df["as_of"], f"signal as_of (run {run})")
        rows_all = []
        for i, r in enumerate(df.itertuples(index=False)):
            w = f"signal {r.symbol} of cycle {r.cycle} (run {run})"
            rows_all.append([signal_node_id(run, r.cycle, r.symbol), int(r.cycle), as_of[i], r.symbol,
                             _num(r.score, f"{w}: score", optional=True), _num(r.weight, f"{w}: weight", optional=True),
                             None if r.model_version is None or r.model_version != r.model_version
                             else str(r.model_version)])
        yield Progress(total=len(rows_all), desc="signals write")
        n_tx = yield from self._op_merge_run_rows(rows_all, list(df["symbol"]), C.UPSERT_SIGNALS, run, "signals",
                                                  batch_size)
        return TradeWriteStats(run=run, signals=len(rows_all), transactions=n_tx, seconds=time.perf_counter() - t0)

    def _op_delete_run(self, run: str, batch_size: int) -> Op:
        """Delete a run's trades and signals (and their links); returns the number of nodes deleted."""
        run = _check_run(run)
        limit = max(batch_size, 10_000)
        deleted = 0
        for label, stmt in (("trades", C.DELETE_RUN_TRADES), ("signals", C.DELETE_RUN_SIGNALS)):
            while True:
                r = yield Step(stmt, {"run": run, "limit": limit}, label=f"run {run}: delete {label}")
                n = int(r.records[0]["n"])
                deleted += n
                if n < limit:
                    break
        return deleted

    def _op_read_trades(self, run: str) -> Op:
        res = yield Step(C.READ_TRADES, {"run": _check_run(run)}, write=False, label=f"run {run}: read trades")
        return pd.DataFrame([r.data() for r in res.records],
                            columns=["fill_id", "client_order_id", "symbol", "side", "qty", "price", "cycle",
                                     "regimes"])

    def _check_count(self, res: Any, expected: int, what: str) -> None:
        got = int(res.records[0]["n"]) if res.records else 0
        if got != expected:
            raise GraphStoreError(f"write to {self.uri}: expected {expected} {what} in this batch, the server "
                                  f"reports {got} (an Asset node is missing or a concurrent delete ran)")
