"""Snapshots written to a real Bolt server (embedded ArcadeDB, or NEO4J_URI) read back exactly and point-in-time."""

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
from graphwiz_trader.graph.store import AsyncGraphStore, GraphStore, canonical_snapshot
from graphwiz_trader.testkit.graph import demo_snapshots, rename_demo_symbols


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
    stats = graph_store.write_snapshots(snapshots, exchange="binance")
    assert stats.snapshots == 12
    assert stats.edges == sum(len(s.edges) for s in snapshots)
    assert stats.leads == sum(len(s.leads) for s in snapshots)
    assert stats.memberships == sum(len(s.communities) for s in snapshots)
    back = graph_store.read_snapshots()
    assert len(back) == len(snapshots)
    for exp, got in zip(snapshots, back):
        assert_same_snapshot(exp, got)


def test_assets_are_listed_on_their_exchange(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:1], exchange="binance")
    rows = graph_store.query("MATCH (a:Asset)-[:LISTED_ON]->(x:Exchange) "
                             "RETURN a.symbol AS s, a.base AS b, a.quote AS q, x.id AS x ORDER BY s")
    assert [r["s"] for r in rows] == sorted(snapshots[0].assets)
    assert all(r["s"] == f"{r['b']}/{r['q']}" and r["x"] == "binance" for r in rows)
    assert graph_store.symbols_in_store() == sorted(snapshots[0].assets)


@pytest.mark.parametrize("scan_fraction", [0, 10**9], ids=["by-as_of-lookups", "by-range-scan"])
def test_reads_are_point_in_time(graph_store: GraphStore, snapshots: list[GraphSnapshot], scan_fraction: int,
                                 monkeypatch) -> None:
    monkeypatch.setattr("graphwiz_trader.graph.store.ops_snapshots._SCAN_FRACTION", scan_fraction)
    monkeypatch.setattr("graphwiz_trader.graph.store.ops_snapshots._TIMES_PER_QUERY", 5)  # several IN-list chunks
    graph_store.write_snapshots(snapshots)
    t = snapshots[6].as_of
    upto = graph_store.read_snapshots(end=t)
    assert [s.as_of for s in upto] == [s.as_of for s in snapshots[:7]]  # as_of == t is included
    assert all(s.as_of <= t for s in upto)
    one_ns_before = graph_store.read_snapshots(end=t - pd.Timedelta(nanoseconds=1))
    assert [s.as_of for s in one_ns_before] == [s.as_of for s in snapshots[:6]]
    window = graph_store.read_snapshots(start=snapshots[3].as_of, end=snapshots[5].as_of)
    assert [s.as_of for s in window] == [s.as_of for s in snapshots[3:6]]
    for exp, got in zip(snapshots[3:6], window):
        assert_same_snapshot(exp, got)
    catalog = graph_store.list_snapshots(end=t)
    assert catalog["as_of"].tolist() == [s.as_of for s in snapshots[:7]]
    assert catalog["n_edges"].tolist() == [len(s.edges) for s in snapshots[:7]]


def test_reads_restricted_to_symbols_keep_only_their_edges(graph_store: GraphStore,
                                                           snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots)
    keep = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    back = graph_store.read_snapshots(keep)
    for exp, got in zip(snapshots, back):
        c = canonical_snapshot(exp)
        e = c.edges[c.edges["src"].isin(keep) & c.edges["dst"].isin(keep)].reset_index(drop=True)
        ld = c.leads[c.leads["src"].isin(keep) & c.leads["dst"].isin(keep)].reset_index(drop=True)
        assert got.assets == tuple(a for a in c.assets if a in keep)
        pd.testing.assert_frame_equal(got.edges, e, check_exact=True)
        pd.testing.assert_frame_equal(got.leads, ld, check_exact=True)
        assert got.communities == {k: v for k, v in c.communities.items() if k in keep}


def test_unknown_symbols_raise_an_error_naming_them(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2])
    with pytest.raises(UnknownSymbolError) as err:
        graph_store.read_snapshots(["BTC/USDT", "NOPE/USDT", "ZZZ/BTC"])
    msg = str(err.value)
    assert err.value.missing == ["NOPE/USDT", "ZZZ/BTC"]
    assert "NOPE/USDT, ZZZ/BTC" in msg and graph_store.uri in msg and "available: ADA/USDT" in msg


