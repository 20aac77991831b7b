"""Snapshot operations: batched writes, exact point-in-time reads and the snapshot catalog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.snapshot import GraphSnapshot
from graphwiz_trader.graph.store.frames import _epoch_index, _epoch_ts, _normalise_read, _validated, snapshot_key
from graphwiz_trader.graph.store.ops_base import _BaseOps
from graphwiz_trader.graph.store.steps import Op, Progress, Step, WriteStats, _chunks

_TIMES_PER_QUERY = 32   # as_of values per IN-list read
_SCAN_FRACTION = 4      # read by as_of lookups when fewer than 1/4 of the stored snapshots are wanted


class _SnapshotOps(_BaseOps):
    """Snapshot operations as step generators."""

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

