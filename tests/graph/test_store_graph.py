"""Snapshots written to a real Bolt server (embedded ArcadeDB, or NEO4J_URI) read back exactly, point-in-time,
per build (never mixed with another build's), and a re-write never leaves a partial set readable."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.snapshot import GraphSnapshot
from graphwiz_trader.graph.store import (
    AsyncGraphStore,
    GraphStore,
    Progress,
    Step,
    UnknownBuildError,
    canonical_snapshot,
)
from graphwiz_trader.graph.store_errors import GraphStoreError
from graphwiz_trader.testkit.graph import demo_snapshots, rename_demo_symbols

B = "build-a"  # the build most tests write under


@pytest.fixture(scope="module")
def snapshots() -> list[GraphSnapshot]:
    """12 snapshots of 8 synthetic assets (SYNTHETIC data), window 120 bars, stride 24."""
    m = generate_synthetic_market(n_assets=8, n_bars=121 + 24 * 11, seed=3)
    closes = rename_demo_symbols(m.close_panel())
    snaps = demo_snapshots(closes, window=120, stride=24, top_k=3, max_lag=2, leaders_per_asset=2, seed=0)
    assert len(snaps) == 12
    return snaps


def assert_same_snapshot(expected: GraphSnapshot, got: GraphSnapshot) -> None:
    exp = canonical_snapshot(expected)
    assert got.as_of == exp.as_of and got.as_of.tz is not None and str(got.as_of.tz) == "UTC"
    assert (got.window, got.method, got.assets) == (exp.window, exp.method, exp.assets)
    pd.testing.assert_frame_equal(got.edges, exp.edges, check_exact=True)
    pd.testing.assert_frame_equal(got.leads, exp.leads, check_exact=True)
    # floats equal to the bit, not just within a tolerance
    assert np.array_equal(got.edges["rho"].to_numpy().view(np.int64), exp.edges["rho"].to_numpy().view(np.int64))
    assert got.communities == exp.communities


def test_snapshots_read_back_exactly(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    stats = graph_store.write_snapshots(snapshots, build=B, exchange="binance")
    assert stats.snapshots == 12 and stats.build == B and stats.generation.startswith(f"{B}:")
    assert stats.edges == sum(len(s.edges) for s in snapshots)
    assert stats.leads == sum(len(s.leads) for s in snapshots)
    assert stats.memberships == sum(len(s.communities) for s in snapshots)
    back = graph_store.read_snapshots(B)
    assert len(back) == len(snapshots)
    for exp, got in zip(snapshots, back):
        assert_same_snapshot(exp, got)


def test_assets_are_listed_on_their_exchange(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:1], build=B, exchange="binance")
    rows = graph_store.query("MATCH (a:Asset)-[:LISTED_ON]->(x:Exchange) "
                             "RETURN a.symbol AS s, a.base AS b, a.quote AS q, x.id AS x ORDER BY s")
    assert [r["s"] for r in rows] == sorted(snapshots[0].assets)
    assert all(r["s"] == f"{r['b']}/{r['q']}" and r["x"] == "binance" for r in rows)
    assert graph_store.symbols_in_store() == sorted(snapshots[0].assets)


def test_reads_are_point_in_time(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots, build=B)
    t = snapshots[6].as_of
    upto = graph_store.read_snapshots(B, end=t)
    assert [s.as_of for s in upto] == [s.as_of for s in snapshots[:7]]  # as_of == t is included
    assert all(s.as_of <= t for s in upto)
    one_ns_before = graph_store.read_snapshots(B, end=t - pd.Timedelta(nanoseconds=1))
    assert [s.as_of for s in one_ns_before] == [s.as_of for s in snapshots[:6]]
    window = graph_store.read_snapshots(B, start=snapshots[3].as_of, end=snapshots[5].as_of)
    assert [s.as_of for s in window] == [s.as_of for s in snapshots[3:6]]
    for exp, got in zip(snapshots[3:6], window):
        assert_same_snapshot(exp, got)
    catalog = graph_store.list_snapshots(B, end=t)
    assert catalog["as_of"].tolist() == [s.as_of for s in snapshots[:7]]
    assert catalog["n_edges"].tolist() == [len(s.edges) for s in snapshots[:7]]


def test_reads_restricted_to_symbols_keep_only_their_edges(graph_store: GraphStore,
                                                           snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots, build=B)
    keep = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    back = graph_store.read_snapshots(B, keep)
    for exp, got in zip(snapshots, back):
        c = canonical_snapshot(exp)
        e = c.edges[c.edges["src"].isin(keep) & c.edges["dst"].isin(keep)].reset_index(drop=True)
        ld = c.leads[c.leads["src"].isin(keep) & c.leads["dst"].isin(keep)].reset_index(drop=True)
        assert got.assets == tuple(a for a in c.assets if a in keep)
        pd.testing.assert_frame_equal(got.edges, e, check_exact=True)
        pd.testing.assert_frame_equal(got.leads, ld, check_exact=True)
        assert got.communities == {k: v for k, v in c.communities.items() if k in keep}


def test_unknown_symbols_raise_an_error_naming_them(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2], build=B)
    with pytest.raises(UnknownSymbolError) as err:
        graph_store.read_snapshots(B, ["BTC/USDT", "NOPE/USDT", "ZZZ/BTC"])
    msg = str(err.value)
    assert err.value.missing == ["NOPE/USDT", "ZZZ/BTC"]
    assert "NOPE/USDT, ZZZ/BTC" in msg and graph_store.uri in msg and f"build {B}" in msg and "available: ADA/USDT" in msg


def count(store: GraphStore, cypher: str) -> int:
    return int(store.query(cypher)[0]["n"])


def test_rewriting_a_build_replaces_its_snapshots_whole(graph_store: GraphStore,
                                                         snapshots: list[GraphSnapshot]) -> None:
    first = graph_store.write_snapshots(snapshots[:3], build=B)
    s = canonical_snapshot(snapshots[1])
    changed = GraphSnapshot(as_of=s.as_of, window=s.window, method=s.method, assets=s.assets,
                            edges=s.edges.iloc[:-1].assign(rho=s.edges["rho"].iloc[:-1] * 0.5),
                            leads=s.leads.iloc[:1], communities={a: 0 for a in s.assets})
    stats = graph_store.write_snapshots([snapshots[0], changed], build=B)
    assert (stats.replaced, stats.deleted_generations) == (3, 1) and stats.generation != first.generation
    back = graph_store.read_snapshots(B)
    assert len(back) == 2
    assert_same_snapshot(snapshots[0], back[0])
    assert_same_snapshot(changed, back[1])
    # nothing of the first generation is left behind
    assert count(graph_store, "MATCH ()-[r:CORRELATED_WITH]->() RETURN count(r) AS n") == \
        len(snapshots[0].edges) + len(changed.edges)
    assert count(graph_store, "MATCH (c:Community) RETURN count(c) AS n") == \
        len(set(snapshots[0].communities.values())) + 1
    assert count(graph_store, "MATCH (s:Snapshot) RETURN count(s) AS n") == 2
    assert graph_store.query("MATCH (g:Generation) RETURN g.id AS id") == [{"id": stats.generation}]


def test_two_builds_in_one_store_read_back_apart(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    """Same as_of times, method, window and assets, different content: each build reads back its own."""
    other = demo_snapshots(rename_demo_symbols(generate_synthetic_market(n_assets=8, n_bars=121 + 24 * 11,
                                                                         seed=4).close_panel()),
                           window=120, stride=24, top_k=2, max_lag=1, leaders_per_asset=1, seed=1)
    assert [s.as_of for s in other] == [s.as_of for s in snapshots]
    graph_store.write_snapshots(snapshots, build="build-a")
    graph_store.write_snapshots(other, build="build-b")
    for build, exp in (("build-a", snapshots), ("build-b", other)):
        back = graph_store.read_snapshots(build)
        assert len(back) == len(exp)
        for e, g in zip(exp, back):
            assert_same_snapshot(e, g)
    assert graph_store.list_builds()["build"].tolist() == ["build-b", "build-a"]  # newest first


def test_reads_name_a_build_that_exists(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2], build=B)
    with pytest.raises(UnknownBuildError) as err:
        graph_store.read_snapshots("build-zzz")
    assert "'build-zzz' has no complete snapshots" in str(err.value) and f"there: {B}" in str(err.value)
    with pytest.raises(UnknownBuildError, match="no complete regimes"):
        graph_store.read_regimes(B)  # snapshots were written under B, regimes were not
    with pytest.raises(GraphStoreError, match="a build id is 1-64 characters"):
        graph_store.read_snapshots(["BTC/USDT"])  # the pre-build-id call shape is refused, not misread


def test_deleting_a_build_removes_everything_it_wrote_and_nothing_else(graph_store: GraphStore,
                                                                        snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:3], build="build-a")
    graph_store.write_snapshots(snapshots[3:5], build="build-b")
    graph_store.write_snapshots(snapshots[5:6], build="build-b")  # build-b's second generation
    assert graph_store.delete_build("build-b") == 1
    assert graph_store.list_builds()["build"].tolist() == ["build-a"]
    for exp, got in zip(snapshots[:3], graph_store.read_snapshots("build-a"), strict=True):
        assert_same_snapshot(exp, got)
    assert count(graph_store, "MATCH ()-[r:CORRELATED_WITH]->() RETURN count(r) AS n") == \
        sum(len(s.edges) for s in snapshots[:3])
    assert count(graph_store, "MATCH (g:Generation) RETURN count(g) AS n") == 1
    with pytest.raises(UnknownBuildError):
        graph_store.delete_build("build-b")


def test_two_writers_creating_the_same_assets_at_once_both_succeed(graph_store: GraphStore, graph_settings) -> None:
    """ArcadeDB's MERGE races: the loser of a unique key gets ConstraintValidationFailed; the store retries it."""
    import threading

    other = GraphStore.connect(graph_settings, ensure_schema=False)
    errors: list[BaseException] = []
    try:
        for rnd in range(6):
            syms = [f"R{rnd}N{i}/USDT" for i in range(40)]
            gate = threading.Barrier(2)

            def upsert(store: GraphStore, syms: list[str] = syms, gate: threading.Barrier = gate) -> None:
                gate.wait()
                try:
                    store.upsert_assets(syms, "binance")
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=upsert, args=(st,)) for st in (graph_store, other)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        other.close()
    assert errors == []
    assert count(graph_store, "MATCH (a:Asset) RETURN count(a) AS n") == 6 * 40
    assert count(graph_store, "MATCH (x:Exchange) RETURN count(x) AS n") == 1


