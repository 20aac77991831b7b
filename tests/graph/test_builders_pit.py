"""Point-in-time: snapshots rebuilt from bars truncated at t are the ones built from all bars (as_of <= t)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.builders import build_snapshots


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_snapshots_are_unchanged_when_later_bars_are_removed(method: str) -> None:
    market = generate_synthetic_market(n_assets=8, n_bars=1500, seed=21)
    bars = dict(market.bars)
    late = bars["SYN03/USDT"].iloc[400:].copy()               # listed late
    late.iloc[200:230] = np.nan                                 # and a gap
    bars["SYN03/USDT"] = late.dropna()
    kw = dict(window=240, stride=36, min_periods=120, method=method, min_abs_rho=0.1, top_k=5, lead_max_lag=3,
              lead_min_abs_rho=0.1, lead_min_gain=0.02)
    full = build_snapshots(bars, **kw)
    times = market.bars["SYN00/USDT"].index
    for cut in (times[420], times[700], times[1111], times[1499]):
        trunc = build_snapshots({s: df.loc[:cut] for s, df in bars.items()}, **kw)
        assert len(trunc) == sum(s.as_of <= cut for s in full)
        for a, b in zip(trunc, full):
            assert a.as_of == b.as_of and a.as_of <= cut
            assert a.assets == b.assets and a.communities == b.communities
            pd.testing.assert_frame_equal(a.edges, b.edges, check_exact=False, rtol=0, atol=1e-12)
            pd.testing.assert_frame_equal(a.leads, b.leads, check_exact=False, rtol=0, atol=1e-12)


def test_a_snapshot_ignores_bars_after_its_as_of() -> None:
    market = generate_synthetic_market(n_assets=5, n_bars=800, seed=3)
    snaps = build_snapshots(market.bars, 200, 100, lead_max_lag=2)
    target = snaps[2]
    shocked = {s: df.copy() for s, df in market.bars.items()}
    for df in shocked.values():                                 # rewrite every bar after as_of
        after = df.index > target.as_of
        df.loc[after, "close"] = df.loc[after, "close"].to_numpy()[::-1] * 3.0
    again = build_snapshots(shocked, 200, 100, lead_max_lag=2)[2]
    assert again.as_of == target.as_of
    pd.testing.assert_frame_equal(again.edges, target.edges, check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(again.leads, target.leads, check_exact=False, rtol=0, atol=1e-12)
