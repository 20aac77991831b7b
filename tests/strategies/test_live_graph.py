"""The graph updated one bar at a time equals the full build on the same bars: snapshots, regimes and features."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.features.graph_features import graph_features
from graphwiz_trader.graph.builders import RegimeSettings
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_graph
from graphwiz_trader.strategies.bars import BarBuffer
from graphwiz_trader.strategies.live_graph import LiveGraph

REG = RegimeSettings(min_train=150, refit_every=40, max_train=300, burn_in=30, asset_vol_window=24,
                     asset_min_history=40, n_iter=30)
SPEC = GraphBuildSettings(window=48, stride=12, min_abs_rho=0.2, top_k=4, lead_max_lag=3, regimes=REG,
                          exchange="synthetic")


@pytest.fixture(scope="module")
def market():
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=6, n_clusters=2, n_bars=420, seed=3))
    bars = {s: df.copy() for s, df in m.bars.items()}
    s0 = sorted(bars)[1]
    bars[s0] = bars[s0].drop(bars[s0].index[250:253])   # a gap in one symbol
    return bars


def full_features_at(bars, t):
    cut = {s: df.loc[:t] for s, df in bars.items()}
    build = build_graph(cut, SPEC)
    feats = graph_features(build.snapshots, build.regimes, cut)
    return build, feats[feats.index.get_level_values("datetime") == t]


def test_each_new_bar_gives_the_features_and_snapshot_the_full_build_gives_at_that_bar(market):
    symbols = sorted(market)
    buf = BarBuffer(symbols, pd.Timedelta("1h"), 500)
    t0 = market[symbols[0]].index[299]
    buf.append({s: df.loc[:t0] for s, df in market.items()})
    g = LiveGraph(symbols, SPEC, "1h")
    g.update(buf.field("close"), len(buf), build=False)
    g.build_latest(buf.field("close"))
    times = buf.index
    union = pd.DatetimeIndex(sorted(set().union(*[df.index for df in market.values()])))
    checked = 0
    for t in union[union > times[-1]][:120]:
        new = buf.append({s: df.loc[[t]] for s, df in market.items() if t in df.index})
        g.update(buf.field("close", 60), len(new))
        if t.hour % 7 or checked >= 5:
            continue
        live = g.features(buf.field("close", 30))
        build, full = full_features_at(market, t)
        full.index = full.index.set_levels(full.index.levels[0].tz_convert(None), level=0)
        full = full[live.columns]
        assert list(live.index) == list(full.index)
        np.testing.assert_allclose(live.to_numpy(), full.to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)
        snap = build.snapshots[-1]
        assert g.snapshot.as_of == snap.as_of and g.snapshot.assets == snap.assets
        pd.testing.assert_frame_equal(g.snapshot.edges.reset_index(drop=True), snap.edges.reset_index(drop=True))
        assert g.snapshot.communities == snap.communities
        checked += 1
    assert checked == 5


def test_only_the_newest_snapshot_is_built_per_due_bar(market):
    symbols = sorted(market)
    buf = BarBuffer(symbols, pd.Timedelta("1h"), 500)
    t0 = market[symbols[0]].index[299]
    buf.append({s: df.loc[:t0] for s, df in market.items()})
    g = LiveGraph(symbols, SPEC, "1h")
    g.update(buf.field("close"), len(buf), build=False)
    first = g.build_latest(buf.field("close"))
    built = []
    union = pd.DatetimeIndex(sorted(set().union(*[df.index for df in market.values()])))
    for t in union[union > buf.index[-1]][:30]:
        new = buf.append({s: df.loc[[t]] for s, df in market.items() if t in df.index})
        snap = g.update(buf.field("close", 60), len(new))
        if snap is not None:
            built.append(snap.as_of)
    assert first is not None and len(built) in (2, 3)
    assert all((b - first.as_of) % pd.Timedelta(hours=12) == pd.Timedelta(0) for b in built)