def test_only_merge_steps_that_lost_a_unique_key_race_are_retried_a_bounded_number_of_times() -> None:
    from graphwiz_trader.graph.store.steps import MERGE_ATTEMPTS, retry_merge

    class Conflict(Exception):
        code = "Neo.ClientError.Schema.ConstraintValidationFailed"

    merge, plain = Step("MERGE ...", merge=True), Step("CREATE ...")
    waits = [retry_merge(merge, Conflict(), a) for a in range(1, MERGE_ATTEMPTS + 1)]
    assert all(w is not None and 0.01 * 2 ** a <= w <= 0.02 * 2 ** a for a, w in enumerate(waits[:-1], start=1))
    assert waits[-1] is None  # the last attempt's failure is raised
    assert retry_merge(plain, Conflict(), 1) is None  # a CREATE that hits a unique key is a real error
    assert retry_merge(merge, ConnectionError(), 1) is None


def _fail_at(label_part: str):
    """A replacement for GraphStore._execute that raises when a step's label contains ``label_part``."""
    real = GraphStore._execute

    def execute(session, step):
        if label_part in step.label:
            raise ConnectionError(f"simulated crash at {step.label!r}")
        return real(session, step)
    return staticmethod(execute)


@pytest.mark.parametrize("crash_at", ["create CORRELATED_WITH", "create communities", "switch snapshots"])
def test_a_rewrite_cut_short_leaves_the_previous_generation_readable(graph_store: GraphStore,
                                                                    snapshots: list[GraphSnapshot], crash_at: str,
                                                                    monkeypatch) -> None:
    graph_store.write_snapshots(snapshots[:4], build=B)
    monkeypatch.setattr(GraphStore, "_execute", _fail_at(crash_at))
    with pytest.raises(ConnectionError):
        graph_store.write_snapshots(snapshots[4:], build=B, batch_size=7)
    monkeypatch.undo()
    back = graph_store.read_snapshots(B)  # the partial generation is invisible
    assert [s.as_of for s in back] == [s.as_of for s in snapshots[:4]]
    for exp, got in zip(snapshots[:4], back):
        assert_same_snapshot(exp, got)
    assert count(graph_store, "MATCH (g:Generation) WHERE g.state = 'writing' RETURN count(g) AS n") == 1
    # the next write of the build deletes the abandoned generation along with the superseded one
    stats = graph_store.write_snapshots(snapshots[6:8], build=B)
    assert stats.deleted_generations == 2
    assert [s.as_of for s in graph_store.read_snapshots(B)] == [s.as_of for s in snapshots[6:8]]
    assert count(graph_store, "MATCH ()-[r:CORRELATED_WITH]->() RETURN count(r) AS n") == \
        sum(len(s.edges) for s in snapshots[6:8])
    assert count(graph_store, "MATCH (s:Snapshot) RETURN count(s) AS n") == 2


