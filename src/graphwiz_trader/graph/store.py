"""Graph store: snapshots and regimes in Neo4j 5 or the embedded ArcadeDB Bolt server, sync and async.

One code path for both servers and both drivers: each operation is a generator that yields
:class:`Step` objects (one Cypher statement = one transaction) and receives their results; the sync
:class:`GraphStore` and the async :class:`AsyncGraphStore` only differ in how they execute a step.

Graph model (docs/graph.md has the diagram and exploration queries):

- ``(:Asset {symbol, base, quote})-[:LISTED_ON]->(:Exchange {id})``
- ``(:Asset)-[:CORRELATED_WITH {rho, method, window, as_of}]->(:Asset)``, stored ``src < dst``
- ``(:Asset)-[:LEADS {lag, rho, method, window, as_of}]->(:Asset)``: src's return ``lag`` bars earlier
  correlates with dst's return
- ``(:Asset)-[:MEMBER_OF]->(:Community {key, id, as_of, method, window, size})``
- ``(:Snapshot {key, as_of, method, window, assets, n_edges, n_leads, complete})``: one per snapshot;
  keeps the asset list (assets without edges included) and marks the snapshot complete once all its parts
  are written, so a reader never sees half a snapshot
- ``(:Market {id: 'market'})`` and ``(:Asset)`` ``-[:IN_REGIME {from, to, prob}]->(:Regime {key, scope, name})``
- ``(:Regime)-[:TRANSITIONS_TO {count, prob, mean_duration}]->(:Regime)``
- ``(:Signal {id})``, ``(:Trade {id})``: uniqueness constraints only, for the trading layer

Times are native Cypher ``datetime`` values in UTC (nanoseconds kept). A snapshot is identified by
``(method, window, as_of)``; writing it again replaces it (idempotent).

Point-in-time: ``read_snapshots(end=t)`` returns snapshots with ``as_of <= t`` only, and
``read_regimes(end=t)`` returns regime records with ``from <= t`` only (never a later label).
``TRANSITIONS_TO`` summarises a scope's *whole* stored history, so it is for exploration, not features.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.core.symbols import split_symbol
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.snapshot import (
    EDGE_COLUMNS,
    LEAD_COLUMNS,
    REGIME_COLUMNS,
    GraphSnapshot,
    empty_regime_state,
)
from graphwiz_trader.graph.store_errors import GraphAuthError, GraphStoreError, GraphUnavailableError

log = logging.getLogger(__name__)

MARKET_SCOPE = "market"
_TIMES_PER_QUERY = 32   # as_of values per IN-list read
_SCAN_FRACTION = 4      # read by as_of lookups when fewer than 1/4 of the stored snapshots are wanted
_RHO_TOL = 1e-9
TRANSITION_COLUMNS = ["scope", "from_regime", "to_regime", "count", "prob", "mean_duration"]


# ============================================================================================ settings
def settings_from_env() -> GraphSettings:
    """Graph settings from ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``.

    An unset or empty ``NEO4J_URI`` selects the embedded server.
    """
    return GraphSettings(
        uri=os.environ.get("NEO4J_URI") or None,
        user=os.environ.get("NEO4J_USER") or "neo4j",
        password=os.environ.get("NEO4J_PASSWORD") or None,
        database=os.environ.get("NEO4J_DATABASE") or None,
    )


# ============================================================================================ values
def _epoch_ts(seconds: Any, nanos: Any) -> pd.Timestamp:
    """``x.epochSeconds`` and ``x.nanosecond`` of a stored datetime back to a UTC ``pd.Timestamp``."""
    if seconds is None or nanos is None:
        raise GraphStoreError(_NULL_EPOCH)
    return pd.Timestamp(int(seconds) * 1_000_000_000 + int(nanos), tz="UTC")


def _epoch_index(seconds: Sequence[Any], nanos: Sequence[Any]) -> pd.DatetimeIndex:
    """Vectorised :func:`_epoch_ts`."""
    try:
        ns = np.asarray(seconds, dtype=np.int64) * 1_000_000_000 + np.asarray(nanos, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise GraphStoreError(_NULL_EPOCH) from exc
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


_NULL_EPOCH = ("the graph server returned a datetime without epochSeconds; an ArcadeDB server must run with "
               "-Darcadedb.dateTimeImplementation=java.time.ZonedDateTime (the embedded server does)")


def snapshot_key(as_of: pd.Timestamp, method: str, window: int) -> str:
    """Identity of a snapshot in the store: ``method|window|as_of(ISO, UTC)``."""
    return f"{method}|{int(window)}|{as_of.isoformat()}"


def regime_key(scope: str, name: str) -> str:
    return f"{scope}|{name}"


# ============================================================================================ snapshots
def _columns(df: pd.DataFrame | None, columns: list[str], where: str) -> dict[str, np.ndarray]:
    """The named columns of an edge frame as numpy arrays; missing/extra columns are a DataError."""
    if df is None:
        return {c: np.empty(0, dtype=object) for c in columns}
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    extra = [c for c in df.columns if c not in columns]
    if missing or extra:
        raise DataError(f"{where}: columns must be {columns}; missing {missing}, unexpected {extra}")
    return {c: df[c].to_numpy() for c in columns}


def _as_float(values: np.ndarray, where: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: rho must be numbers ({exc})") from exc


def _codes(symbols: np.ndarray, rank: dict[str, int], where: str) -> np.ndarray:
    """Rank of each symbol in the snapshot's sorted asset list; unknown symbols are a DataError."""
    try:
        return np.fromiter((rank[x] for x in symbols), dtype=np.int64, count=len(symbols))
    except (KeyError, TypeError):
        bad = sorted({str(x) for x in symbols if x not in rank})
        raise DataError(f"{where}: symbol(s) {bad[:8]} are not among the snapshot's assets") from None


def _check_rho(rho: np.ndarray, where: str) -> None:
    if not np.isfinite(rho).all():
        raise DataError(f"{where}: rho has {int((~np.isfinite(rho)).sum())} NaN/inf value(s)")
    if len(rho) and np.abs(rho).max() > 1 + _RHO_TOL:
        raise DataError(f"{where}: |rho| > 1 (max {np.abs(rho).max():.6g})")


