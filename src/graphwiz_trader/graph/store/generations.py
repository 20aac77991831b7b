"""Builds and generations: how a re-write never loses complete data, and how a read never sees a partial one.

Every write belongs to a **build** (an id the caller gives: the pipeline hashes the build spec, the bars
fingerprint and the universe) and is written as a new **generation** of that build:

1. ``(:Generation {id: <build>:<token>, state: 'writing', owner...})`` is created;
2. every part (snapshot nodes, edges, leads, communities; or regime nodes, records, transitions) is written
   carrying ``gen``, in as many transactions as the batches need;
3. one statement switches the build's pointer ``(:Build {id}).snapshots`` (or ``.regimes``) to the new
   generation and marks it ``complete`` (:func:`cypher.switch_generation_query`);
4. the superseded generation, and generations left by writers that died, are claimed (``state:
   'deleting'``) and deleted part by part, the ``Generation`` node last.

A crash before step 3 leaves the previous generation current and complete; a crash during step 4 leaves
unreferenced parts that the next write of the build deletes. Readers resolve the pointer, read every part
filtered by that ``gen`` and resolve the pointer again; if it moved meanwhile (a concurrent re-write) they
read again. A ``writing`` generation is left alone while its writer may still be running: its owner
process is alive (same host, same PID and process start time) and, in this process, its operation is
still open; older than :data:`STALE_AFTER_S` it is deleted whatever its owner.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psutil

from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.store.frames import _epoch_index
from graphwiz_trader.graph.store.ops_base import _BaseOps
from graphwiz_trader.graph.store.steps import Op, Step
from graphwiz_trader.graph.store_errors import GraphStoreError

log = logging.getLogger(__name__)

BUILD_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
STALE_AFTER_S = 24 * 3600.0   # a generation still 'writing' after a day is abandoned, whoever wrote it
_READ_ATTEMPTS = 5
BUILD_COLUMNS = ["build", "updated", "snapshots_gen", "n_snapshots", "regimes_gen", "n_regime_records", "info"]

# Generations being written by an open operation of this process (removed when the operation ends, also
# when it fails): a 'writing' generation of this process that is not here was abandoned.
_ACTIVE: set[str] = set()


class UnknownBuildError(GraphStoreError):
    """A read named a build that has no complete generation of what was asked for in the store."""

    def __init__(self, build: str, kind: str, uri: str, builds: list[str]) -> None:
        self.build = build
        self.kind = kind
        shown = ", ".join(builds[:8]) + (f" (+{len(builds) - 8} more)" if len(builds) > 8 else "")
        super().__init__(
            f"build {build!r} has no complete {kind} in the graph store at {uri}; builds with {kind} there: "
            f"{shown or 'none'} (list them with `graphwiz graph builds` or GraphStore.list_builds())"
        )


def check_build_id(build: Any) -> str:
    """``build`` if it is a valid build id (1-64 of ``A-Z a-z 0-9 _ . -``, not starting with a symbol)."""
    if not isinstance(build, str) or not BUILD_ID_PATTERN.match(build):
        raise GraphStoreError(f"a build id is 1-64 characters of letters, digits, '_', '.', '-' (first a letter or "
                              f"digit), e.g. the id graph.pipeline.build_graph computes; got {build!r}")
    return build


def new_generation_id(build: str) -> str:
    """``<build>:<16 hex>``: unique per write, and it names its build."""
    return f"{build}:{secrets.token_hex(8)}"


def build_info_text(info: Mapping[str, Any] | str | None) -> str | None:
    """What a build was made from (spec, universe, bars fingerprint) as sorted JSON text for the Build node."""
    import json

    if info is None or isinstance(info, str):
        return info
    return json.dumps(dict(info), sort_keys=True, default=str)


def _process_start(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pstart": _process_start(pid)}


def _abandoned(g: Mapping[str, Any], now_s: float) -> bool:
    """True when a generation in state 'writing' can no longer be finished by its writer."""
    if g["started_s"] is not None and now_s - float(g["started_s"]) > STALE_AFTER_S:
        return True
    if g["host"] != socket.gethostname() or g["pid"] is None:
        return False  # another machine's writer: only the age rule applies
    start = _process_start(int(g["pid"]))
    if start is None or g["pstart"] is None or abs(start - float(g["pstart"])) > 1.0:
        return True  # that process is gone (or its PID now belongs to another process)
    if int(g["pid"]) == os.getpid():
        return g["id"] not in _ACTIVE  # this process: abandoned when no open operation writes it
    return False


@contextmanager
def _writing(gen: str) -> Iterator[None]:
    _ACTIVE.add(gen)
    try:
        yield
    finally:
        _ACTIVE.discard(gen)


@dataclass(frozen=True)
class Current:
    """A build's current complete generation of one kind: its id, item count and names (symbols or scopes)."""

    build: str
    kind: str
    gen: str
    n: int
    names: tuple[str, ...]


