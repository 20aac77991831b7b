"""The graph explorer over a real graph store holding a graph built from a SYNTHETIC market by the project's
builders: builds and snapshot times, the graph as of a time (the newest snapshot at or before it, edges and
communities as stored, a deterministic layout), and the read-only Cypher box (refused before running, and
rolled back if a write slipped past the check)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.builders.regimes import RegimeSettings
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_graph, write_graph
from graphwiz_trader.service import explorer as explorer_mod
from graphwiz_trader.service.api import create_app
from graphwiz_trader.service.explorer import (
    CypherRefused,
    GraphExplorer,
    check_read_only,
)

KEY = "explorer-read-key-0123456789"
SMALL_REGIMES = RegimeSettings(min_train=300, refit_every=100, burn_in=100, asset_vol_window=24,
                               asset_min_history=100)


class GraphState:
    """The two attributes of ServiceState the explorer reads."""

    def __init__(self, store: object, build: str | None) -> None:
        self.graph_store = store
        self.graph_build = lambda: build

    def snapshot(self) -> dict:
        return {}


@pytest.fixture(scope="module")
def built(_graph_store_session):
    store = _graph_store_session
    store.clear()
    market = generate_synthetic_market(n_assets=10, n_bars=24 * 30, seed=21)
    build = build_graph(market.bars, GraphBuildSettings(window=120, stride=24, top_k=4, regimes=SMALL_REGIMES))
    write_graph(store, build, "binance")
    return store, build


@pytest.fixture()
def client(built):
    store, build = built
    s = ApiSettings(keys=[f"{hashlib.sha256(KEY.encode()).hexdigest()} read viewer"], cypher_max_rows=5)
    return TestClient(create_app(GraphState(store, build.build_id), s), headers={"X-API-Key": KEY})


@pytest.mark.parametrize("query", [
    "CREATE (n:Asset {symbol: 'X/USDT'})",
    "MATCH (a:Asset) MERGE (a)-[:X]->(a)",
    "MATCH (n) DETACH DELETE n",
    "MATCH (n:Asset) DELETE n",
    "MATCH (n:Asset) SET n.symbol = 'x'",
    "MATCH (n:Asset) REMOVE n.base",
    "DROP INDEX foo",
    "LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row",
    "MATCH (n) FOREACH (x IN [1] | CREATE (:Y))",
    "CALL apoc.create.node(['X'], {}) YIELD node RETURN node",
    "CALL dbms.security.createUser('u', 'p', false)",
    "match (n) return n; create (m:Z)",
    "MATCH (n) WITH n CALL { CREATE (:Q) } RETURN n",
    "  cReAtE (n:Lower)",
])
def test_write_queries_are_refused_before_they_run(query):
    with pytest.raises(CypherRefused, match="read-only|one Cypher statement"):
        check_read_only(query)


@pytest.mark.parametrize("query", [
    "MATCH (a:Asset) RETURN a.symbol AS s ORDER BY s",
    "MATCH (a:Asset) WHERE a.symbol = 'CREATE' RETURN a  // DELETE in a comment",
    "MATCH (a:Asset) RETURN a.`set` AS x, a.offset AS y /* MERGE */",
    "CALL db.labels() YIELD label RETURN label",
    "MATCH (b:Build) RETURN b.id;",
])
def test_read_queries_pass_the_check(query):
    check_read_only(query)


def test_times_and_the_graph_as_of_a_time_match_the_store(built):
    store, build = built
    ex = GraphExplorer(GraphState(store, build.build_id))
    times = ex.times(None)
    assert times["build"] == build.build_id
    assert times["times"] == [s.as_of.isoformat() for s in build.snapshots]
    # a time between two snapshots gives the earlier one: never a later graph
    k = 7
    between = build.snapshots[k].as_of + pd.Timedelta(hours=5)
    g = ex.graph(None, between.isoformat())
    snap = build.snapshots[k]
    assert g["as_of"] == snap.as_of.isoformat() and g["requested"] == between.isoformat()
    want = {(r.src, r.dst): r.rho for r in snap.edges.itertuples()}
    got = {(e["src"], e["dst"]): e["rho"] for e in g["edges"]}
    assert got.keys() == want.keys() and all(got[k_] == pytest.approx(want[k_]) for k_ in want)
    assert {n["id"]: n["community"] for n in g["nodes"]} == snap.communities
    assert g["communities"] == len(set(snap.communities.values()))
    strength = {n["id"]: n["strength"] for n in g["nodes"]}
    for a in snap.assets:
        assert strength[a] == pytest.approx(sum(abs(r) for (s, d), r in want.items() if a in (s, d)))
    # the layout is deterministic: a fresh explorer (no cache) draws the same picture
    again = GraphExplorer(GraphState(store, build.build_id)).graph(None, between.isoformat())
    assert [(n["x"], n["y"]) for n in again["nodes"]] == [(n["x"], n["y"]) for n in g["nodes"]]
    # the market regime shown is the build's record in force at that time
    last = ex.graph(None, None)
    rec = build.regimes[(build.regimes["scope"] == "market") & (build.regimes["datetime"] <= build.snapshots[-1].as_of)]
    assert last["regime"]["name"] == rec.iloc[-1]["regime"] and last["as_of"] == build.snapshots[-1].as_of.isoformat()


def test_the_api_serves_builds_times_and_graphs_and_explains_bad_requests(client, built):
    _, build = built
    builds = client.get("/api/v1/graph/builds").json()
    assert builds["current"] == build.build_id and builds["builds"][0]["snapshots"] == len(build.snapshots)
    g = client.get("/api/v1/graph", params={"as_of": build.snapshots[3].as_of.isoformat()}).json()
    assert g["as_of"] == build.snapshots[3].as_of.isoformat() and len(g["nodes"]) == 10
    early = client.get("/api/v1/graph", params={"as_of": "2000-01-01T00:00Z"})
    assert early.status_code == 404 and "no snapshot at or before 2000-01-01" in early.json()["error"]
    bad = client.get("/api/v1/graph", params={"as_of": "not a time"})
    assert bad.status_code == 400 and "as_of" in bad.json()["error"]
    unknown = client.get("/api/v1/graph/times", params={"build": "0000000000000000"})
    assert unknown.status_code in (400, 404) and "0000000000000000" in unknown.json()["error"]


def test_the_cypher_route_refuses_create_and_the_graph_is_unchanged(client, built):
    store, _ = built
    before = store.query("MATCH (n) RETURN count(n) AS n")[0]["n"]
    r = client.post("/api/v1/cypher", json={"query": "CREATE (n:Asset {symbol: 'EVIL/USDT'}) RETURN n"})
    assert r.status_code == 400 and "read-only: refused CREATE" in r.json()["error"]
    assert store.query("MATCH (n) RETURN count(n) AS n")[0]["n"] == before


def test_the_cypher_route_answers_reads_with_build_and_a_row_cap(client, built):
    _, build = built
    r = client.post("/api/v1/cypher", json={"query": "MATCH (b:Build {id: $build}) RETURN b.id AS id"})
    assert r.status_code == 200 and r.json()["rows"] == [{"id": build.build_id}]
    r = client.post("/api/v1/cypher", json={"query": "MATCH (a:Asset) RETURN a.symbol AS s ORDER BY s"})
    body = r.json()
    assert body["columns"] == ["s"] and body["truncated"] and body["reason"] == "rows"
    assert [x["s"] for x in body["rows"]] == sorted(build.info["universe"])[:5]
    bad = client.post("/api/v1/cypher", json={"query": "MATCH (a:Asset RETURN a"})
    assert bad.status_code == 400 and "Cypher query failed" in bad.json()["error"]


def test_a_write_that_slips_past_the_check_is_rolled_back(built, monkeypatch):
    store, build = built
    monkeypatch.setattr(explorer_mod, "check_read_only", lambda q: None)
    ex = GraphExplorer(GraphState(store, build.build_id))
    with pytest.raises(CypherRefused, match="rolled back"):
        ex.cypher("CREATE (x:Evil {a: 1}) RETURN x")
    assert store.query("MATCH (x:Evil) RETURN count(x) AS n")[0]["n"] == 0