@dataclass(frozen=True)
class _Parts:
    """A validated snapshot as arrays; symbol codes index ``syms`` (the assets, sorted), rows in canonical order."""

    as_of: pd.Timestamp
    window: int
    method: str
    assets: tuple[str, ...]
    syms: np.ndarray
    e_src: np.ndarray
    e_dst: np.ndarray
    e_rho: np.ndarray
    l_src: np.ndarray
    l_dst: np.ndarray
    l_lag: np.ndarray
    l_rho: np.ndarray
    communities: dict[str, int]


def canonical_snapshot(snap: GraphSnapshot) -> GraphSnapshot:
    """The snapshot in the store's canonical form, validated.

    ``as_of`` UTC; ``window`` int; edges sorted by ``(src, dst)``, leads by ``(src, dst, lag)``, both with
    a RangeIndex and dtypes ``object, object, [int64,] float64``; communities sorted by symbol with int ids.
    :meth:`GraphStore.read_snapshots` returns exactly this form, so ``canonical_snapshot(s)`` equals what is
    read back after writing ``s``. Bad input raises :class:`DataError` naming the snapshot and the problem.
    """
    p = _validated(snap)
    edges = pd.DataFrame({"src": p.syms[p.e_src], "dst": p.syms[p.e_dst], "rho": p.e_rho}, columns=EDGE_COLUMNS)
    leads = pd.DataFrame({"src": p.syms[p.l_src], "dst": p.syms[p.l_dst], "lag": p.l_lag, "rho": p.l_rho},
                         columns=LEAD_COLUMNS)
    return GraphSnapshot(as_of=p.as_of, window=p.window, method=p.method, assets=p.assets, edges=edges,
                         leads=leads, communities=p.communities)


def _validated(snap: GraphSnapshot) -> _Parts:
    """Validate a snapshot (see :func:`canonical_snapshot`) into sorted arrays."""
    if not isinstance(snap, GraphSnapshot):
        raise DataError(f"expected a GraphSnapshot, got {type(snap).__name__}")
    as_of = to_utc(snap.as_of, f"snapshot as_of={snap.as_of}", naive="error")
    where = f"snapshot {snap.method}/{snap.window}/{as_of.isoformat()}"
    if not isinstance(snap.method, str) or not snap.method:
        raise DataError(f"{where}: method must be a non-empty string, got {snap.method!r}")
    if isinstance(snap.window, bool) or not isinstance(snap.window, (int, np.integer)) or int(snap.window) < 1:
        raise DataError(f"{where}: window must be a positive integer (bars), got {snap.window!r}")
    assets = tuple(snap.assets)
    for a in assets:
        split_symbol(a)
    if len(set(assets)) != len(assets):
        dup = sorted({a for a in assets if assets.count(a) > 1})
        raise DataError(f"{where}: duplicate assets {dup}")
    ordered = sorted(assets)
    rank = {a: i for i, a in enumerate(ordered)}
    syms = np.asarray(ordered, dtype=object)
    n = max(len(ordered), 1)

    ec = _columns(snap.edges, EDGE_COLUMNS, f"{where} edges")
    es, ed = _codes(ec["src"], rank, f"{where} edges"), _codes(ec["dst"], rank, f"{where} edges")
    erho = _as_float(ec["rho"], f"{where} edges")
    _check_rho(erho, f"{where} edges")
    if (es >= ed).any():
        i = int(np.argmax(es >= ed))
        raise DataError(f"{where} edges: expected src < dst (undirected edges stored once), "
                        f"got {ec['src'][i]!r} -> {ec['dst'][i]!r}")
    ekey = es * n + ed
    eorder = np.argsort(ekey, kind="stable")
    if len(ekey) and (np.diff(ekey[eorder]) == 0).any():
        raise DataError(f"{where} edges: duplicate (src, dst) pair(s)")

    lc = _columns(snap.leads, LEAD_COLUMNS, f"{where} leads")
    ls, ld = _codes(lc["src"], rank, f"{where} leads"), _codes(lc["dst"], rank, f"{where} leads")
    lrho = _as_float(lc["rho"], f"{where} leads")
    _check_rho(lrho, f"{where} leads")
    lagf = _as_float(lc["lag"], f"{where} leads lag")
    if len(lagf) and (~np.isfinite(lagf) | (lagf != np.round(lagf)) | (lagf < 1)).any():
        raise DataError(f"{where} leads: lag must be integers >= 1 (bars), got {sorted(set(lagf.tolist()))[:5]}")
    lag = lagf.astype(np.int64)
    if (ls == ld).any():
        raise DataError(f"{where} leads: self-loop {lc['src'][int(np.argmax(ls == ld))]!r}")
    order = np.lexsort((lag, ld, ls))
    if len(order) > 1:
        same = (np.diff(ls[order]) == 0) & (np.diff(ld[order]) == 0) & (np.diff(lag[order]) == 0)
        if same.any():
            raise DataError(f"{where} leads: duplicate (src, dst, lag) row(s)")

    comm: dict[str, int] = {}
    for sym, cid in sorted(dict(snap.communities).items()):
        if sym not in rank:
            raise DataError(f"{where} communities: {sym!r} is not among the snapshot's assets")
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise DataError(f"{where} communities: id of {sym!r} must be an integer, got {cid!r}")
        comm[sym] = int(cid)
    return _Parts(as_of=as_of, window=int(snap.window), method=snap.method, assets=assets, syms=syms,
                  e_src=es[eorder], e_dst=ed[eorder], e_rho=erho[eorder], l_src=ls[order], l_dst=ld[order],
                  l_lag=lag[order], l_rho=lrho[order], communities=comm)


