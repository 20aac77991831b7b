"""Builders on real Binance hourly candles (../shared/data): pandas agreement with late listings, point-in-time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.bars import normalize_bars
from graphwiz_trader.core.symbols import file_stem
from graphwiz_trader.data.paths import binance_dir
from graphwiz_trader.features.graph_features import graph_features
from graphwiz_trader.graph.builders import build_snapshots, log_returns

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

SYMBOLS = ["BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "AVAX/USDT"]   # SOL and AVAX list late in 2020


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    folder = binance_dir() / "1h"
    if not folder.is_dir():
        pytest.skip(f"real data not found at {folder} (see ../shared/data/README.md)")
    out = {}
    for sym in SYMBOLS:
        path = folder / f"{file_stem(sym)}-1h.feather"
        df = normalize_bars(pd.read_feather(path), where=str(path)).sort_index()
        out[sym] = df.loc[:"2021-01-31"]
    return out


def test_real_snapshots_match_pandas_including_windows_where_coins_list(bars) -> None:
    snaps = build_snapshots(bars, 720, 24, min_periods=360, lead_max_lag=3)
    rets = log_returns(pd.DataFrame({s: df["close"] for s, df in bars.items()}).sort_index(axis=1))
    sol_start = bars["SOL/USDT"].index[0]
    listing = [k for k, s in enumerate(snaps) if s.as_of >= sol_start][:40:8]      # SOL partial in these
    for k in listing + [0, len(snaps) - 1]:
        s = snaps[k]
        end = rets.index.get_loc(s.as_of)
        win = rets.iloc[end - 719: end + 1]
        ref = win.corr(min_periods=360)
        for a, b, r in s.edges.itertuples(index=False):
            assert r == pytest.approx(ref.loc[a, b], abs=1e-12)
        assert s.assets == tuple(c for c in win.columns if win[c].notna().sum() >= 360)
    assert any("SOL/USDT" not in snaps[k].assets for k in listing)
    assert "SOL/USDT" in snaps[-1].assets


def test_real_snapshots_and_features_are_point_in_time(bars) -> None:
    kw = dict(window=720, stride=24, min_periods=360, top_k=3, lead_max_lag=3)
    full = build_snapshots(bars, **kw)
    feats = graph_features(full, None, bars)
    for cut in (pd.Timestamp("2020-09-15 13:00", tz="UTC"), pd.Timestamp("2020-12-01 00:00", tz="UTC")):
        part_bars = {s: df.loc[:cut] for s, df in bars.items()}
        part = build_snapshots(part_bars, **kw)
        assert len(part) == sum(s.as_of <= cut for s in full)
        for a, b in zip(part, full):
            assert a.as_of == b.as_of and a.communities == b.communities
            np.testing.assert_allclose(a.edges["rho"], b.edges["rho"], rtol=0, atol=1e-12)
            pd.testing.assert_frame_equal(a.leads, b.leads, check_exact=False, rtol=0, atol=1e-12)
        ref = feats.loc[feats.index.get_level_values("datetime") <= cut]
        pd.testing.assert_frame_equal(graph_features(part, None, part_bars), ref, check_exact=False, rtol=0,
                                      atol=1e-12)
