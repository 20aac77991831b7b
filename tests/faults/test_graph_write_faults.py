"""Fault injection on graph-store re-writes: the embedded server's JVM is SIGKILLed in the middle of a large
re-write of a build's snapshots, and separately of its regime state, then restarted on the same folder. The
build's previously complete data must read back unchanged, the partial generation must stay invisible, and
the next write must remove it. A kill after the switch (while the old generation is being deleted) must
leave the new data readable and complete.

The JVM is this module's own server (killing the session's would break the other tests); the kill is timed
from a thread started when the chosen write step begins, so it lands while that transaction is in flight.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import psutil
import pytest

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.server import EmbeddedGraphServer
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS, GraphSnapshot
from graphwiz_trader.graph.store import GraphStore, canonical_snapshot, regime_transitions
from graphwiz_trader.graph.store_errors import GraphStoreError
from graphwiz_trader.testkit.graph import demo_regime_state, demo_snapshots, rename_demo_symbols

pytestmark = [pytest.mark.integration, pytest.mark.slow]

@pytest.fixture(autouse=True)
def _short_driver_retries(monkeypatch) -> None:
    """The driver retries a transaction on a dead server for up to 15 s; 2 s is enough to know it is gone."""
    from graphwiz_trader.graph.store import connection

    monkeypatch.setitem(connection._DRIVER_CONFIG, "max_transaction_retry_time", 2.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedGraphServer]:
    srv = EmbeddedGraphServer(tmp_path_factory.mktemp("graph_faults"), heap="512m", startup_timeout_s=180)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(server: EmbeddedGraphServer) -> GraphStore:
    return GraphStore.connect(GraphSettings(uri=server.uri, user=server.user, password=server.password,
                                            database=server.database))


@pytest.fixture(scope="module")
def market():
    """30 SYNTHETIC assets, hourly, 120 snapshots of window 240 (~12-20k edges per version)."""
    return generate_synthetic_market(n_assets=30, n_bars=241 + 24 * 119, seed=5)


@pytest.fixture(scope="module")
def versions(market) -> tuple[list[GraphSnapshot], list[GraphSnapshot]]:
    """Two versions of the build's snapshots (other pruning): the complete one, and its re-write."""
    closes = rename_demo_symbols(market.close_panel())
    before = demo_snapshots(closes, window=240, stride=24, top_k=8, max_lag=2, leaders_per_asset=2, seed=0)
    after = demo_snapshots(closes, window=240, stride=24, top_k=5, max_lag=1, leaders_per_asset=1, seed=1)
    return before, after


class KillAt:
    """Wraps ``GraphStore._execute``: when the ``nth`` step whose label contains ``label`` begins, a thread
    SIGKILLs the server's JVM ``delay_s`` later (while that transaction runs). Records every step label."""

    def __init__(self, server: EmbeddedGraphServer, label: str, nth: int, delay_s: float = 0.05) -> None:
        self.server, self.label, self.nth, self.delay_s = server, label, nth, delay_s
        self.pid = server.pid
        self.seen: list[str] = []
        self.killed_during: str | None = None
        self._real = GraphStore._execute

    def _kill(self) -> None:
        time.sleep(self.delay_s)
        os.kill(self.pid, signal.SIGKILL)

    def __call__(self, session, step):
        self.seen.append(step.label)
        if self.killed_during is None and sum(self.label in s for s in self.seen) == self.nth:
            self.killed_during = step.label
            threading.Thread(target=self._kill, daemon=True).start()
        return self._real(session, step)

    def wait_dead(self) -> None:
        psutil.Process(self.pid).wait(timeout=30) if psutil.pid_exists(self.pid) else None


def restart(server: EmbeddedGraphServer, old_pid: int) -> GraphStore:
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE
    server.start()  # same folder; start() lets go of the dead server first
    assert server.pid != old_pid
    return connect(server)


def count(store: GraphStore, cypher: str, **params: object) -> int:
    return int(store.query(cypher, **params)[0]["n"])


def assert_snapshots_equal(expected: list[GraphSnapshot], got: list[GraphSnapshot]) -> None:
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        c = canonical_snapshot(e)
        assert (g.as_of, g.window, g.method, g.assets) == (c.as_of, c.window, c.method, c.assets)
        pd.testing.assert_frame_equal(g.edges, c.edges, check_exact=True)
        pd.testing.assert_frame_equal(g.leads, c.leads, check_exact=True)
        assert g.communities == c.communities