# ============================================================================================ regimes
def validate_regime_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The regime-state long frame, validated and sorted by ``(scope, datetime)``, datetimes in UTC."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"regime state: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in REGIME_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in REGIME_COLUMNS]
    if missing or extra:
        raise DataError(f"regime state: columns must be {REGIME_COLUMNS}; missing {missing}, unexpected {extra}")
    df = frame[REGIME_COLUMNS].reset_index(drop=True)
    if df["scope"].isna().any() or not df["scope"].map(lambda s: isinstance(s, str) and s != "").all():
        raise DataError("regime state: scope must be 'market' or an asset symbol (non-empty strings)")
    for scope in df["scope"].unique():
        if scope != MARKET_SCOPE:
            try:
                split_symbol(scope)
            except DataError as exc:
                raise DataError(f"regime state: scope {scope!r} is neither 'market' nor a BASE/QUOTE symbol") from exc
    dt = df["datetime"]
    if not isinstance(dt.dtype, pd.DatetimeTZDtype):
        raise DataError(f"regime state: datetime must be tz-aware UTC (dtype datetime64[ns, UTC]), got {dt.dtype}")
    if dt.isna().any():
        raise DataError(f"regime state: {int(dt.isna().sum())} missing datetime(s)")
    df["datetime"] = dt.dt.tz_convert("UTC").dt.as_unit("ns")
    if df["regime"].isna().any() or not df["regime"].map(lambda s: isinstance(s, str) and s != "").all():
        raise DataError("regime state: regime labels must be non-empty strings")
    prob = pd.to_numeric(df["prob"], errors="coerce").astype("float64")
    bad = ~np.isfinite(prob.to_numpy()) | (prob.to_numpy() < 0) | (prob.to_numpy() > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"regime state: prob must be in [0, 1]; row {i} ({df['scope'].iat[i]}, "
                        f"{df['datetime'].iat[i]}) has {df['prob'].iat[i]!r}")
    df["prob"] = prob
    dup = df.duplicated(["scope", "datetime"])
    if dup.any():
        r = df.loc[dup].iloc[0]
        raise DataError(f"regime state: {int(dup.sum())} duplicate (scope, datetime) row(s), first "
                        f"({r['scope']}, {r['datetime']})")
    return df.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)


