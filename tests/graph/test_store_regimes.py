"""Regime state written to a real Bolt server reads back exactly, point-in-time, per build (the shared market
scope never merges two builds' records), with correct transitions, and re-writes are crash-safe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS
from graphwiz_trader.graph.store import GraphStore, regime_transitions
from graphwiz_trader.testkit.graph import demo_regime_state

B = "build-r"


@pytest.fixture(scope="module")
def regimes() -> pd.DataFrame:
    """Planted per-bar market regimes of the synthetic market (SYNTHETIC) + an asset scope per 24 bars."""
    m = generate_synthetic_market(n_assets=4, n_bars=24 * 40, seed=11)
    market = demo_regime_state(m.regimes, seed=1)
    daily = m.regimes.iloc[::24]
    asset = demo_regime_state(daily.map({"calm": "low_vol", "trending": "low_vol", "crash": "high_vol"}),
                              seed=2, scope="BTC/USDT")
    frame = pd.concat([market, asset], ignore_index=True)
    assert market["regime"].nunique() == 3 and asset["regime"].nunique() == 2
    return frame


def expected(frame: pd.DataFrame, scopes: list[str], end=None) -> pd.DataFrame:
    f = frame[frame["scope"].isin(scopes)]
    if end is not None:
        f = f[f["datetime"] <= end]
    return f.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)[REGIME_COLUMNS]


def test_regimes_read_back_exactly(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    stats = graph_store.write_regimes(regimes, build=B, batch_size=300)
    assert stats.regime_records == len(regimes)
    back = graph_store.read_regimes(B)
    pd.testing.assert_frame_equal(back, expected(regimes, ["BTC/USDT", "market"]), check_exact=True)
    assert str(back["datetime"].dtype) == "datetime64[ns, UTC]"
    market = graph_store.read_regimes(B, "market")
    pd.testing.assert_frame_equal(market, expected(regimes, ["market"]), check_exact=True)


def test_regime_reads_as_of_t_never_show_later_labels(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes, build=B)
    market_times = regimes.loc[regimes["scope"] == "market", "datetime"]
    for t in market_times.iloc[[0, 100, 517, -1]]:
        got = graph_store.read_regimes(B, ["market", "BTC/USDT"], end=t)
        assert (got["datetime"] <= t).all()
        pd.testing.assert_frame_equal(got, expected(regimes, ["market", "BTC/USDT"], end=t), check_exact=True)


def test_in_regime_intervals_chain_each_record_to_the_next(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes, build=B)
    rows = graph_store.query("MATCH (:Market {id: 'market'})-[r:IN_REGIME]->(g:Regime) "
                             "RETURN r.`from` AS f, r.`to` AS t, g.name AS name, g.scope AS scope ORDER BY f")
    f = [pd.Timestamp(r["f"].to_native()) for r in rows]
    t = [None if r["t"] is None else pd.Timestamp(r["t"].to_native()) for r in rows]
    assert t[:-1] == f[1:] and t[-1] is None
    assert {r["scope"] for r in rows} == {"market"}


def count(store: GraphStore, cypher: str) -> int:
    return int(store.query(cypher)[0]["n"])


def test_rewriting_a_builds_regimes_replaces_them_whole(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    market = expected(regimes, ["market"])
    graph_store.write_regimes(market.iloc[:500], build=B)
    stats = graph_store.write_regimes(market, build=B)
    assert (stats.replaced, stats.deleted_generations) == (500, 1)
    pd.testing.assert_frame_equal(graph_store.read_regimes(B, "market"), market, check_exact=True)
    assert count(graph_store, "MATCH (:Market)-[r:IN_REGIME]->() RETURN count(r) AS n") == len(market)
    assert count(graph_store, "MATCH (g:Regime) RETURN count(g) AS n") == market["regime"].nunique()
    to = graph_store.query("MATCH (:Market)-[r:IN_REGIME]->() WHERE r.`from` = $t RETURN r.`to` AS t",
                           t=market["datetime"].iat[499])
    assert pd.Timestamp(to[0]["t"].to_native()) == market["datetime"].iat[500]


def test_the_market_scope_of_two_builds_never_merges(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    """Build b's market path covers other times with other labels; each build reads back exactly its own."""
    a = expected(regimes, ["market", "BTC/USDT"])
    market = expected(regimes, ["market"])
    b = market.iloc[100:700].assign(regime="crash", prob=0.25)
    b = pd.concat([b, b.assign(datetime=b["datetime"] + pd.Timedelta(minutes=30))]).sort_values("datetime")
    b = b.reset_index(drop=True)
    graph_store.write_regimes(a, build="build-a")
    graph_store.write_regimes(b, build="build-b")
    pd.testing.assert_frame_equal(graph_store.read_regimes("build-a"), a, check_exact=True)
    pd.testing.assert_frame_equal(graph_store.read_regimes("build-b"), b, check_exact=True)
    t = b["datetime"].iat[300]
    pd.testing.assert_frame_equal(graph_store.read_regimes("build-a", "market", end=t),
                                  expected(regimes, ["market"], end=t), check_exact=True)
    pd.testing.assert_frame_equal(graph_store.read_transitions("build-b"), regime_transitions(b),
                                  check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(graph_store.read_transitions("build-a"), regime_transitions(a),
                                  check_exact=False, rtol=1e-12)


def _fail_at(label_part: str):
    real = GraphStore._execute

    def execute(session, step):
        if label_part in step.label:
            raise ConnectionError(f"simulated crash at {step.label!r}")
        return real(session, step)
    return staticmethod(execute)


@pytest.mark.parametrize("crash_at", ["create IN_REGIME", "create TRANSITIONS_TO", "switch regimes"])
def test_a_regime_rewrite_cut_short_leaves_the_previous_records_readable(graph_store: GraphStore,
                                                                        regimes: pd.DataFrame, crash_at: str,
                                                                        monkeypatch) -> None:
    before = expected(regimes, ["market", "BTC/USDT"])
    graph_store.write_regimes(before, build=B)
    monkeypatch.setattr(GraphStore, "_execute", _fail_at(crash_at))
    with pytest.raises(ConnectionError):
        graph_store.write_regimes(before.assign(regime="crash"), build=B, batch_size=100)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(graph_store.read_regimes(B), before, check_exact=True)
    pd.testing.assert_frame_equal(graph_store.read_transitions(B), regime_transitions(before), check_exact=False,
                                  rtol=1e-12)
    stats = graph_store.write_regimes(before.iloc[::2], build=B)
    assert stats.deleted_generations == 2  # the abandoned generation and the superseded one
    assert count(graph_store, "MATCH ()-[r:IN_REGIME]->() RETURN count(r) AS n") == len(before.iloc[::2])


def plain_loop_transitions(labels: list[str], times: list[pd.Timestamp]) -> dict[tuple[str, str], tuple]:
    """count, prob, mean_duration (hours) by a plain loop, independent of regime_transitions()."""
    count: dict[tuple[str, str], int] = {}
    for a, b in zip(labels[:-1], labels[1:]):
        count[(a, b)] = count.get((a, b), 0) + 1
    runs = []  # (label, start, end or None)
    for i, lab in enumerate(labels):
        if i == 0 or lab != labels[i - 1]:
            if runs:
                runs[-1][2] = times[i]
            runs.append([lab, times[i], None])
    dur: dict[tuple[str, str], list[float]] = {}
    for k in range(len(runs) - 1):
        h = (runs[k][2] - runs[k][1]).total_seconds() / 3600
        dur.setdefault((runs[k][0], runs[k + 1][0]), []).append(h)
        dur.setdefault((runs[k][0], runs[k][0]), []).append(h)
    out = {}
    for (a, b), c in count.items():
        total = sum(v for (x, _), v in count.items() if x == a)
        d = dur.get((a, b))
        out[(a, b)] = (c, c / total, None if not d else sum(d) / len(d))
    return out


def test_transitions_match_a_plain_loop(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes, build=B)
    got = graph_store.read_transitions(B)
    for scope in ["market", "BTC/USDT"]:
        f = expected(regimes, [scope])
        want = plain_loop_transitions(f["regime"].tolist(), list(f["datetime"]))
        g = got[got["scope"] == scope]
        assert len(g) == len(want)
        for row in g.itertuples(index=False):
            c, p, md = want[(row.from_regime, row.to_regime)]
            assert row.count == c and row.prob == pytest.approx(p, rel=1e-12)
            if md is None:  # no complete run: null in the graph, NaN in the frame
                assert np.isnan(row.mean_duration)
            else:
                assert row.mean_duration == pytest.approx(md, rel=1e-12)
        probs = g.groupby("from_regime")["prob"].sum().to_numpy()
        assert np.allclose(probs, 1.0)
    pd.testing.assert_frame_equal(got, regime_transitions(regimes), check_exact=False, rtol=1e-12)


def test_unknown_regime_scopes_raise_an_error_naming_them(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes[regimes["scope"] == "BTC/USDT"], build=B)
    with pytest.raises(UnknownSymbolError) as err:
        graph_store.read_regimes(B, ["market", "ETH/USDT", "BTC/USDT"])
    assert err.value.missing == ["market", "ETH/USDT"]
    assert "market, ETH/USDT" in str(err.value)
