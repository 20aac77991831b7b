"""Every Cypher query in docs/graph.md runs on the graph store and returns rows (synthetic sample graph), with
the build id as the ``$build`` parameter, as the doc tells users to set it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graphwiz_trader.graph.store import GraphStore
from graphwiz_trader.testkit.graph import write_demo_graph

DOC = Path(__file__).resolve().parents[2] / "docs" / "graph.md"


def doc_queries() -> list[tuple[str, str]]:
    text = DOC.read_text()
    out = []
    for m in re.finditer(r"^### ([^\n]+)\n+```cypher\n(.*?)```", text, flags=re.S | re.M):
        out.append((m.group(1).strip(), m.group(2).strip()))
    return out


QUERIES = doc_queries()


def test_the_docs_have_at_least_ten_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.fixture(scope="module")
def demo_store(_graph_store_session: GraphStore) -> tuple[GraphStore, str]:
    _graph_store_session.clear()
    info = write_demo_graph(_graph_store_session)
    assert info["snapshots"] > 60 and "SYNTHETIC" in str(info["label"])
    return _graph_store_session, str(info["build"])


@pytest.mark.parametrize("title, query", QUERIES, ids=[t.split(".")[0] for t, _ in QUERIES])
def test_docs_query_returns_rows(demo_store: tuple[GraphStore, str], title: str, query: str) -> None:
    store, build = demo_store
    rows = store.query(query, build=build)
    assert rows, f"query {title!r} returned no rows"
    assert all(any(v is not None for v in r.values()) for r in rows), f"query {title!r} returned only nulls"