def regime_transitions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per scope, the regime transition statistics written as ``TRANSITIONS_TO``.

    Over a scope's records ordered by time (labels ``l_0 .. l_n``):

    - ``count(a -> b)`` = number of consecutive record pairs ``(l_k, l_{k+1}) = (a, b)`` (``a == b`` counts
      staying), and ``prob(a -> b) = count(a -> b) / sum_c count(a -> c)`` (a per-record Markov matrix;
      each row sums to 1);
    - a *run* is a maximal stretch of equal labels; it is complete when another label follows. Its duration
      is ``t(first record of the next run) - t(first record of the run)``, in hours.
      ``mean_duration(a -> b)``, ``a != b``: mean duration of the complete ``a`` runs followed by ``b``;
      ``mean_duration(a -> a)``: mean duration of all complete ``a`` runs (NaN in the frame, null in the
      graph, if there are none).

    Uses the whole frame, so it is a summary for exploration, not a point-in-time feature.
    """
    rows: list[list[Any]] = []
    for scope, g in frame.sort_values(["scope", "datetime"], kind="mergesort").groupby("scope", sort=True):
        labels = g["regime"].to_numpy(dtype=object)
        times = g["datetime"].to_numpy(dtype="datetime64[ns]").astype("int64")
        if len(labels) < 2:
            continue
        pairs = pd.DataFrame({"a": labels[:-1], "b": labels[1:]})
        counts = pairs.value_counts().rename("count").reset_index()
        counts["prob"] = counts["count"] / counts.groupby("a")["count"].transform("sum")
        start = np.r_[True, labels[1:] != labels[:-1]]
        run_label = labels[start]
        run_start = times[start]
        dur_h = (run_start[1:] - run_start[:-1]) / 3.6e12  # complete runs only (all but the last)
        runs = pd.DataFrame({"a": run_label[:-1], "b": run_label[1:], "hours": dur_h})
        by_pair = runs.groupby(["a", "b"])["hours"].mean()
        by_label = runs.groupby("a")["hours"].mean()
        for a, b, cnt, prob in counts[["a", "b", "count", "prob"]].itertuples(index=False):
            md = by_label.get(a) if a == b else by_pair.get((a, b))
            rows.append([scope, a, b, int(cnt), float(prob), None if md is None or pd.isna(md) else float(md)])
    out = pd.DataFrame(rows, columns=TRANSITION_COLUMNS)
    return out.sort_values(["scope", "from_regime", "to_regime"], kind="mergesort").reset_index(drop=True)


# ============================================================================================ plumbing
@dataclass
class Step:
    """One Cypher statement executed as one transaction (``write``) or one read."""

    query: str
    params: dict[str, Any] = field(default_factory=dict)
    write: bool = True
    label: str = ""
    rows: int = 0           # rows this step carries, for progress bars and stats
    autocommit: bool = False  # schema statements run outside managed transactions


@dataclass
class StepResult:
    records: list[Any]
    counters: Any


@dataclass
class Progress:
    """Yielded once by an operation that wants a progress bar over ``total`` rows."""

    total: int
    desc: str


@dataclass(frozen=True)
class WriteStats:
    """What a write did. ``transactions`` counts committed write transactions (one per batch)."""

    snapshots: int = 0
    replaced: int = 0
    edges: int = 0
    leads: int = 0
    communities: int = 0
    memberships: int = 0
    regime_records: int = 0
    transitions: int = 0
    transactions: int = 0
    seconds: float = 0.0
    batch_size: int = 0


Op = Generator[Step | Progress, StepResult, Any]


def _chunks(n: int, size: int) -> Iterable[tuple[int, int]]:
    for i in range(0, n, size):
        yield i, min(n, i + size)


def _counter(counters: Any, name: str) -> int:
    return int(getattr(counters, name, 0) or 0)


def _translate(exc: BaseException, uri: str, user: str, what: str) -> BaseException:
    from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

    if isinstance(exc, AuthError):
        return GraphAuthError(uri, user, exc.message or str(exc))
    if isinstance(exc, (ServiceUnavailable, SessionExpired)):
        return GraphUnavailableError(uri, str(exc).splitlines()[0])
    if isinstance(exc, Neo4jError):
        if exc.code and exc.code.endswith("DatabaseNotFound"):
            return GraphStoreError(f"{what}: database not found on {uri}: {exc.message} (set NEO4J_DATABASE "
                                   "or graph.database to an existing database)")
        return GraphStoreError(f"{what} failed on {uri}: [{exc.code}] {exc.message}")
    if isinstance(exc, DriverError):
        return GraphStoreError(f"{what} failed on {uri}: {type(exc).__name__}: {exc}")
    return exc


# ============================================================================================ operations
class _Ops:
    """The store's operations as step generators, shared by the sync and async stores."""

    uri: str
    user: str
    batch_size: int

    # ---------------------------------------------------------------------------------- schema
    def _op_ensure_schema(self) -> Op:
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
                           label="upsert assets")
            else:
                yield Step(C.UPSERT_ASSETS, {"rows": rows[a:b]}, label="upsert assets")
            n_tx += 1
        return n_tx

    def _op_symbols(self) -> Op:
        res = yield Step(C.SYMBOLS, write=False, label="list symbols")
        return [r["symbol"] for r in res.records]

    def _op_check_symbols(self, symbols: Sequence[str]) -> Op:
        wanted = list(dict.fromkeys(symbols))
        res = yield Step(C.SYMBOLS_AMONG, {"symbols": wanted}, write=False, label="check symbols")
        found = {r["symbol"] for r in res.records}
        missing = [s for s in wanted if s not in found]
        if missing:
            available = yield from self._op_symbols()
            raise UnknownSymbolError(missing, where=f"the graph store at {self.uri}", available=available)

    # ---------------------------------------------------------------------------------- snapshots
    def _op_write_snapshots(self, snapshots: Sequence[GraphSnapshot], exchange: str | None,
                            batch_size: int) -> Op:
        t0 = time.perf_counter()
        snaps = [_validated(s) for s in snapshots]
        keys = [snapshot_key(s.as_of, s.method, s.window) for s in snaps]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise DataError(f"write_snapshots: the same (method, window, as_of) given twice: {dup[:3]}")
        if not snaps:
            return WriteStats(batch_size=batch_size)
        symbols = sorted(set().union(*(s.assets for s in snaps)))
        sym_index = {s: i for i, s in enumerate(symbols)}

        # flatten every snapshot's parts into columnar arrays with a snapshot index
        e_src, e_dst, e_rho, e_snap = [], [], [], []
        l_src, l_dst, l_rho, l_lag, l_snap = [], [], [], [], []
        communities: list[tuple[str, int, int, list[int]]] = []  # key, id, snap, member symbol indices
        for k, s in enumerate(snaps):
            to_global = np.fromiter((sym_index[x] for x in s.syms), dtype=np.int64, count=len(s.syms))
            if len(s.e_src):
                e_src.append(to_global[s.e_src])
                e_dst.append(to_global[s.e_dst])
                e_rho.append(s.e_rho)
                e_snap.append(np.full(len(s.e_src), k, np.int64))
            if len(s.l_src):
                l_src.append(to_global[s.l_src])
                l_dst.append(to_global[s.l_dst])
                l_rho.append(s.l_rho)
                l_lag.append(s.l_lag)
                l_snap.append(np.full(len(s.l_src), k, np.int64))
            groups: dict[int, list[int]] = {}
            for sym in s.assets:  # members in the snapshot's asset order
                if sym in s.communities:
                    groups.setdefault(s.communities[sym], []).append(sym_index[sym])
            for cid in sorted(groups):
                communities.append((f"{keys[k]}|{cid}", cid, k, groups[cid]))

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        E = (cat(e_src, np.int64), cat(e_dst, np.int64), cat(e_rho, np.float64), cat(e_snap, np.int64))
        L = (cat(l_src, np.int64), cat(l_dst, np.int64), cat(l_rho, np.float64), cat(l_lag, np.int64),
             cat(l_snap, np.int64))
        n_members = sum(len(c[3]) for c in communities)
        yield Progress(total=len(E[0]) + len(L[0]) + n_members, desc="graph write")

        n_tx = yield from self._op_upsert_assets(symbols, exchange, batch_size)

        # replace: delete whatever is stored under the same keys (complete or a crashed partial write)
        res = yield Step(C.EXISTING_SNAPSHOTS, {"keys": keys}, write=False, label="existing snapshots")
        existing = {r["key"] for r in res.records}
        limit = max(batch_size, 10_000)
        for k, s in enumerate(snaps):
            if keys[k] not in existing:
                continue
            params = {"as_of": s.as_of, "method": s.method, "window": s.window, "limit": limit}
            for stmt, what in ((C.DELETE_SNAPSHOT_EDGES, "edges"), (C.DELETE_SNAPSHOT_LEADS, "leads"),
                               (C.DELETE_SNAPSHOT_COMMUNITIES, "communities")):
                while True:
                    r = yield Step(stmt, params, label=f"replace snapshot {keys[k]}: delete {what}")
                    n_tx += 1
                    if int(r.records[0]["n"]) < limit:
                        break
            yield Step(C.DELETE_SNAPSHOT_NODE, {"key": keys[k]}, label=f"replace snapshot {keys[k]}")
            n_tx += 1

        meta_rows = [{"key": keys[k], "as_of": s.as_of, "method": s.method, "window": s.window,
                      "assets": list(s.assets), "n_edges": len(s.e_src), "n_leads": len(s.l_src)}
                     for k, s in enumerate(snaps)]
        for a, b in _chunks(len(meta_rows), batch_size):
            yield Step(C.CREATE_SNAPSHOTS, {"rows": meta_rows[a:b]}, label="create snapshot nodes")
            n_tx += 1

        def snap_params(snap_idx: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
            uniq, local = np.unique(snap_idx, return_inverse=True)
            metas = [{"as_of": snaps[i].as_of, "method": snaps[i].method, "window": snaps[i].window}
                     for i in uniq.tolist()]
            return local, metas

        def sym_params(*idx: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
            uniq, inv = np.unique(np.concatenate(idx), return_inverse=True)
            parts = np.split(inv, np.cumsum([len(x) for x in idx])[:-1])
            return parts, [symbols[i] for i in uniq.tolist()]

        for a, b in _chunks(len(E[0]), batch_size):
            (src, dst), syms = sym_params(E[0][a:b], E[1][a:b])
            local, metas = snap_params(E[3][a:b])
            rows = [list(r) for r in zip(src.tolist(), dst.tolist(), E[2][a:b].tolist(), local.tolist())]
            r = yield Step(C.CREATE_EDGES, {"syms": syms, "snaps": metas, "rows": rows},
                           label="create CORRELATED_WITH", rows=b - a)
            n_tx += 1
            self._check_created(r, "relationships_created", b - a, "CORRELATED_WITH edges")

        for a, b in _chunks(len(L[0]), batch_size):
            (src, dst), syms = sym_params(L[0][a:b], L[1][a:b])
            local, metas = snap_params(L[4][a:b])
            rows = [list(r) for r in zip(src.tolist(), dst.tolist(), L[2][a:b].tolist(), L[3][a:b].tolist(),
                                         local.tolist())]
            r = yield Step(C.CREATE_LEADS, {"syms": syms, "snaps": metas, "rows": rows},
                           label="create LEADS", rows=b - a)
            n_tx += 1
            self._check_created(r, "relationships_created", b - a, "LEADS edges")

        # communities: batches of whole communities holding about batch_size memberships each
        i = 0
        while i < len(communities):
            j, members = i, 0
            while j < len(communities) and (j == i or members + len(communities[j][3]) <= batch_size):
                members += len(communities[j][3])
                j += 1
            chunk = communities[i:j]
            member_idx = [np.asarray(c[3], np.int64) for c in chunk]
            parts, syms = sym_params(*member_idx)
            local, metas = snap_params(np.asarray([c[2] for c in chunk], np.int64))
            rows = [[c[0], c[1], int(local[n]), parts[n].tolist()] for n, c in enumerate(chunk)]
            r = yield Step(C.CREATE_COMMUNITIES, {"syms": syms, "snaps": metas, "rows": rows},
                           label="create communities", rows=members)
            n_tx += 1
            self._check_created(r, "relationships_created", members, "MEMBER_OF memberships")
            self._check_created(r, "nodes_created", len(chunk), "Community nodes")
            i = j

        for a, b in _chunks(len(keys), batch_size):
            yield Step(C.COMPLETE_SNAPSHOTS, {"keys": keys[a:b]}, label="mark snapshots complete")
            n_tx += 1
        return WriteStats(snapshots=len(snaps), replaced=len(existing), edges=len(E[0]), leads=len(L[0]),
                          communities=len(communities), memberships=n_members, transactions=n_tx,
                          seconds=time.perf_counter() - t0, batch_size=batch_size)

    def _check_created(self, res: StepResult, counter: str, expected: int, what: str) -> None:
        got = _counter(res.counters, counter)
        if got != expected:
            raise GraphStoreError(f"write to {self.uri}: expected {expected} {what} in this batch, the server "
                                  f"reports {got} (an Asset node is missing or a concurrent delete ran)")

    def _op_read_snapshots(self, symbols: Sequence[str] | None, start: Any, end: Any,
                           method: str | None, window: int | None) -> Op:
        params: dict[str, Any] = {}
        flags = {"start": start is not None, "end": end is not None, "method": method is not None,
                 "window": window is not None}
        if start is not None:
            params["start"] = to_utc(start, "read_snapshots start", naive="error")
        if end is not None:
            params["end"] = to_utc(end, "read_snapshots end", naive="error")
        if method is not None:
            params["method"] = method
        if window is not None:
            params["window"] = int(window)
        symset: set[str] | None = None
        if symbols is not None:
            symbols = list(symbols)
            yield from self._op_check_symbols(symbols)
            symset = set(symbols)
            params["symbols"] = symbols
        res = yield Step(C.read_snapshots_query(**flags), params, write=False, label="read snapshots")
        metas = [((r["t_s"], r["t_ns"]), r["method"], int(r["window"]), list(r["assets"])) for r in res.records]
        if not metas:
            return []
        has_syms = symset is not None
        # Few snapshots: fetch their parts by as_of (index lookups, chunks of _TIMES_PER_QUERY).
        # Most of the history: one range scan per part is cheaper (see cypher.read_edges_query).
        res = yield Step(C.COUNT_SNAPSHOTS, write=False, label="count snapshots")
        stored = int(res.records[0]["n"])
        times = sorted({t for t, _, _, _ in metas})
        by_times = len(times) * _SCAN_FRACTION < stored
        chunks = ([[_epoch_ts(*t) for t in times[i:i + _TIMES_PER_QUERY]]
                   for i in range(0, len(times), _TIMES_PER_QUERY)] if by_times else [None])
        parts: dict[str, dict[tuple[Any, str, int], list[list[Any]]]] = {"edges": {}, "leads": {}, "communities": {}}
        for what, q in (("edges", C.read_edges_query(has_syms, by_times, **flags)),
                        ("leads", C.read_leads_query(has_syms, by_times, **flags)),
                        ("communities", C.read_communities_query(has_syms, by_times, **flags))):
            for chunk in chunks:
                p = params if chunk is None else {**params, "ts": chunk}
                res = yield Step(q, p, write=False, label=f"read {what}")
                for r in res.records:
                    parts[what][((r["t_s"], r["t_ns"]), r["method"], int(r["window"]))] = r["rows"]
        out: list[GraphSnapshot] = []
        for t, m, w, assets in metas:
            key = (t, m, w)
            as_of = _epoch_ts(*t)
            if symset is not None:
                assets = [a for a in assets if a in symset]
            comm = dict(parts["communities"].get(key, []))
            out.append(_normalise_read(as_of, m, w, assets, parts["edges"].get(key, []),
                                       parts["leads"].get(key, []), comm))
        return out

    def _op_list_snapshots(self, end: Any, method: str | None, window: int | None) -> Op:
        extra, params = "", {}
        if end is not None:
            extra += " AND s.as_of <= $end"
            params["end"] = to_utc(end, "list_snapshots end", naive="error")
        if method is not None:
            extra += " AND s.method = $method"
            params["method"] = method
        if window is not None:
            extra += " AND s.window = $window"
            params["window"] = int(window)
        res = yield Step(C.LIST_SNAPSHOTS.format(extra=extra), params, write=False, label="list snapshots")
        recs = res.records
        return pd.DataFrame({
            "as_of": _epoch_index([r["t_s"] for r in recs], [r["t_ns"] for r in recs]),
            "method": pd.Series([r["method"] for r in recs], dtype=object),
            "window": np.asarray([r["window"] for r in recs], dtype=np.int64),
            "n_assets": np.asarray([r["n_assets"] for r in recs], dtype=np.int64),
            "n_edges": np.asarray([r["n_edges"] for r in recs], dtype=np.int64),
            "n_leads": np.asarray([r["n_leads"] for r in recs], dtype=np.int64),
        })

    # ---------------------------------------------------------------------------------- regimes
    def _op_read_regime_records(self, scopes: Sequence[str] | None, start: Any, end: Any,
                                with_to: bool) -> Op:
        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = to_utc(start, "read_regimes start", naive="error")
        if end is not None:
            params["end"] = to_utc(end, "read_regimes end", naive="error")
        wanted = None if scopes is None else list(dict.fromkeys(scopes))
        kinds = ("market", "asset")
        if wanted is not None:
            kinds = tuple(k for k, present in (("market", MARKET_SCOPE in wanted),
                                               ("asset", any(s != MARKET_SCOPE for s in wanted))) if present)
        scope_col: list[str] = []
        recs: list[list[Any]] = []
        for kind in kinds:
            p = dict(params)
            if wanted is not None:
                p["scopes"] = [s for s in wanted if (s == MARKET_SCOPE) == (kind == "market")]
            q = C.read_regime_records_query(kind, start=start is not None, end=end is not None,
                                            scopes=wanted is not None, with_to=with_to)
            res = yield Step(q, p, write=False, label=f"read {kind} regimes")
            for r in res.records:
                scope_col.extend([r["scope"]] * len(r["rows"]))
                recs.extend(r["rows"])
        if not recs:
            df = empty_regime_state()
            if with_to:
                df["to"] = pd.Series(dtype="datetime64[ns, UTC]")
            return df
        cols = list(zip(*recs))
        df = pd.DataFrame({
            "scope": pd.Series(scope_col, dtype=object).astype(str),
            "datetime": _epoch_index(cols[0], cols[1]),
            "regime": pd.Series(cols[2], dtype=object).astype(str),
            "prob": np.asarray(cols[3], dtype=np.float64),
        })
        if with_to:
            last = np.asarray([x is None for x in cols[4]])
            to_s = np.where(last, 0, np.asarray([0 if x is None else x for x in cols[4]], dtype=np.int64))
            to_ns = np.asarray([0 if x is None else x for x in cols[5]], dtype=np.int64)
            to = pd.Series(_epoch_index(to_s, to_ns))
            df["to"] = to.where(~last, pd.NaT)
        return df.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)

    def _op_check_scopes(self, scopes: Sequence[str]) -> Op:
        assets = [s for s in scopes if s != MARKET_SCOPE]
        missing: list[str] = []
        if MARKET_SCOPE in scopes:
            res = yield Step(C.MARKET_EXISTS, {"id": MARKET_SCOPE}, write=False, label="check market scope")
            if int(res.records[0]["n"]) == 0:
                missing.append(MARKET_SCOPE)
        if assets:
            res = yield Step(C.SYMBOLS_AMONG, {"symbols": assets}, write=False, label="check scopes")
            found = {r["symbol"] for r in res.records}
            missing += [s for s in assets if s not in found]
        if missing:
            available = yield from self._op_symbols()
            raise UnknownSymbolError(missing, where=f"the regime scopes of the graph store at {self.uri}",
                                     available=available)

    def _op_read_regimes(self, scopes: Sequence[str] | str | None, start: Any, end: Any) -> Op:
        if isinstance(scopes, str):
            scopes = [scopes]
        if scopes is not None:
            yield from self._op_check_scopes(list(scopes))
        return (yield from self._op_read_regime_records(scopes, start, end, with_to=False))

    def _op_write_regimes(self, frame: pd.DataFrame, batch_size: int) -> Op:
        t0 = time.perf_counter()
        df = validate_regime_frame(frame)
        if df.empty:
            return WriteStats(batch_size=batch_size)
        scopes = list(df["scope"].unique())
        yield Progress(total=len(df), desc="regime write")
        asset_scopes = [s for s in scopes if s != MARKET_SCOPE]
        n_tx = 0
        if asset_scopes:
            n_tx += yield from self._op_upsert_assets(asset_scopes, None, batch_size)
        if MARKET_SCOPE in scopes:
            yield Step(C.ENSURE_MARKET, {"id": MARKET_SCOPE}, label="ensure market node")
            n_tx += 1
        names = df[["scope", "regime"]].drop_duplicates()
        rrows = [[regime_key(s, n), s, n] for s, n in names.itertuples(index=False)]
        for a, b in _chunks(len(rrows), batch_size):
            yield Step(C.ENSURE_REGIMES, {"rows": rrows[a:b]}, label="ensure regime nodes")
            n_tx += 1
        stored = yield from self._op_read_regime_records(scopes, None, None, with_to=True)
        limit = max(batch_size, 10_000)
        n_records = n_trans = 0
        for scope in scopes:
            kind = "market" if scope == MARKET_SCOPE else "asset"
            new = df[df["scope"] == scope]
            old = stored[stored["scope"] == scope]
            combined = pd.concat([old[REGIME_COLUMNS], new], ignore_index=True)
            combined = combined.drop_duplicates(["datetime"], keep="last").sort_values("datetime", kind="mergesort")
            nxt = combined["datetime"].shift(-1)
            combined = combined.assign(to=nxt)
            if old.empty:
                to_create = combined
            elif new["datetime"].min() > old["datetime"].max():
                # append: close the last stored record's interval, then add the new records
                last = old["datetime"].max()
                r = yield Step(C.set_regime_to_query(kind),
                               {"scope": scope, "from": last, "to": new["datetime"].min()},
                               label=f"regimes {scope}: close last interval")
                n_tx += 1
                if int(r.records[0]["n"]) != 1:
                    raise GraphStoreError(f"regimes {scope} on {self.uri}: expected one record at {last}, "
                                          f"found {r.records[0]['n']}")
                to_create = combined[combined["datetime"] >= new["datetime"].min()]
            else:
                while True:
                    r = yield Step(C.delete_in_regime_query(kind), {"scope": scope, "limit": limit},
                                   label=f"regimes {scope}: replace")
                    n_tx += 1
                    if int(r.records[0]["n"]) < limit:
                        break
                to_create = combined
            rows = [[regime_key(scope, name), frm, (None if pd.isna(to) else to), float(prob)]
                    for frm, name, prob, to in to_create[["datetime", "regime", "prob", "to"]].itertuples(index=False)]
            for a, b in _chunks(len(rows), batch_size):
                r = yield Step(C.create_in_regime_query(kind), {"scope": scope, "rows": rows[a:b]},
                               label=f"regimes {scope}: create IN_REGIME", rows=b - a)
                n_tx += 1
                self._check_created(r, "relationships_created", b - a, f"IN_REGIME records of {scope}")
            n_records += len(rows)
            trans = regime_transitions(combined[REGIME_COLUMNS])
            yield Step(C.DELETE_TRANSITIONS, {"scope": scope}, label=f"regimes {scope}: delete transitions")
            n_tx += 1
            trows = [[regime_key(scope, a), regime_key(scope, b), c, p, md]
                     for a, b, c, p, md in trans[["from_regime", "to_regime", "count", "prob", "mean_duration"]]
                     .itertuples(index=False)]
            trows = [[*r[:4], None if r[4] is None or pd.isna(r[4]) else float(r[4])] for r in trows]
            if trows:
                r = yield Step(C.CREATE_TRANSITIONS, {"rows": trows}, label=f"regimes {scope}: transitions")
                n_tx += 1
                self._check_created(r, "relationships_created", len(trows), f"TRANSITIONS_TO of {scope}")
            n_trans += len(trows)
        return WriteStats(regime_records=n_records, transitions=n_trans, transactions=n_tx,
                          seconds=time.perf_counter() - t0, batch_size=batch_size)

    def _op_read_transitions(self, scopes: Sequence[str] | str | None) -> Op:
        if isinstance(scopes, str):
            scopes = [scopes]
        params: dict[str, Any] = {}
        where = ""
        if scopes is not None:
            yield from self._op_check_scopes(list(scopes))
            where, params = "WHERE a.scope IN $scopes", {"scopes": list(scopes)}
        res = yield Step(C.READ_TRANSITIONS.format(where=where), params, write=False, label="read transitions")
        rows = [[r["scope"], r["from_regime"], r["to_regime"], int(r["count"]), float(r["prob"]),
                 None if r["mean_duration"] is None else float(r["mean_duration"])] for r in res.records]
        return pd.DataFrame(rows, columns=TRANSITION_COLUMNS)

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


def _normalise_read(as_of: pd.Timestamp, method: str, window: int, assets: list[str], edge_rows: list[list[Any]],
                    lead_rows: list[list[Any]], communities: dict[str, int]) -> GraphSnapshot:
    """A snapshot as read back, in :func:`canonical_snapshot` form (same sort order and dtypes)."""
    if edge_rows:
        src, dst, rho = zip(*edge_rows)
        order = sorted(range(len(src)), key=lambda i: (src[i], dst[i]))
        edges = pd.DataFrame({"src": np.asarray([src[i] for i in order], dtype=object),
                              "dst": np.asarray([dst[i] for i in order], dtype=object),
                              "rho": np.asarray([rho[i] for i in order], dtype=np.float64)}, columns=EDGE_COLUMNS)
    else:
        edges = pd.DataFrame({"src": np.empty(0, object), "dst": np.empty(0, object),
                              "rho": np.empty(0, np.float64)}, columns=EDGE_COLUMNS)
    if lead_rows:
        src, dst, lag, rho = zip(*lead_rows)
        order = sorted(range(len(src)), key=lambda i: (src[i], dst[i], lag[i]))
        leads = pd.DataFrame({"src": np.asarray([src[i] for i in order], dtype=object),
                              "dst": np.asarray([dst[i] for i in order], dtype=object),
                              "lag": np.asarray([lag[i] for i in order], dtype=np.int64),
                              "rho": np.asarray([rho[i] for i in order], dtype=np.float64)}, columns=LEAD_COLUMNS)
    else:
        leads = pd.DataFrame({"src": np.empty(0, object), "dst": np.empty(0, object), "lag": np.empty(0, np.int64),
                              "rho": np.empty(0, np.float64)}, columns=LEAD_COLUMNS)
    comm = {k: int(v) for k, v in sorted(communities.items())}
    return GraphSnapshot(as_of=as_of, window=int(window), method=method, assets=tuple(assets), edges=edges,
                         leads=leads, communities=comm)


# ============================================================================================ connection
@dataclass(frozen=True)
class _Target:
    uri: str
    user: str
    password: str | None
    database: str | None
    embedded: Any  # EmbeddedGraphServer | None


def _resolve_target(settings: GraphSettings | None, data_dir: str | Path | None) -> _Target:
    s = settings if settings is not None else settings_from_env()
    if s.uri is None:
        from graphwiz_trader.graph.server import shared_embedded_server

        server = shared_embedded_server(data_dir or s.data_dir, heap=s.embedded_heap)
        return _Target(server.uri, server.user, server.password, s.database or server.database, server)
    password = s.password.get_secret_value() if s.password is not None else None
    return _Target(s.uri, s.user, password, s.database, None)


_DRIVER_CONFIG = {"connection_timeout": 10.0, "max_transaction_retry_time": 15.0, "user_agent": "graphwiz_trader"}


class _StoreBase(_Ops):
    def __init__(self, driver: Any, target: _Target, batch_size: int, server_agent: str) -> None:
        if batch_size < 1:
            raise GraphStoreError(f"batch_size must be >= 1, got {batch_size}")
        self._driver = driver
        self.uri = target.uri
        self.user = target.user
        self.database = target.database
        self.embedded_server = target.embedded
        self.batch_size = int(batch_size)
        self.server_agent = server_agent
        self.server_kind = C.server_kind(server_agent)


    def _translate_failure(self, exc: Exception, step: Any) -> BaseException:
        """The driver error as the store's error (naming the URI, user and the failing step), or ``exc``."""
        what = step.label if isinstance(step, Step) else "graph operation"
        return _translate(exc, self.uri, self.user, what)
    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri}, database={self.database!r}, server={self.server_agent!r})"

    def _bs(self, batch_size: int | None) -> int:
        bs = self.batch_size if batch_size is None else int(batch_size)
        if bs < 1:
            raise GraphStoreError(f"batch_size must be >= 1, got {bs}")
        return bs


