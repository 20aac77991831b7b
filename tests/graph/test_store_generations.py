"""Generations: which unfinished generations a writer may delete, and reads that stay consistent while a
re-write of the same build switches generations under them."""

from __future__ import annotations

import os
import socket
import time

import psutil
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.store import GraphStore, canonical_snapshot
from graphwiz_trader.graph.store import generations as G
from graphwiz_trader.testkit.graph import demo_snapshots, rename_demo_symbols


def writing(**over: object) -> dict[str, object]:
    """A 'writing' generation row as GENERATIONS_OF_BUILD returns it, by default this process's, just started."""
    me = psutil.Process()
    row = {"id": "b:1", "state": "writing", "started_s": time.time(), "host": socket.gethostname(),
           "pid": os.getpid(), "pstart": me.create_time()}
    row.update(over)
    return row


def test_a_generation_is_abandoned_only_when_its_writer_cannot_finish_it(monkeypatch) -> None:
    now = time.time()
    monkeypatch.setattr(G, "_ACTIVE", {"b:1"})
    assert not G._abandoned(writing(), now)                        # this process, operation still open
    assert G._abandoned(writing(id="b:2"), now)                    # this process, operation ended
    parent = psutil.Process(os.getppid())
    assert not G._abandoned(writing(id="b:2", pid=parent.pid, pstart=parent.create_time()), now)  # alive elsewhere
    assert G._abandoned(writing(id="b:2", pid=parent.pid, pstart=parent.create_time() - 100), now)  # PID reused
    dead = psutil.Popen(["true"])
    dead.wait()
    assert G._abandoned(writing(id="b:2", pid=dead.pid, pstart=0.0), now)                 # writer gone
    assert not G._abandoned(writing(id="b:2", host="another-machine"), now)               # cannot tell: keep
    assert G._abandoned(writing(host="another-machine", started_s=now - G.STALE_AFTER_S - 1), now)  # a day old


def test_generation_ids_name_their_build_and_never_repeat() -> None:
    ids = {G.new_generation_id("3f9c0a1d2b4e5f60") for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("3f9c0a1d2b4e5f60:") for i in ids)


@pytest.fixture(scope="module")
def two_versions():
    m = generate_synthetic_market(n_assets=8, n_bars=121 + 24 * 11, seed=3)
    closes = rename_demo_symbols(m.close_panel())
    a = demo_snapshots(closes, window=120, stride=24, top_k=3, max_lag=2, leaders_per_asset=2, seed=0)
    b = demo_snapshots(closes, window=120, stride=24, top_k=2, max_lag=1, leaders_per_asset=1, seed=1)
    return a, b


def test_a_read_during_a_rewrite_of_its_build_returns_one_complete_generation(graph_store: GraphStore,
                                                                               graph_settings, two_versions,
                                                                               monkeypatch) -> None:
    """The re-write switches and deletes the generation the read started on, between two of its queries."""
    first, second = two_versions
    graph_store.write_snapshots(first, build="b")
    writer = GraphStore.connect(graph_settings, ensure_schema=False)
    real = GraphStore._execute
    labels: list[str] = []

    def execute(session, step):
        labels.append(step.label)
        if step.label == "read edges" and labels.count("read edges") == 1:
            writer.write_snapshots(second, build="b")  # concurrent re-write: old generation gone after this
        return real(session, step)

    monkeypatch.setattr(GraphStore, "_execute", staticmethod(execute))
    try:
        back = graph_store.read_snapshots("b")
    finally:
        monkeypatch.undo()
        writer.close()
    assert labels.count("read snapshots") == 2  # it noticed the switch and read the new generation
    assert len(back) == len(second)
    for exp, got in zip(second, back):
        c = canonical_snapshot(exp)
        assert got.edges.equals(c.edges) and got.leads.equals(c.leads) and got.communities == c.communities