def test_a_generation_another_live_writer_is_writing_is_left_alone(graph_store: GraphStore,
                                                                 snapshots: list[GraphSnapshot]) -> None:
    """A 'writing' generation whose writer is alive (here: this process, operation still open) is not deleted."""
    from graphwiz_trader.graph.store import generations

    graph_store.write_snapshots(snapshots[:2], build=B)
    op = graph_store._op_write_snapshots(snapshots[2:4], B, None, None, 5)  # noqa: SLF001
    with graph_store._driver.session(database=graph_store.database) as session:  # noqa: SLF001
        step = next(op)
        while isinstance(step, Progress) or "create CORRELATED_WITH" not in step.label:
            # run the other write up to its first edge batch
            step = op.send(None if isinstance(step, Progress) else graph_store._execute(session, step))
        in_flight = next(iter(generations._ACTIVE))
        stats = graph_store.write_snapshots(snapshots[5:6], build=B)  # a concurrent write of the same build
        assert stats.deleted_generations == 1  # the superseded one, not the one in flight
        assert graph_store.query("MATCH (g:Generation {id: $g}) RETURN g.state AS s", g=in_flight) == [{"s": "writing"}]
        op.close()  # the other writer gives up: its generation is now abandoned
    graph_store.write_snapshots(snapshots[5:6], build=B)
    assert graph_store.query("MATCH (g:Generation {id: $g}) RETURN g.state AS s", g=in_flight) == []