# ============================================================================================ sync store
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

        target = _resolve_target(settings, data_dir)
        bs = batch_size or (settings.batch_size if settings is not None else GraphSettings().batch_size)
        auth = (target.user, target.password) if target.password is not None else None
        try:
            driver = GraphDatabase.driver(target.uri, auth=auth, **_DRIVER_CONFIG)
        except ValueError as exc:
            raise GraphStoreError(f"invalid graph URI {target.uri!r}: {exc}") from exc
        try:
            driver.verify_connectivity()
            agent = driver.get_server_info().agent
            with driver.session(database=target.database) as session:
                session.run("RETURN 1 AS ok").consume()
        except Exception as exc:
            driver.close()
            raise _translate(exc, target.uri, target.user, "connect") from exc
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
        from tqdm.auto import tqdm

        bar = None
        step: Any = None
        try:
            with self._driver.session(database=self.database) as session:
                try:
                    step = next(op)
                    while True:
                        if isinstance(step, Progress):
                            bar = tqdm(total=step.total, desc=step.desc, unit="row", disable=not progress)
                            step = op.send(None)  # type: ignore[arg-type]
                            continue
                        res = self._execute(session, step)
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
            raise translated from exc
        finally:
            if bar is not None:
                bar.close()

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

    def write_snapshots(self, snapshots: Sequence[GraphSnapshot], *, exchange: str | None = None,
                        batch_size: int | None = None, progress: bool = False) -> WriteStats:
        """Write snapshots (replacing any stored under the same ``(method, window, as_of)``)."""
        return self._run(self._op_write_snapshots(list(snapshots), exchange, self._bs(batch_size)), progress)

    def read_snapshots(self, symbols: Sequence[str] | None = None, start: Any = None, end: Any = None, *,
                       method: str | None = None, window: int | None = None) -> list[GraphSnapshot]:
        """Snapshots with ``start <= as_of <= end`` (UTC; either bound optional), oldest first.

        With ``symbols``, each snapshot is restricted to them (assets, edges and leads with both ends among
        them, their community ids); a symbol absent from the store raises :class:`UnknownSymbolError`.
        """
        return self._run(self._op_read_snapshots(symbols, start, end, method, window))

    def list_snapshots(self, end: Any = None, *, method: str | None = None,
                       window: int | None = None) -> pd.DataFrame:
        """Catalog of complete snapshots (``as_of, method, window, n_assets, n_edges, n_leads``) with as_of <= end."""
        return self._run(self._op_list_snapshots(end, method, window))

    def write_regimes(self, frame: pd.DataFrame, *, batch_size: int | None = None,
                      progress: bool = False) -> WriteStats:
        """Upsert regime-state records (``scope, datetime, regime, prob``) and recompute ``TRANSITIONS_TO``.

        A record at an existing ``(scope, datetime)`` replaces it; each record's ``to`` is the next record's
        time of its scope (null for the last).
        """
        return self._run(self._op_write_regimes(frame, self._bs(batch_size)), progress)

    def read_regimes(self, scopes: Sequence[str] | str | None = None, end: Any = None, start: Any = None
                     ) -> pd.DataFrame:
        """Regime records with ``start <= datetime <= end`` as the long frame of ``snapshot.REGIME_COLUMNS``."""
        return self._run(self._op_read_regimes(scopes, start, end))

    def read_transitions(self, scopes: Sequence[str] | str | None = None) -> pd.DataFrame:
        """``TRANSITIONS_TO`` statistics (see :func:`regime_transitions`)."""
        return self._run(self._op_read_transitions(scopes))

    def clear(self, *, batch_size: int | None = None) -> int:
        """Delete every graphwiz node and relationship (labels in ``cypher.NODE_LABELS``); returns #nodes."""
        return self._run(self._op_clear(self._bs(batch_size)))

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only Cypher query (exploration) and return its rows as dicts."""
        return self._run(_single_read(cypher, params))


def _single_read(cypher: str, params: dict[str, Any]) -> Op:
    res = yield Step(cypher, params, write=False, label="query")
    return [r.data() for r in res.records]


# ============================================================================================ async store
class AsyncGraphStore(_StoreBase):
    """The asyncio twin of :class:`GraphStore` (``neo4j.AsyncGraphDatabase``); same methods, awaitable."""

    @classmethod
    async def connect(cls, settings: GraphSettings | None = None, *, data_dir: str | Path | None = None,
                      batch_size: int | None = None, ensure_schema: bool = True) -> "AsyncGraphStore":
        from neo4j import AsyncGraphDatabase

        # Starting the embedded server blocks (subprocess + readiness polling): do it off the event loop.
        target = await asyncio.to_thread(_resolve_target, settings, data_dir)
        bs = batch_size or (settings.batch_size if settings is not None else GraphSettings().batch_size)
        auth = (target.user, target.password) if target.password is not None else None
        try:
            driver = AsyncGraphDatabase.driver(target.uri, auth=auth, **_DRIVER_CONFIG)
        except ValueError as exc:
            raise GraphStoreError(f"invalid graph URI {target.uri!r}: {exc}") from exc
        try:
            await driver.verify_connectivity()
            agent = (await driver.get_server_info()).agent
            async with driver.session(database=target.database) as session:
                await (await session.run("RETURN 1 AS ok")).consume()
        except Exception as exc:
            await driver.close()
            raise _translate(exc, target.uri, target.user, "connect") from exc
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
        from tqdm.auto import tqdm

        bar = None
        step: Any = None
        try:
            async with self._driver.session(database=self.database) as session:
                try:
                    step = next(op)
                    while True:
                        if isinstance(step, Progress):
                            bar = tqdm(total=step.total, desc=step.desc, unit="row", disable=not progress)
                            step = op.send(None)  # type: ignore[arg-type]
                            continue
                        res = await self._execute(session, step)
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
            raise translated from exc
        finally:
            if bar is not None:
                bar.close()

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

    async def write_snapshots(self, snapshots: Sequence[GraphSnapshot], *, exchange: str | None = None,
                              batch_size: int | None = None, progress: bool = False) -> WriteStats:
        return await self._run(self._op_write_snapshots(list(snapshots), exchange, self._bs(batch_size)), progress)

    async def read_snapshots(self, symbols: Sequence[str] | None = None, start: Any = None, end: Any = None, *,
                             method: str | None = None, window: int | None = None) -> list[GraphSnapshot]:
        return await self._run(self._op_read_snapshots(symbols, start, end, method, window))

    async def list_snapshots(self, end: Any = None, *, method: str | None = None,
                             window: int | None = None) -> pd.DataFrame:
        return await self._run(self._op_list_snapshots(end, method, window))

    async def write_regimes(self, frame: pd.DataFrame, *, batch_size: int | None = None,
                            progress: bool = False) -> WriteStats:
        return await self._run(self._op_write_regimes(frame, self._bs(batch_size)), progress)

    async def read_regimes(self, scopes: Sequence[str] | str | None = None, end: Any = None,
                           start: Any = None) -> pd.DataFrame:
        return await self._run(self._op_read_regimes(scopes, start, end))

    async def read_transitions(self, scopes: Sequence[str] | str | None = None) -> pd.DataFrame:
        return await self._run(self._op_read_transitions(scopes))

    async def clear(self, *, batch_size: int | None = None) -> int:
        return await self._run(self._op_clear(self._bs(batch_size)))

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return await self._run(_single_read(cypher, params))
