"""Graph features: formulas against plain loops and networkx, the frame's shape, strict point-in-time."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.features.graph_features import (
    feature_names,
    graph_features,
    snapshot_metrics,
    weighted_clustering,
)
from graphwiz_trader.graph.builders import RegimeSettings, build_regime_state, build_snapshots
from graphwiz_trader.graph.snapshot import GraphSnapshot

SYMS = ["AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT"]
IDX = pd.date_range("2024-03-01", periods=40, freq="1h", tz="UTC", name="datetime")


def _hand_bars() -> pd.DataFrame:
    rng = np.random.default_rng(17)
    close = pd.DataFrame(100 * np.exp(np.cumsum(rng.normal(0, 0.01, (40, 4)), axis=0)), index=IDX, columns=SYMS)
    close.iloc[[12, 13, 30], 3] = np.nan              # DDD misses three bars
    return close


def _hand_snapshots() -> list[GraphSnapshot]:
    s1 = GraphSnapshot(
        as_of=IDX[5], window=5, method="pearson", assets=("AAA/USDT", "BBB/USDT", "CCC/USDT"),
        edges=pd.DataFrame({"src": ["AAA/USDT", "AAA/USDT"], "dst": ["BBB/USDT", "CCC/USDT"], "rho": [0.8, -0.4]}),
        leads=pd.DataFrame({"src": ["AAA/USDT"], "dst": ["BBB/USDT"], "lag": [1], "rho": [0.3]}),
        communities={"AAA/USDT": 0, "BBB/USDT": 0, "CCC/USDT": 1})
    s2 = GraphSnapshot(
        as_of=IDX[20], window=5, method="pearson", assets=tuple(SYMS),
        edges=pd.DataFrame({"src": ["AAA/USDT", "AAA/USDT", "BBB/USDT", "CCC/USDT"],
                            "dst": ["BBB/USDT", "DDD/USDT", "CCC/USDT", "DDD/USDT"], "rho": [0.5, 0.7, 0.6, -0.2]}),
        leads=pd.DataFrame({"src": ["AAA/USDT", "DDD/USDT", "BBB/USDT"], "dst": ["CCC/USDT", "CCC/USDT", "AAA/USDT"],
                            "lag": [2, 1, 3], "rho": [0.25, -0.2, 0.4]}),
        communities={"AAA/USDT": 0, "BBB/USDT": 0, "CCC/USDT": 0, "DDD/USDT": 1})
    return [s1, s2]


def _hand_regimes() -> pd.DataFrame:
    labels = ["low_vol"] * 6 + ["high_vol"] * 3 + ["mid_vol"] * 10 + ["low_vol"] * 18   # records at bars 3..39
    mk = pd.DataFrame({"scope": "market", "datetime": IDX[3:], "regime": labels,
                       "prob": np.linspace(0.5, 0.99, 37)})
    ast = pd.DataFrame({"scope": ["AAA/USDT", "BBB/USDT", "AAA/USDT"], "datetime": [IDX[5], IDX[5], IDX[20]],
                        "regime": ["high_vol", "low_vol", "low_vol"], "prob": [0.9, 0.6, 0.7]})
    return pd.concat([mk, ast], ignore_index=True)


def _inst(sym: str) -> str:
    return sym.replace("/", "")


def test_frame_has_between_10_and_20_float_g_columns_indexed_by_datetime_and_qlib_code() -> None:
    feats = graph_features(_hand_snapshots(), _hand_regimes(), _hand_bars())
    assert 10 <= feats.shape[1] <= 20
    assert list(feats.columns) == feature_names()
    assert all(c.startswith("G_") for c in feats.columns)
    assert (feats.dtypes == np.float64).all()
    assert feats.index.names == ["datetime", "instrument"]
    assert set(feats.index.get_level_values("instrument")) == {"AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"}
    assert len(feats) == 40 * 4 - 3                            # one row per bar with a close
    assert feats.index.is_monotonic_increasing


def test_bar_features_equal_a_plain_python_loop() -> None:
    bars, snaps, reg = _hand_bars(), _hand_snapshots(), _hand_regimes()
    feats = graph_features(snaps, reg, bars)
    logp = np.log(bars)
    mk = reg[reg["scope"] == "market"].reset_index(drop=True)
    for t_pos, t in enumerate(IDX):
        live = [s for s in snaps if s.as_of <= t]
        snap = live[-1] if live else None
        for sym in SYMS:
            if np.isnan(bars.loc[t, sym]):
                assert (t, _inst(sym)) not in feats.index
                continue
            row = feats.loc[(t, _inst(sym))]
            # --- market regime: one-hot, prob, bars since the last change
            recs = mk[mk["datetime"] <= t]
            if len(recs) == 0:
                assert row[["G_mkt_regime_low_vol", "G_mkt_regime_prob", "G_mkt_regime_age"]].isna().all()
            else:
                cur = recs.iloc[-1]
                assert row[f"G_mkt_regime_{cur['regime']}"] == 1.0
                assert row[["G_mkt_regime_low_vol", "G_mkt_regime_mid_vol", "G_mkt_regime_high_vol"]].sum() == 1.0
                assert row["G_mkt_regime_prob"] == cur["prob"]
                age = 0
                while age + 1 < len(recs) and recs.iloc[-2 - age]["regime"] == cur["regime"]:
                    age += 1
                assert row["G_mkt_regime_age"] == age
            # --- asset regime: latest record of this asset at or before t
            arec = reg[(reg["scope"] == sym) & (reg["datetime"] <= t)]
            if len(arec):
                assert row["G_asset_regime"] == (1.0 if arec.iloc[-1]["regime"] == "high_vol" else 0.0)
                assert row["G_asset_regime_prob"] == arec.iloc[-1]["prob"]
            else:
                assert math.isnan(row["G_asset_regime"])
            # --- snapshot features
            if snap is None or sym not in snap.assets:
                assert row[["G_wdeg", "G_comm_id", "G_nbr_mom_1", "G_leadlag"]].isna().all()
                continue
            nbrs = {}
            for s, d, r in snap.edges.itertuples(index=False):
                if s == sym:
                    nbrs[d] = r
                if d == sym:
                    nbrs[s] = r
            assert row["G_wdeg"] == pytest.approx(sum(abs(r) for r in nbrs.values()), abs=1e-12)
            cid = snap.communities[sym]
            members = [a for a, c in snap.communities.items() if c == cid]
            assert row["G_comm_id"] == cid and row["G_comm_size"] == len(members)
            others = [a for a in members if a != sym]
            if others:
                assert row["G_comm_corr"] == pytest.approx(sum(nbrs.get(a, 0.0) for a in others) / len(others), abs=1e-12)
            else:
                assert math.isnan(row["G_comm_corr"])
            for h in (1, 6, 24):
                num = den = 0.0
                for j, r in nbrs.items():
                    if t_pos - h >= 0:
                        mom = logp[j].iloc[t_pos] - logp[j].iloc[t_pos - h]
                        if np.isfinite(mom):
                            num += r * mom
                            den += abs(r)
                if den > 0:
                    assert row[f"G_nbr_mom_{h}"] == pytest.approx(num / den, abs=1e-12)
                else:
                    assert math.isnan(row[f"G_nbr_mom_{h}"])
            num = den = 0.0
            for s, d, lag, r in snap.leads.itertuples(index=False):
                if d != sym:
                    continue
                k = t_pos + 1 - lag                          # r_j(t + 1 - lag), known at t
                if k >= 1:
                    ret = logp[s].iloc[k] - logp[s].iloc[k - 1]
                    if np.isfinite(ret):
                        num += r * ret
                        den += abs(r)
            assert row["G_leadlag"] == pytest.approx(num / den if den > 0 else 0.0, abs=1e-12)


@pytest.fixture(scope="module")
def synthetic_graph():
    market = generate_synthetic_market(n_assets=8, n_bars=24 * 50, seed=4)
    snaps = build_snapshots(market.bars, 240, 48, min_abs_rho=0.2, top_k=4, lead_max_lag=3,
                            lead_min_abs_rho=0.1, lead_min_gain=0.02)
    return market, snaps


def test_snapshot_metrics_equal_networkx_on_the_abs_rho_graph(synthetic_graph) -> None:
    market, snaps = synthetic_graph
    syms = sorted(market.bars)
    met = snapshot_metrics(snaps, syms)
    for k in (0, len(snaps) // 2, len(snaps) - 1):
        s = snaps[k]
        g = nx.Graph()
        g.add_nodes_from(s.assets)
        g.add_weighted_edges_from((a, b, abs(r)) for a, b, r in s.edges.itertuples(index=False))
        assert g.number_of_edges() < len(s.assets) * (len(s.assets) - 1) / 2    # pruned: not complete
        deg = dict(g.degree(weight="weight"))
        clu = nx.clustering(g, weight="weight")
        pr = nx.pagerank(g, weight="weight", tol=1e-13, max_iter=10_000)
        eig = nx.eigenvector_centrality(g, weight="weight", tol=1e-13, max_iter=100_000)
        for a in s.assets:
            c = syms.index(a)
            assert met.values["G_wdeg"][k, c] == pytest.approx(deg[a], abs=1e-12)
            assert met.values["G_clustering"][k, c] == pytest.approx(clu[a], abs=1e-12)
            assert met.values["G_pagerank"][k, c] == pytest.approx(pr[a], abs=1e-9)
            assert met.values["G_eigvec"][k, c] == pytest.approx(eig[a], abs=1e-7)


def test_vectorised_clustering_equals_networkx_on_random_weighted_graphs() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        n = 9
        w = rng.uniform(0, 1, (n, n)) * (rng.random((n, n)) < 0.5)
        w = np.triu(w, 1)
        w = w + w.T
        g = nx.from_numpy_array(w)
        ref = nx.clustering(g, weight="weight")
        np.testing.assert_allclose(weighted_clustering(w), [ref[i] for i in range(n)], atol=1e-12)


def test_features_are_point_in_time_under_truncation() -> None:
    market = generate_synthetic_market(n_assets=6, n_bars=1500, seed=9)
    params = RegimeSettings(min_train=600, refit_every=120, burn_in=150, asset_vol_window=48, asset_min_history=96)
    kw = dict(window=240, stride=30, min_abs_rho=0.1, top_k=4, lead_max_lag=3, lead_min_abs_rho=0.1,
              lead_min_gain=0.02)

    def pipeline(bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
        snaps = build_snapshots(bars, **kw)
        reg = build_regime_state(bars, params, asset_times=[s.as_of for s in snaps])
        return graph_features(snaps, reg, bars)

    full = pipeline(market.bars)
    assert full["G_leadlag"].abs().sum() > 0 and full["G_mkt_regime_prob"].notna().sum() > 0
    times = market.bars["SYN00/USDT"].index
    for cut in (times[700], times[1033], times[1499]):
        trunc = pipeline({s: df.loc[:cut] for s, df in market.bars.items()})
        ref = full.loc[full.index.get_level_values("datetime") <= cut]
        pd.testing.assert_frame_equal(trunc, ref, check_exact=False, rtol=0, atol=1e-12)


def test_a_feature_at_t_uses_the_latest_snapshot_with_as_of_at_or_before_t(synthetic_graph) -> None:
    market, snaps = synthetic_graph
    feats = graph_features(snaps, None, market.bars)
    met = snapshot_metrics(snaps, sorted(market.bars))
    wdeg = feats["G_wdeg"].unstack("instrument")
    col = wdeg.columns.get_loc("SYN02USDT")
    for k, s in enumerate(snaps):
        assert wdeg.loc[s.as_of].iloc[col] == met.values["G_wdeg"][k, 2]         # usable at its own bar
        before = wdeg.index[wdeg.index.get_loc(s.as_of) - 1]
        if k == 0:
            assert np.isnan(wdeg.loc[before].iloc[col])                             # nothing before the first
        else:
            assert wdeg.loc[before].iloc[col] == met.values["G_wdeg"][k - 1, 2]
    assert feats.filter(like="regime").isna().all().all()                          # no regime frame given


def test_the_metrics_cache_gives_the_same_frame(synthetic_graph) -> None:
    market, snaps = synthetic_graph
    met = snapshot_metrics(snaps, sorted(market.bars))
    pd.testing.assert_frame_equal(graph_features(snaps, None, market.bars, metrics=met),
                                  graph_features(snaps, None, market.bars))


def test_snapshot_symbols_absent_from_the_bars_are_named() -> None:
    bars = _hand_bars().drop(columns=["DDD/USDT"])
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) DDD/USDT"):
        graph_features(_hand_snapshots(), None, bars)
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) ZZZ/USDT"):
        graph_features(_hand_snapshots(), None, _hand_bars(), symbols=["AAA/USDT", "ZZZ/USDT"])


def test_time_units_of_bars_snapshots_and_regimes_do_not_matter() -> None:
    base = graph_features(_hand_snapshots(), _hand_regimes(), _hand_bars())
    bars = _hand_bars()
    bars.index = bars.index.as_unit("ms")
    reg = _hand_regimes()
    reg["datetime"] = pd.DatetimeIndex(reg["datetime"]).as_unit("us")
    got = graph_features(_hand_snapshots(), reg, bars)
    pd.testing.assert_frame_equal(got, base)


def test_without_snapshots_every_graph_column_is_nan_and_regimes_still_apply() -> None:
    feats = graph_features([], _hand_regimes(), _hand_bars())
    assert feats[["G_wdeg", "G_eigvec", "G_nbr_mom_1", "G_leadlag"]].isna().all().all()
    assert feats["G_mkt_regime_prob"].notna().sum() == 4 * 37 - 3


def test_naive_regime_times_are_rejected() -> None:
    from graphwiz_trader.errors import DataError

    reg = _hand_regimes()
    reg["datetime"] = pd.DatetimeIndex(reg["datetime"]).tz_localize(None)
    with pytest.raises(DataError, match="tz-aware UTC"):
        graph_features(_hand_snapshots(), reg, _hand_bars())


def test_eigenvector_centrality_is_taken_per_component_on_a_disconnected_snapshot():
    import networkx as nx

    from graphwiz_trader.features.graph_features import _graph_metrics

    w = np.zeros((6, 6))
    for i, j, v in [(0, 1, 0.8), (1, 2, 0.5), (0, 2, 0.3), (3, 4, 0.9)]:  # a triangle, a pair, an isolated node
        w[i, j] = w[j, i] = v
    eig, pr = _graph_metrics(w, np.ones(6, bool))
    tri = nx.eigenvector_centrality_numpy(nx.from_numpy_array(w[:3, :3]), weight="weight")
    np.testing.assert_allclose(eig[:3], [tri[0], tri[1], tri[2]], atol=1e-12)
    np.testing.assert_allclose(eig[3:5], [2 ** -0.5, 2 ** -0.5])
    assert eig[5] == 0.0 and abs(pr.sum() - 1.0) < 1e-12