@pytest.mark.parametrize("batch_size", [1, 7, 40, 100_000])
def test_batched_writes_split_rows_into_batches_of_batch_size(graph_store: GraphStore,
                                                              snapshots: list[GraphSnapshot],
                                                              batch_size: int, monkeypatch) -> None:
    snaps = snapshots[:3]
    seen: list[tuple[str, int]] = []
    real = GraphStore._execute

    def spy(session, step):
        seen.append((step.query, len(step.params.get("rows", step.params.get("src", []))), step.write))
        return real(session, step)

    monkeypatch.setattr(GraphStore, "_execute", staticmethod(spy))
    stats = graph_store.write_snapshots(snaps, build=B, batch_size=batch_size)
    n_edges = sum(len(s.edges) for s in snaps)
    n_leads = sum(len(s.leads) for s in snaps)

    def split(n: int) -> list[int]:  # expected batch sizes, by a plain loop
        out, left = [], n
        while left > 0:
            out.append(min(batch_size, left))
            left -= batch_size
        return out

    assert [n for q, n, _ in seen if q == C.CREATE_EDGES] == split(n_edges)
    assert [n for q, n, _ in seen if q == C.CREATE_LEADS] == split(n_leads)
    assert [n for q, n, _ in seen if q == C.CREATE_SNAPSHOTS] == split(3)
    assert all(n <= batch_size for q, n, w in seen if w)
    assert stats.transactions == sum(1 for _, _, w in seen if w)
    monkeypatch.undo()
    for exp, got in zip(snaps, graph_store.read_snapshots(B)):
        assert_same_snapshot(exp, got)


