"""Snapshot operations: a build's snapshots written as one new generation, exact point-in-time reads of the
build's current generation, and its snapshot catalog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.snapshot import GraphSnapshot
from graphwiz_trader.graph.store.frames import (
    _epoch_index,
    _epoch_ts,
    _normalise_read,
    _Parts,
    _validated,
    snapshot_key,
)
from graphwiz_trader.graph.store.generations import (
    Current,
    _GenerationOps,
    _writing,
    build_info_text,
    check_build_id,
    new_generation_id,
)
from graphwiz_trader.graph.store.steps import Op, Progress, Step, WriteStats, _chunks

@dataclass
class _Flat:
    """Every snapshot's parts as columnar arrays; symbols are indices into ``symbols``, snapshots into the list."""

    symbols: list[str]
    edges: tuple[np.ndarray, ...]      # src, dst, rho, snap
    leads: tuple[np.ndarray, ...]      # src, dst, rho, lag, snap
    communities: list[tuple[str, int, int, list[int]]]  # key, id, snap, member symbol indices

    @property
    def n_members(self) -> int:
        return sum(len(c[3]) for c in self.communities)


def _flatten(snaps: list[_Parts], keys: list[str]) -> _Flat:
    symbols = sorted(set().union(*(s.assets for s in snaps))) if snaps else []
    sym_index = {s: i for i, s in enumerate(symbols)}
    e: list[list[np.ndarray]] = [[], [], [], []]
    ld: list[list[np.ndarray]] = [[], [], [], [], []]
    communities: list[tuple[str, int, int, list[int]]] = []
    for k, s in enumerate(snaps):
        to_global = np.fromiter((sym_index[x] for x in s.syms), dtype=np.int64, count=len(s.syms))
        if len(s.e_src):
            for col, v in zip(e, (to_global[s.e_src], to_global[s.e_dst], s.e_rho,
                                  np.full(len(s.e_src), k, np.int64))):
                col.append(v)
        if len(s.l_src):
            for col, v in zip(ld, (to_global[s.l_src], to_global[s.l_dst], s.l_rho, s.l_lag,
                                   np.full(len(s.l_src), k, np.int64))):
                col.append(v)
        groups: dict[int, list[int]] = {}
        for sym in s.assets:  # members in the snapshot's asset order
            if sym in s.communities:
                groups.setdefault(s.communities[sym], []).append(sym_index[sym])
        for cid in sorted(groups):
            communities.append((f"{keys[k]}|{cid}", cid, k, groups[cid]))

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty(0, dtype)

    dt = (np.int64, np.int64, np.float64, np.int64, np.int64)
    return _Flat(symbols, tuple(cat(c, d) for c, d in zip(e, (np.int64, np.int64, np.float64, np.int64))),
                 tuple(cat(c, d) for c, d in zip(ld, dt)), communities)