def test_writing_a_snapshot_again_replaces_it(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:3])
    s = canonical_snapshot(snapshots[1])
    changed = GraphSnapshot(as_of=s.as_of, window=s.window, method=s.method, assets=s.assets,
                            edges=s.edges.iloc[:-1].assign(rho=s.edges["rho"].iloc[:-1] * 0.5),
                            leads=s.leads.iloc[:1], communities={a: 0 for a in s.assets})
    stats = graph_store.write_snapshots([changed])
    assert stats.replaced == 1
    back = graph_store.read_snapshots()
    assert len(back) == 3
    assert_same_snapshot(snapshots[0], back[0])
    assert_same_snapshot(changed, back[1])
    assert_same_snapshot(snapshots[2], back[2])
    n = graph_store.query("MATCH ()-[r:CORRELATED_WITH]->() RETURN count(r) AS n")[0]["n"]
    assert n == len(snapshots[0].edges) + len(changed.edges) + len(snapshots[2].edges)
    n_comm = graph_store.query("MATCH (c:Community) RETURN count(c) AS n")[0]["n"]
    assert n_comm == len(set(snapshots[0].communities.values())) + 1 + len(set(snapshots[2].communities.values()))


def test_a_snapshot_left_incomplete_is_invisible_and_replaced(graph_store: GraphStore,
                                                              snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2])
    # simulate a crash between the edge writes and the completion mark
    graph_store._run(_mark_incomplete())  # noqa: SLF001
    assert [s.as_of for s in graph_store.read_snapshots()] == [snapshots[0].as_of]
    stats = graph_store.write_snapshots(snapshots[1:2])
    assert stats.replaced == 1
    back = graph_store.read_snapshots()
    assert len(back) == 2
    assert_same_snapshot(snapshots[1], back[1])


def _mark_incomplete():
    from graphwiz_trader.graph.store import Step

    res = yield Step("MATCH (s:Snapshot) WITH s ORDER BY s.as_of DESC LIMIT 1 SET s.complete = false "
                     "RETURN s.key AS k")
    return res.records[0]["k"]


@pytest.mark.parametrize("batch_size", [1, 7, 40, 100_000])
def test_batched_writes_split_rows_into_batches_of_batch_size(graph_store: GraphStore,
                                                              snapshots: list[GraphSnapshot],
                                                              batch_size: int, monkeypatch) -> None:
    snaps = snapshots[:3]
    seen: list[tuple[str, int]] = []
    real = GraphStore._execute

    def spy(session, step):
        seen.append((step.query, len(step.params.get("rows", [])), step.write))
        return real(session, step)

    monkeypatch.setattr(GraphStore, "_execute", staticmethod(spy))
    stats = graph_store.write_snapshots(snaps, batch_size=batch_size)
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
    for exp, got in zip(snaps, graph_store.read_snapshots()):
        assert_same_snapshot(exp, got)


def test_schema_setup_is_idempotent(graph_store: GraphStore) -> None:
    first = graph_store.ensure_schema()
    second = graph_store.ensure_schema()
    assert first == second
    names = set(graph_store.schema_names())
    # every constraint is present under its name (indexes may pre-exist under another name on a shared server)
    assert {n for n, _ in C.CONSTRAINTS} <= names


def test_clear_leaves_no_graphwiz_data(graph_store: GraphStore, snapshots: list[GraphSnapshot]) -> None:
    graph_store.write_snapshots(snapshots[:2], exchange="binance")
    assert graph_store.clear() > 0
    assert graph_store.symbols_in_store() == []
    assert graph_store.read_snapshots() == []
    assert graph_store.query("MATCH (n) WHERE n:Asset OR n:Snapshot OR n:Community OR n:Exchange "
                             "RETURN count(n) AS n")[0]["n"] == 0


def test_async_store_reads_back_what_the_sync_store_wrote(graph_store: GraphStore, graph_settings,
                                                         snapshots: list[GraphSnapshot]) -> None:
    async def roundtrip() -> list[GraphSnapshot]:
        store = await AsyncGraphStore.connect(graph_settings, batch_size=5)
        try:
            await store.write_snapshots(snapshots[6:9])
            assert await store.symbols_in_store() == sorted(snapshots[0].assets)
            return await store.read_snapshots(end=snapshots[7].as_of)
        finally:
            await store.close()

    graph_store.write_snapshots(snapshots[:2])
    back = asyncio.run(roundtrip())
    assert [s.as_of for s in back] == [s.as_of for s in snapshots[:2] + snapshots[6:8]]
    for exp, got in zip(snapshots[:2] + snapshots[6:8], back):
        assert_same_snapshot(exp, got)
    sync_back = graph_store.read_snapshots(start=snapshots[6].as_of)
    assert len(sync_back) == 3 and all(math.isfinite(r) for s in sync_back for r in s.edges["rho"])
