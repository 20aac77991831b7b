"""Session fixtures shared by the suite.

Graph store backends (``graph_settings`` is parametrized over both):

- ``embedded`` (marker ``integration``): one embedded ArcadeDB Bolt server per test session, started on
  first use under a temp folder and stopped (by PID) when the session ends.
- ``neo4j`` (marker ``neo4j``): the server named by ``NEO4J_URI`` / ``NEO4J_USER`` / ``NEO4J_PASSWORD``
  (``NEO4J_DATABASE`` optional); skipped when ``NEO4J_URI`` is unset. The tests CLEAR every graphwiz
  node and relationship there: point it at a throwaway server (``docker compose up -d neo4j``).

Select one with ``-m integration`` or ``-m neo4j``.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest


# Real data lives beside the checkout (../shared/data), wherever pytest is started from.
os.environ.setdefault("GRAPHWIZ_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run folders of commands invoked by tests go to a temp folder, never into the checkout."""
    if "GRAPHWIZ_RUNS_DIR" not in os.environ:
        monkeypatch.setenv("GRAPHWIZ_RUNS_DIR", str(tmp_path_factory.getbasetemp() / "runs"))


@pytest.fixture(scope="session")
def embedded_graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's embedded ArcadeDB Bolt server (started once, on first use)."""
    from graphwiz_trader.graph.server import EmbeddedGraphServer

    server = EmbeddedGraphServer(tmp_path_factory.mktemp("graph"), heap="768m", startup_timeout_s=180)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _neo4j_env_settings() -> Any:
    from graphwiz_trader.graph.store import settings_from_env

    return settings_from_env()


@pytest.fixture(scope="session", params=[pytest.param("embedded", marks=pytest.mark.integration),
                                         pytest.param("neo4j", marks=pytest.mark.neo4j)])
def graph_settings(request: pytest.FixtureRequest) -> Any:
    """Connection settings of a graph backend: the embedded server, or NEO4J_URI when set."""
    from graphwiz_trader.config.settings import GraphSettings

    if request.param == "neo4j":
        if not os.environ.get("NEO4J_URI"):
            pytest.skip("NEO4J_URI is not set (start one with `docker compose up -d neo4j` and export "
                        "NEO4J_URI=bolt://localhost:7687 NEO4J_USER=neo4j NEO4J_PASSWORD=...)")
        return _neo4j_env_settings()
    server = request.getfixturevalue("embedded_graph_server")
    return GraphSettings(uri=server.uri, user=server.user, password=server.password, database=server.database)


@pytest.fixture(scope="session")
def _graph_store_session(graph_settings: Any) -> Iterator[Any]:
    from graphwiz_trader.graph.store import GraphStore

    store = GraphStore.connect(graph_settings)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture()
def graph_store(_graph_store_session: Any) -> Any:
    """A connected :class:`GraphStore` on an empty graph (every graphwiz node deleted first)."""
    _graph_store_session.clear()
    return _graph_store_session