class _SnapshotOps(_GenerationOps):
    """Snapshot operations as step generators."""

    def _op_write_snapshots(self, snapshots: Sequence[GraphSnapshot], build: str, info: Any,
                            exchange: str | None, batch_size: int) -> Op:
        """All snapshots of ``build`` as a new generation, switched in once complete (see generations.py)."""
        t0 = time.perf_counter()
        build = check_build_id(build)
        snaps = [_validated(s) for s in snapshots]
        gen = new_generation_id(build)
        keys = [snapshot_key(gen, s.as_of, s.method, s.window) for s in snaps]
        if len(set(keys)) != len(keys):
            dup = sorted({k.split("|", 1)[1] for k in keys if keys.count(k) > 1})
            raise DataError(f"write_snapshots: the same (method, window, as_of) given twice: {dup[:3]}")
        flat = _flatten(snaps, keys)
        yield Progress(total=len(flat.edges[0]) + len(flat.leads[0]) + flat.n_members, desc="graph write")
        n_tx = 0
        if flat.symbols:
            n_tx += yield from self._op_upsert_assets(flat.symbols, exchange, batch_size)
        with _writing(gen):
            yield from self._op_begin_generation(build, "snapshots", gen)
            n_tx += 1
            n_tx += yield from self._op_create_snapshot_parts(snaps, keys, flat, build, gen, batch_size)
            old = yield from self._op_switch_generation(build, "snapshots", gen, build_info_text(info), len(snaps),
                                                        flat.symbols)
            n_tx += 1
        replaced = 0
        if old is not None:
            res = yield Step(C.GENERATION_SIZE, {"gen": old}, write=False, label=f"build {build}: previous snapshots")
            replaced = int(res.records[0]["n"] or 0) if res.records else 0
        deleted, tx = yield from self._op_cleanup(build, "snapshots", gen, batch_size)
        return WriteStats(snapshots=len(snaps), replaced=replaced, edges=len(flat.edges[0]),
                          leads=len(flat.leads[0]), communities=len(flat.communities), memberships=flat.n_members,
                          transactions=n_tx + tx, seconds=time.perf_counter() - t0, batch_size=batch_size,
                          build=build, generation=gen, deleted_generations=deleted)

    def _op_create_snapshot_parts(self, snaps: list[_Parts], keys: list[str], flat: _Flat, build: str, gen: str,
                                  batch_size: int) -> Op:
        n_tx = 0
        ids = {"build": build, "gen": gen}
        meta_rows = [{"key": keys[k], "as_of": s.as_of, "method": s.method, "window": s.window,
                      "assets": list(s.assets), "n_edges": len(s.e_src), "n_leads": len(s.l_src)}
                     for k, s in enumerate(snaps)]
        for a, b in _chunks(len(meta_rows), batch_size):
            yield Step(C.CREATE_SNAPSHOTS, {**ids, "rows": meta_rows[a:b]}, label="create snapshot nodes")
            n_tx += 1

        def snap_params(snap_idx: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
            uniq, local = np.unique(snap_idx, return_inverse=True)
            metas = [{"as_of": snaps[i].as_of, "method": snaps[i].method, "window": snaps[i].window}
                     for i in uniq.tolist()]
            return local, metas

        def sym_params(*idx: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
            uniq, inv = np.unique(np.concatenate(idx), return_inverse=True)
            parts = np.split(inv, np.cumsum([len(x) for x in idx])[:-1])
            return parts, [flat.symbols[i] for i in uniq.tolist()]

        E, L = flat.edges, flat.leads
        for a, b in _chunks(len(E[0]), batch_size):
            (src, dst), syms = sym_params(E[0][a:b], E[1][a:b])
            local, metas = snap_params(E[3][a:b])
            query, params = self._edge_batch(gen, syms, metas, src, dst, E[2][a:b], local)
            r = yield Step(query, params, label="create CORRELATED_WITH", rows=b - a)
            n_tx += 1
            self._check_created(r, "relationships_created", b - a, "CORRELATED_WITH edges")

        for a, b in _chunks(len(L[0]), batch_size):
            (src, dst), syms = sym_params(L[0][a:b], L[1][a:b])
            local, metas = snap_params(L[4][a:b])
            query, params = self._lead_batch(gen, syms, metas, src, dst, L[2][a:b], L[3][a:b], local)
            r = yield Step(query, params, label="create LEADS", rows=b - a)
            n_tx += 1
            self._check_created(r, "relationships_created", b - a, "LEADS edges")

        # communities: batches of whole communities holding about batch_size memberships each
        comms = flat.communities
        i = 0
        while i < len(comms):
            j, members = i, 0
            while j < len(comms) and (j == i or members + len(comms[j][3]) <= batch_size):
                members += len(comms[j][3])
                j += 1
            chunk = comms[i:j]
            parts, syms = sym_params(*[np.asarray(c[3], np.int64) for c in chunk])
            local, metas = snap_params(np.asarray([c[2] for c in chunk], np.int64))
            rows = [[c[0], c[1], int(local[n]), parts[n].tolist()] for n, c in enumerate(chunk)]
            r = yield Step(C.CREATE_COMMUNITIES, {**ids, "syms": syms, "snaps": metas, "rows": rows},
                           label="create communities", rows=members)
            n_tx += 1
            self._check_created(r, "relationships_created", members, "MEMBER_OF memberships")
            self._check_created(r, "nodes_created", len(chunk), "Community nodes")
            i = j
        return n_tx

    @staticmethod
    def _edge_batch(gen: str, syms: list[str], metas: list[dict[str, Any]], src: np.ndarray, dst: np.ndarray,
                    rho: np.ndarray, snap: np.ndarray) -> tuple[str, dict[str, Any]]:
        """One ``CORRELATED_WITH`` batch: the statement and its parameters, as column lists (see cypher.py).

        ``src``/``dst`` index ``syms``, ``snap`` indexes ``metas``; ``rho`` is the correlation (fraction).
        """
        return C.CREATE_EDGES, {"gen": gen, "syms": syms, "snaps": metas, "src": src.tolist(),
                                "dst": dst.tolist(), "rho": rho.tolist(), "snap": snap.tolist()}

    @staticmethod
    def _lead_batch(gen: str, syms: list[str], metas: list[dict[str, Any]], src: np.ndarray, dst: np.ndarray,
                    rho: np.ndarray, lag: np.ndarray, snap: np.ndarray) -> tuple[str, dict[str, Any]]:
        """One ``LEADS`` batch, as :meth:`_edge_batch`; ``lag`` in bars."""
        return C.CREATE_LEADS, {"gen": gen, "syms": syms, "snaps": metas, "src": src.tolist(),
                                "dst": dst.tolist(), "rho": rho.tolist(), "lag": lag.tolist(),
                                "snap": snap.tolist()}

    def _check_among(self, wanted: list[str], cur: Current) -> None:
        have = set(cur.names)
        missing = [s for s in wanted if s not in have]
        if missing:
            raise UnknownSymbolError(missing, where=f"build {cur.build} in the graph store at {self.uri}",
                                     available=list(cur.names))

    def _op_read_snapshots(self, build: str, symbols: Sequence[str] | None, start: Any, end: Any,
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
        wanted = None if symbols is None else list(dict.fromkeys(symbols))
        if wanted is not None:
            params["symbols"] = wanted

        def read(cur: Current) -> Op:
            if wanted is not None:
                self._check_among(wanted, cur)
            return (yield from self._op_read_generation(cur, params, flags, wanted))

        return (yield from self._op_consistent_read(build, "snapshots", read))

    def _op_read_generation(self, cur: Current, params: dict[str, Any], flags: dict[str, bool],
                            wanted: list[str] | None) -> Op:
        params = {**params, "gen": cur.gen}
        res = yield Step(C.read_snapshots_query(**flags), params, write=False, label="read snapshots")
        metas = [((r["t_s"], r["t_ns"]), r["method"], int(r["window"]), list(r["assets"])) for r in res.records]
        if not metas:
            return []
        symset = None if wanted is None else set(wanted)
        has_syms = symset is not None
        # one query per part over the generation (an index lookup by gen), filtered to the same range
        parts: dict[str, dict[tuple[Any, str, int], list[list[Any]]]] = {}
        for what, q in (("edges", C.read_edges_query(has_syms, **flags)),
                        ("leads", C.read_leads_query(has_syms, **flags)),
                        ("communities", C.read_communities_query(has_syms, **flags))):
            res = yield Step(q, params, write=False, label=f"read {what}")
            parts[what] = {((r["t_s"], r["t_ns"]), r["method"], int(r["window"])): r["rows"] for r in res.records}
        out: list[GraphSnapshot] = []
        for t, m, w, assets in metas:
            key = (t, m, w)
            if symset is not None:
                assets = [a for a in assets if a in symset]
            comm = dict(parts["communities"].get(key, []))
            out.append(_normalise_read(_epoch_ts(*t), m, w, assets, parts["edges"].get(key, []),
                                       parts["leads"].get(key, []), comm))
        return out

    def _op_list_snapshots(self, build: str, end: Any, method: str | None, window: int | None) -> Op:
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

        def read(cur: Current) -> Op:
            res = yield Step(C.LIST_SNAPSHOTS.format(extra=extra), {**params, "gen": cur.gen}, write=False,
                             label="list snapshots")
            return res.records

        recs = yield from self._op_consistent_read(build, "snapshots", read)
        return pd.DataFrame({
            "as_of": _epoch_index([r["t_s"] for r in recs], [r["t_ns"] for r in recs]),
            "method": pd.Series([r["method"] for r in recs], dtype=object),
            "window": np.asarray([r["window"] for r in recs], dtype=np.int64),
            "n_assets": np.asarray([r["n_assets"] for r in recs], dtype=np.int64),
            "n_edges": np.asarray([r["n_edges"] for r in recs], dtype=np.int64),
            "n_leads": np.asarray([r["n_leads"] for r in recs], dtype=np.int64),
        })
