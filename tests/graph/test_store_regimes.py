"""Regime state written to a real Bolt server reads back exactly, point-in-time, with correct transitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS
from graphwiz_trader.graph.store import GraphStore, regime_transitions
from graphwiz_trader.testkit.graph import demo_regime_state


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
    stats = graph_store.write_regimes(regimes, batch_size=300)
    assert stats.regime_records == len(regimes)
    back = graph_store.read_regimes()
    pd.testing.assert_frame_equal(back, expected(regimes, ["BTC/USDT", "market"]), check_exact=True)
    assert str(back["datetime"].dtype) == "datetime64[ns, UTC]"
    market = graph_store.read_regimes("market")
    pd.testing.assert_frame_equal(market, expected(regimes, ["market"]), check_exact=True)


def test_regime_reads_as_of_t_never_show_later_labels(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes)
    market_times = regimes.loc[regimes["scope"] == "market", "datetime"]
    for t in market_times.iloc[[0, 100, 517, -1]]:
        got = graph_store.read_regimes(["market", "BTC/USDT"], end=t)
        assert (got["datetime"] <= t).all()
        pd.testing.assert_frame_equal(got, expected(regimes, ["market", "BTC/USDT"], end=t), check_exact=True)


def test_in_regime_intervals_chain_each_record_to_the_next(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    graph_store.write_regimes(regimes)
    rows = graph_store.query("MATCH (:Market {id: 'market'})-[r:IN_REGIME]->(g:Regime) "
                             "RETURN r.`from` AS f, r.`to` AS t, g.name AS name, g.scope AS scope ORDER BY f")
    f = [pd.Timestamp(r["f"].to_native()) for r in rows]
    t = [None if r["t"] is None else pd.Timestamp(r["t"].to_native()) for r in rows]
    assert t[:-1] == f[1:] and t[-1] is None
    assert {r["scope"] for r in rows} == {"market"}


def test_appending_regimes_closes_the_last_interval(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    market = expected(regimes, ["market"])
    graph_store.write_regimes(market.iloc[:500])
    graph_store.write_regimes(market.iloc[500:])
    pd.testing.assert_frame_equal(graph_store.read_regimes("market"), market, check_exact=True)
    to = graph_store.query("MATCH (:Market)-[r:IN_REGIME]->() WHERE r.`from` = $t RETURN r.`to` AS t",
                           t=market["datetime"].iat[499])
    assert pd.Timestamp(to[0]["t"].to_native()) == market["datetime"].iat[500]


def test_rewriting_overlapping_regimes_replaces_records(graph_store: GraphStore, regimes: pd.DataFrame) -> None:
    market = expected(regimes, ["market"])
    graph_store.write_regimes(market)
    patch = market.iloc[100:110].assign(regime="crash", prob=0.25)
    graph_store.write_regimes(patch)
    want = market.copy()
    want.loc[100:109, "regime"] = "crash"
    want.loc[100:109, "prob"] = 0.25
    pd.testing.assert_frame_equal(graph_store.read_regimes("market"), want, check_exact=True)
    n = graph_store.query("MATCH (:Market)-[r:IN_REGIME]->() RETURN count(r) AS n")[0]["n"]
    assert n == len(market)


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
    graph_store.write_regimes(regimes)
    got = graph_store.read_transitions()
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
    graph_store.write_regimes(regimes[regimes["scope"] == "BTC/USDT"])
    with pytest.raises(UnknownSymbolError) as err:
        graph_store.read_regimes(["market", "ETH/USDT", "BTC/USDT"])
    assert err.value.missing == ["market", "ETH/USDT"]
    assert "market, ETH/USDT" in str(err.value)
