"""Builders hand the store exactly what it reads back: snapshots already in canonical form, regime columns."""

from __future__ import annotations

import pandas as pd

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.builders import RegimeSettings, build_regime_state, build_snapshots
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS
from graphwiz_trader.graph.store import canonical_snapshot


def test_built_snapshots_equal_their_canonical_read_back_form() -> None:
    m = generate_synthetic_market(n_assets=8, n_bars=1200, seed=4)
    snaps = build_snapshots(m.bars, 240, 48, top_k=4, lead_max_lag=3, lead_min_abs_rho=0.1, lead_min_gain=0.02)
    assert sum(len(s.leads) for s in snaps) > 0
    for s in snaps:
        c = canonical_snapshot(s)
        assert (c.as_of, c.window, c.method, c.assets, c.communities) == (s.as_of, s.window, s.method, s.assets,
                                                                          s.communities)
        pd.testing.assert_frame_equal(c.edges, s.edges)
        pd.testing.assert_frame_equal(c.leads, s.leads)


def test_regime_state_has_the_documented_columns_and_dtypes() -> None:
    m = generate_synthetic_market(n_assets=4, n_bars=1000, seed=2)
    times = m.bars["SYN00/USDT"].index[200::24]
    st = build_regime_state(m.bars, RegimeSettings(min_train=500, asset_min_history=100), asset_times=times)
    assert list(st.columns) == REGIME_COLUMNS
    assert str(st["datetime"].dtype) == "datetime64[ns, UTC]" and st["prob"].dtype == float
    assert not st.duplicated(["scope", "datetime"]).any()
    assert set(st["scope"]) == {"market", *m.bars}
