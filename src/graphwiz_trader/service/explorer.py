"""The graph explorer's server side: builds, snapshot times, the correlation graph as of a time (with a
server-side layout), and a read-only Cypher box.

Everything reads the service's graph store (``state.graph_store``, a sync
:class:`~graphwiz_trader.graph.store.GraphStore`) and names a build (``state.graph_build()`` by default).

Read-only Cypher, three locks:

1. :func:`check_read_only` refuses, before anything is sent, a query with a write clause (``CREATE``,
   ``MERGE``, ``DELETE``, ``DETACH``, ``SET``, ``REMOVE``, ``DROP``, ``LOAD CSV``, ``FOREACH``), a schema or
   admin command (``ALTER``, ``GRANT``, ``DENY``, ``REVOKE``, ``START``/``STOP DATABASE``, ``TERMINATE``), a
   ``CALL`` of any procedure outside a short list of read-only catalogue procedures, or more than one
   statement. Keywords are looked for outside string literals, comments and backticked names.
2. The query then runs in a session opened with ``default_access_mode=READ_ACCESS`` inside a managed read
   transaction (``execute_read``), with a server-side transaction timeout; rows are capped at ``max_rows``
   and reading stops at ``timeout_s`` on the client too. Neo4j refuses writes in a read transaction;
   the embedded ArcadeDB server does not (a ``CREATE`` in a READ session was committed when tried), hence:
3. A query whose result summary reports any update raises inside the transaction function, so the driver
   rolls the transaction back (checked on ArcadeDB: the node was gone afterwards).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.graph.store_errors import GraphStoreError

LAYOUT_SEED = 7
_CACHE_SIZE = 64

WRITE_CLAUSES: tuple[str, ...] = ("CREATE", "MERGE", "DELETE", "DETACH", "SET", "REMOVE", "DROP", "FOREACH",
                                  "ALTER", "GRANT", "DENY", "REVOKE", "TERMINATE", "RENAME")
READ_PROCEDURES: frozenset[str] = frozenset({
    "db.labels", "db.relationshiptypes", "db.propertykeys", "db.indexes", "db.constraints",
    "db.schema.visualization", "db.schema.nodetypeproperties", "db.schema.reltypeproperties", "dbms.components",
})
_STRIP_RE = re.compile(r"""//[^\n]*|/\*.*?\*/|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|`[^`]*`""", re.DOTALL)
_WORD = r"(?<![\w.$]){}(?![\w])"
_LOAD_CSV_RE = re.compile(r"(?<![\w.$])LOAD\s+CSV\b", re.IGNORECASE)
_DATABASE_CMD_RE = re.compile(r"(?<![\w.$])(START|STOP)\s+DATABASE\b", re.IGNORECASE)
_CALL_RE = re.compile(r"(?<![\w.$])CALL\s*(\{|[A-Za-z_][\w.]*)", re.IGNORECASE)


class CypherRefused(GraphwizError):
    """A Cypher query the explorer will not run (it writes, or calls a procedure that may write)."""