def test_sigkill_mid_snapshot_rewrite_keeps_the_previous_snapshots(server, versions, monkeypatch) -> None:
    before, after = versions
    store = connect(server)
    build = "fault-snapshots"
    store.write_snapshots(before, build=build)
    n_before = sum(len(s.edges) for s in before)

    killer = KillAt(server, "create CORRELATED_WITH", nth=6)
    monkeypatch.setattr(GraphStore, "_execute", staticmethod(killer))
    with pytest.raises(GraphStoreError):
        store.write_snapshots(after, build=build, batch_size=500)  # ~12k edges: ~25 edge transactions
    monkeypatch.undo()
    killer.wait_dead()
    store.close()
    assert killer.killed_during == "create CORRELATED_WITH"
    assert not any("switch" in s for s in killer.seen)  # the kill came before the switch

    store = restart(server, killer.pid)
    try:
        assert_snapshots_equal(before, store.read_snapshots(build))  # unchanged, every bit
        builds = store.list_builds().set_index("build")
        assert builds.loc[build, "n_snapshots"] == len(before)
        # the kill really cut a write short: part of the new generation is on disk, invisible to readers
        assert count(store, "MATCH (g:Generation) WHERE g.build = $b AND g.state = 'writing' RETURN count(g) AS n",
                     b=build) == 1
        assert count(store, "MATCH ()-[r:CORRELATED_WITH]->() WHERE r.gen STARTS WITH $b RETURN count(r) AS n",
                     b=build) > n_before

        stats = store.write_snapshots(after, build=build)  # the re-write, this time to the end
        assert stats.deleted_generations == 2  # the superseded generation and the one cut short
        assert_snapshots_equal(after, store.read_snapshots(build))
        assert count(store, "MATCH ()-[r:CORRELATED_WITH]->() WHERE r.gen STARTS WITH $b RETURN count(r) AS n",
                     b=build) == sum(len(s.edges) for s in after)
        assert count(store, "MATCH (s:Snapshot) WHERE s.build = $b RETURN count(s) AS n", b=build) == len(after)
    finally:
        store.close()


def regime_versions(market) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The market's planted path plus 12 asset scopes (complete version) and a relabelled re-write."""
    market_state = demo_regime_state(market.regimes, seed=3)
    times = market.regimes.index[::24]
    assets = [demo_regime_state(market.regimes.loc[times].map({"calm": "low_vol", "trending": "low_vol",
                                                                "crash": "high_vol"}), seed=10 + i, scope=s)
              for i, s in enumerate(sorted(market.bars)[:12])]
    before = pd.concat([market_state, *assets], ignore_index=True)
    before = before.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)[REGIME_COLUMNS]
    rng = np.random.default_rng(0)
    after = before.assign(regime=rng.choice(["calm", "crash"], len(before)), prob=rng.uniform(0.5, 1, len(before)))
    return before, after


def test_sigkill_mid_regime_rewrite_keeps_the_previous_regime_state(server, market, monkeypatch) -> None:
    before, after = regime_versions(market)
    store = connect(server)
    build = "fault-regimes"
    store.write_regimes(before, build=build)

    killer = KillAt(server, "create IN_REGIME", nth=5)
    monkeypatch.setattr(GraphStore, "_execute", staticmethod(killer))
    with pytest.raises(GraphStoreError):
        store.write_regimes(after, build=build, batch_size=300)  # ~3,100 market records: 11 batches of them
    monkeypatch.undo()
    killer.wait_dead()
    store.close()
    assert killer.killed_during is not None and "create IN_REGIME" in killer.killed_during
    assert not any("switch" in s for s in killer.seen)

    store = restart(server, killer.pid)
    try:
        pd.testing.assert_frame_equal(store.read_regimes(build), before, check_exact=True)
        pd.testing.assert_frame_equal(store.read_transitions(build), regime_transitions(before), check_exact=False,
                                      rtol=1e-12)
        assert count(store, "MATCH (g:Regime)<-[r:IN_REGIME]-() WHERE g.build = $b RETURN count(r) AS n",
                     b=build) > len(before)  # a partial write is on disk
        stats = store.write_regimes(after, build=build)
        assert stats.deleted_generations == 2
        pd.testing.assert_frame_equal(store.read_regimes(build), after.reset_index(drop=True), check_exact=True)
        assert count(store, "MATCH (g:Regime)<-[r:IN_REGIME]-() WHERE g.build = $b RETURN count(r) AS n",
                     b=build) == len(after)
    finally:
        store.close()


def test_sigkill_while_the_old_generation_is_deleted_leaves_the_new_one_complete(server, versions,
                                                                                monkeypatch) -> None:
    before, after = versions
    store = connect(server)
    build = "fault-deletion"
    store.write_snapshots(before, build=build)

    killer = KillAt(server, ": delete edges", nth=2)  # the old generation's edges, after the switch
    monkeypatch.setattr(GraphStore, "_execute", staticmethod(killer))
    with pytest.raises(GraphStoreError):
        store.write_snapshots(after, build=build, batch_size=2_000)  # deletes in chunks of 10,000
    monkeypatch.undo()
    killer.wait_dead()
    store.close()
    assert any("switch" in s for s in killer.seen)

    store = restart(server, killer.pid)
    try:
        assert_snapshots_equal(after, store.read_snapshots(build))  # the switch had committed: the new data
        assert count(store, "MATCH (g:Generation) WHERE g.build = $b AND g.state = 'deleting' RETURN count(g) AS n",
                     b=build) == 1
        stats = store.write_snapshots(after, build=build)
        assert stats.deleted_generations == 2  # the half-deleted one and the superseded one
        assert count(store, "MATCH ()-[r:CORRELATED_WITH]->() WHERE r.gen STARTS WITH $b RETURN count(r) AS n",
                     b=build) == sum(len(s.edges) for s in after)
    finally:
        store.close()