class _GenerationOps(_BaseOps):
    """Generation bookkeeping as step generators (used by the snapshot and regime operations)."""

    def _op_begin_generation(self, build: str, kind: str, gen: str) -> Op:
        now = pd.Timestamp.now(tz="UTC")
        yield Step(C.BEGIN_GENERATION, {"gen": gen, "build": build, "kind": kind, "now": now, **_owner()},
                   label=f"build {build}: begin {kind} generation")

    def _op_switch_generation(self, build: str, kind: str, gen: str, info: str | None, n: int,
                              names: list[str]) -> Op:
        """Make ``gen`` the build's current generation (one transaction); returns the previous one or None."""
        res = yield Step(C.switch_generation_query(kind),
                         {"gen": gen, "build": build, "now": pd.Timestamp.now(tz="UTC"), "info": info, "n": int(n),
                          "names": list(names)},
                         label=f"build {build}: switch {kind} to the new generation", merge=True)
        if not res.records:
            raise GraphStoreError(f"build {build}: the {kind} generation {gen} written to {self.uri} was claimed for "
                                  "deletion before it could be switched in (another process judged it abandoned); "
                                  "the previous generation stays current; write again")
        return res.records[0]["old"]

    def _op_current(self, build: str, kind: str) -> Op:
        res = yield Step(C.current_generation_query(kind), {"build": build}, write=False,
                         label=f"build {build}: current {kind}")
        rec = res.records[0] if res.records else None
        if rec is None or rec["gen"] is None:
            builds = yield from self._op_build_ids(kind)
            raise UnknownBuildError(build, kind, self.uri, builds)
        return Current(build, kind, rec["gen"], int(rec["n"] or 0), tuple(rec["names"] or ()))

    def _op_consistent_read(self, build: str, kind: str, read: Callable[[Current], Op]) -> Op:
        """``read(current)`` of the build's current generation, repeated if a re-write switched it meanwhile."""
        build = check_build_id(build)
        for _ in range(_READ_ATTEMPTS):
            cur = yield from self._op_current(build, kind)
            out = yield from read(cur)
            again = yield from self._op_current(build, kind)
            if again.gen == cur.gen:
                return out
            log.info("build %s: %s switched to a new generation during a read; reading again", build, kind)
        raise GraphStoreError(f"build {build}: its {kind} were re-written {_READ_ATTEMPTS} times during one read "
                              f"on {self.uri}; try again when the writers are done")

    def _op_delete_generation(self, gen: str, kind: str, states: list[str], batch_size: int) -> Op:
        """Claim ``gen`` (if it is in one of ``states`` and not current) and delete it; returns #transactions."""
        res = yield Step(C.claim_generation_query(kind), {"gen": gen, "states": states},
                         label=f"generation {gen}: claim for deletion")
        if int(res.records[0]["n"]) == 0:
            return 0
        n_tx = 1
        limit = max(batch_size, 10_000)
        for what, stmt in C.DELETE_GENERATION_PARTS[kind]:
            while True:
                r = yield Step(stmt, {"gen": gen, "limit": limit}, label=f"generation {gen}: delete {what}")
                n_tx += 1
                if int(r.records[0]["n"]) < limit:
                    break
        yield Step(C.DELETE_GENERATION_NODE, {"gen": gen}, label=f"generation {gen}: delete its node")
        return n_tx + 1

    def _op_cleanup(self, build: str, kind: str, keep: str, batch_size: int) -> Op:
        """Delete the build's generations of ``kind`` other than ``keep`` that no writer will finish.

        Returns ``(generations deleted, transactions)``.
        """
        res = yield Step(C.GENERATIONS_OF_BUILD, {"build": build, "kind": kind}, write=False,
                         label=f"build {build}: list {kind} generations")
        now_s = time.time()
        deleted = n_tx = 0
        for g in sorted((r.data() for r in res.records), key=lambda r: r["id"]):
            if g["id"] == keep:
                continue
            if g["state"] == "writing" and not _abandoned(g, now_s):
                continue
            states = ["writing"] if g["state"] == "writing" else ["complete", "deleting"]
            tx = yield from self._op_delete_generation(g["id"], kind, states, batch_size)
            n_tx += tx
            deleted += tx > 0
        return deleted, n_tx

    def _op_delete_build(self, build: str, batch_size: int) -> Op:
        """Delete a build: its pointer, then every generation of it no live writer is writing; returns
        the number of generations deleted."""
        build = check_build_id(build)
        res = yield Step(C.DELETE_BUILD_NODE, {"build": build}, label=f"build {build}: delete its pointer")
        deleted = 0
        for kind in C.KINDS:
            n, _ = yield from self._op_cleanup(build, kind, "", batch_size)
            deleted += n
        if int(res.records[0]["n"]) == 0 and deleted == 0:
            builds = yield from self._op_build_ids()
            raise UnknownBuildError(build, "data", self.uri, builds)
        return deleted

    def _op_build_ids(self, kind: str | None = None) -> Op:
        builds = yield from self._op_list_builds()
        if kind is not None:
            builds = builds[builds[f"{kind}_gen"].notna()]
        return builds["build"].tolist()

    def _op_list_builds(self) -> Op:
        res = yield Step(C.LIST_BUILDS, write=False, label="list builds")
        recs = [r.data() for r in res.records]
        return pd.DataFrame({
            "build": pd.Series([r["build"] for r in recs], dtype=object),
            "updated": _epoch_index([r["t_s"] for r in recs], [r["t_ns"] for r in recs]),
            "snapshots_gen": pd.Series([r["snapshots_gen"] for r in recs], dtype=object),
            "n_snapshots": pd.array([r["n_snapshots"] for r in recs], dtype="Int64"),
            "regimes_gen": pd.Series([r["regimes_gen"] for r in recs], dtype=object),
            "n_regime_records": pd.array([r["n_regime_records"] for r in recs], dtype="Int64"),
            "info": pd.Series([r["info"] for r in recs], dtype=object),
        }, columns=BUILD_COLUMNS)