class ExplorerError(GraphwizError):
    """The explorer cannot answer: no graph store (HTTP 503), no such build or snapshot (404), a bad id (422)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def _code_only(query: str) -> str:
    """The query with comments, string literals and backticked names blanked out."""
    return _STRIP_RE.sub(" ", query)


def check_read_only(query: str) -> None:
    """Refuse a query that could write (see the module docstring).

    Raises
    ------
    CypherRefused
        Naming the clause or procedure found.
    """
    code = _code_only(query)
    if ";" in code.strip().rstrip(";"):
        raise CypherRefused("only one Cypher statement per request (found ';' between statements)")
    found = [w for w in WRITE_CLAUSES if re.search(_WORD.format(w), code, re.IGNORECASE)]
    if _LOAD_CSV_RE.search(code):
        found.append("LOAD CSV")
    if _DATABASE_CMD_RE.search(code):
        found.append("START/STOP DATABASE")
    for m in _CALL_RE.finditer(code):
        target = m.group(1)
        if target != "{" and target.lower() not in READ_PROCEDURES:
            found.append(f"CALL {target}")
    if found:
        raise CypherRefused(f"the Cypher box is read-only: refused {', '.join(dict.fromkeys(found))}. "
                            "Writes (CREATE, MERGE, DELETE, DETACH, SET, REMOVE, DROP, LOAD CSV, FOREACH) and "
                            "procedures other than " + ", ".join(sorted(READ_PROCEDURES)) + " are not allowed")


def _record_value(v: Any) -> Any:
    """A driver value as plain data: nodes and relationships as their properties (plus labels/type)."""
    from neo4j.graph import Node, Path, Relationship

    if isinstance(v, Node):
        return {"_labels": sorted(v.labels), **{k: _record_value(x) for k, x in v.items()}}
    if isinstance(v, Relationship):
        return {"_type": v.type, **{k: _record_value(x) for k, x in v.items()}}
    if isinstance(v, Path):
        return {"_path": [_record_value(n) for n in v.nodes]}
    if isinstance(v, list):
        return [_record_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _record_value(x) for k, x in v.items()}
    if hasattr(v, "iso_format"):
        return v.iso_format()
    return v


class GraphExplorer:
    """Graph payloads and read-only Cypher over the service state's graph store.

    Parameters
    ----------
    state : ServiceState
        Gives ``graph_store`` and ``graph_build()``.
    max_rows : int
        Rows returned by a Cypher query at most (more are cut, ``truncated`` says so).
    timeout_s : float
        Transaction timeout sent to the server, and the client's reading deadline (seconds).
    """

    def __init__(self, state: Any, max_rows: int = 1000, timeout_s: float = 10.0) -> None:
        self.state = state
        self.max_rows = int(max_rows)
        self.timeout_s = float(timeout_s)
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ plumbing
    def _store(self) -> Any:
        store = getattr(self.state, "graph_store", None)
        if store is None:
            raise ExplorerError("this service has no graph store (graph features are off or the store is "
                                "disabled): the explorer has nothing to show", 503)
        return store

    def _build(self, build: str | None) -> str:
        if build:
            if not re.fullmatch(r"[0-9A-Za-z_.:-]{1,128}", build):
                raise ExplorerError(f"build must be a build id (letters, digits, '_.:-'), got {build[:40]!r}", 422)
            return build
        getter = getattr(self.state, "graph_build", None)
        current = getter() if callable(getter) else None
        if current:
            return str(current)
        builds = self._store().list_builds()
        if not len(builds):
            raise ExplorerError("the graph store holds no build yet (run `graphwiz graph build` or wait for the "
                                "service's first graph update)")
        return str(builds["build"].iloc[0])

    # ------------------------------------------------------------------------------------------ reads
    def builds(self) -> dict[str, Any]:
        """``{current, builds: [{build, updated, snapshots, regime_records}]}``, newest first."""
        frame = self._store().list_builds()
        getter = getattr(self.state, "graph_build", None)
        current = getter() if callable(getter) else None
        rows = [{"build": r.build, "updated": r.updated,
                 "snapshots": None if pd.isna(r.n_snapshots) else int(r.n_snapshots),
                 "regime_records": None if pd.isna(r.n_regime_records) else int(r.n_regime_records)}
                for r in frame.itertuples()]
        return {"current": current or (rows[0]["build"] if rows else None), "builds": rows}

    def times(self, build: str | None) -> dict[str, Any]:
        """The build's snapshot times (ISO UTC, oldest first) with their edge counts."""
        b = self._build(build)
        cat = self._store().list_snapshots(b).sort_values("as_of")
        return {"build": b, "times": [t.isoformat() for t in cat["as_of"]],
                "edges": [int(x) for x in cat["n_edges"]]}

    def graph(self, build: str | None, as_of: str | None) -> dict[str, Any]:
        """The build's newest snapshot at or before ``as_of`` (default: its newest), laid out.

        Returns ``{build, as_of, requested, nodes: [{id, x, y, community, degree, strength}], edges:
        [{src, dst, rho}], communities, regime: {name, prob, since} | None}``. Node positions come from
        networkx's spring layout (weights |rho|, seed :data:`LAYOUT_SEED`), so the same snapshot is always
        drawn the same way. ``strength`` is the sum of |rho| over a node's edges.
        """
        b = self._build(build)
        store = self._store()
        cat = store.list_snapshots(b).sort_values("as_of")
        if not len(cat):
            raise ExplorerError(f"build {b} has no snapshots")
        if as_of:
            t = to_utc(as_of, "as_of")
            eligible = cat[cat["as_of"] <= t]
            if not len(eligible):
                raise ExplorerError(f"build {b} has no snapshot at or before {t.isoformat()} (its first is "
                                    f"{cat['as_of'].iloc[0].isoformat()})")
            snap_t = eligible["as_of"].iloc[-1]
        else:
            snap_t = cat["as_of"].iloc[-1]
        key = (b, snap_t.isoformat())
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is None:
            hit = self._payload(store, b, snap_t)
            with self._lock:
                self._cache[key] = hit
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return {**hit, "requested": as_of}

    def _payload(self, store: Any, build: str, t: pd.Timestamp) -> dict[str, Any]:
        snaps = store.read_snapshots(build, start=t, end=t)
        if not snaps:
            raise ExplorerError(f"build {build}: the snapshot at {t.isoformat()} is gone (re-written?); reload")
        snap = snaps[-1]
        g = nx.Graph()
        g.add_nodes_from(snap.assets)
        for src, dst, rho in snap.edges[["src", "dst", "rho"]].itertuples(index=False):
            g.add_edge(str(src), str(dst), weight=abs(float(rho)), rho=float(rho))
        pos = nx.spring_layout(g, weight="weight", seed=LAYOUT_SEED) if len(g) else {}
        nodes = []
        for a in sorted(g.nodes):
            x, y = (float(v) for v in pos.get(a, np.zeros(2)))
            comm = snap.communities.get(a)
            nodes.append({"id": a, "x": x, "y": y, "community": None if comm is None else int(comm),
                          "degree": int(g.degree(a)), "strength": float(g.degree(a, weight="weight"))})
        edges = [{"src": u, "dst": v, "rho": d["rho"]} for u, v, d in sorted(g.edges(data=True))]
        regime = None
        try:
            rec = store.read_regimes(build, "market", end=t)
        except GraphStoreError:
            rec = None
        if rec is not None and len(rec):
            last = rec.sort_values("datetime").iloc[-1]
            regime = {"name": str(last["regime"]), "prob": float(last["prob"]),
                      "since": pd.Timestamp(last["datetime"]).isoformat()}
        return {"build": build, "as_of": t.isoformat(), "method": snap.method, "window": int(snap.window),
                "nodes": nodes, "edges": edges, "communities": len({n["community"] for n in nodes
                                                                    if n["community"] is not None}),
                "regime": regime}

    # ------------------------------------------------------------------------------------------ Cypher
    check_read_only = staticmethod(check_read_only)

    def cypher(self, query: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a read-only query (``$build`` defaults to the service's build).

        Returns ``{columns, rows, truncated, reason, seconds}``; ``truncated`` is true when rows were cut at
        ``max_rows`` (``reason`` ``rows``) or reading stopped at ``timeout_s`` (``reason`` ``time``).

        Raises
        ------
        CypherRefused
            The query could write (checked before a session is opened).
        GraphStoreError
            The server refused or failed the query (its message, credentials stripped).
        """
        check_read_only(query)
        from neo4j import READ_ACCESS, unit_of_work
        from neo4j.exceptions import DriverError, Neo4jError

        store = self._store()
        p = dict(params or {})
        if "build" not in p and "$build" in query:
            p["build"] = self._build(None)
        deadline = time.monotonic() + self.timeout_s
        cap = self.max_rows

        @unit_of_work(timeout=self.timeout_s)
        def work(tx: Any) -> dict[str, Any]:
            result = tx.run(query, p)
            cols = list(result.keys())
            rows: list[dict[str, Any]] = []
            reason = None
            for rec in result:
                if len(rows) >= cap:
                    reason = "rows"
                    break
                rows.append({k: _record_value(rec[k]) for k in cols})
                if time.monotonic() > deadline:
                    reason = "time"
                    break
            counters = result.consume().counters
            if counters.contains_updates or counters.contains_system_updates:
                # raising inside the transaction function rolls the transaction back
                raise CypherRefused("the Cypher box is read-only: the query changed the graph and was rolled back")
            return {"columns": cols, "rows": rows, "truncated": reason is not None, "reason": reason}

        t0 = time.perf_counter()
        driver = store._driver  # the store's own driver: same server, credentials never leave it
        try:
            with driver.session(database=store.database, default_access_mode=READ_ACCESS) as session:
                out = session.execute_read(work)
        except GraphwizError:
            raise
        except (Neo4jError, DriverError) as exc:
            msg = getattr(exc, "message", None) or str(exc)
            raise GraphStoreError(f"the Cypher query failed: {type(exc).__name__}: {msg}") from None
        out["seconds"] = time.perf_counter() - t0
        return out