def schema(store: GraphStore, statement: str) -> None:
    def op():
        yield Step(statement, autocommit=True)
    store._run(op())  # noqa: SLF001


def test_schema_setup_is_idempotent_and_drops_only_its_own_obsolete_indexes(graph_store: GraphStore) -> None:
    schema(graph_store, "CREATE INDEX corr_as_of IF NOT EXISTS FOR ()-[r:CORRELATED_WITH]-() ON (r.as_of)")
    schema(graph_store, "CREATE INDEX someone_elses IF NOT EXISTS FOR (n:Unrelated) ON (n.x)")
    first = graph_store.ensure_schema()
    assert "corr_as_of" not in first and "someone_elses" in first
    second = graph_store.ensure_schema()
    assert first == second
    names = set(graph_store.schema_names())
    # every constraint is present under its name (indexes may pre-exist under another name on a shared server)
    assert {n for n, _ in C.CONSTRAINTS} <= names
    schema(graph_store, "DROP INDEX someone_elses IF EXISTS")


def test_clear_leaves_no_graphwiz_data(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2], build=B, exchange="binance")
    assert graph_store.clear() > 0
    assert graph_store.symbols_in_store() == []
    assert graph_store.list_builds().empty
    with pytest.raises(UnknownBuildError):
        graph_store.read_snapshots(B)
    assert graph_store.query("MATCH (n) WHERE n:Asset OR n:Snapshot OR n:Community OR n:Exchange OR n:Build "
                             "OR n:Generation RETURN count(n) AS n")[0]["n"] == 0


def test_async_store_reads_back_what_the_sync_store_wrote(graph_store: GraphStore, graph_settings,
                                                         snapshots: list[GraphSnapshot]) -> None:
    async def roundtrip() -> tuple[list[GraphSnapshot], list[GraphSnapshot]]:
        store = await AsyncGraphStore.connect(graph_settings, batch_size=5)
        try:
            synced = await store.read_snapshots("build-sync", end=snapshots[1].as_of)
            await store.write_snapshots(snapshots[6:9], build="build-async")
            assert await store.symbols_in_store() == sorted(snapshots[0].assets)
            return synced, await store.read_snapshots("build-async", end=snapshots[7].as_of)
        finally:
            await store.close()

    graph_store.write_snapshots(snapshots[:3], build="build-sync")
    synced, back = asyncio.run(roundtrip())
    for exp, got in zip(snapshots[:2], synced, strict=True):
        assert_same_snapshot(exp, got)
    for exp, got in zip(snapshots[6:8], back, strict=True):
        assert_same_snapshot(exp, got)
    sync_back = graph_store.read_snapshots("build-async", start=snapshots[7].as_of)
    assert len(sync_back) == 2 and all(math.isfinite(r) for s in sync_back for r in s.edges["rho"])
