"""The synthetic market is deterministic and has the structure later stages must recover."""

import numpy as np
import pandas as pd

from graphwiz_trader.data.synthetic import REGIMES, generate_synthetic_market
from graphwiz_trader.data.validate import validate_bars


def test_the_same_seed_gives_the_same_market_and_another_seed_does_not():
    a = generate_synthetic_market(n_assets=4, n_bars=300, seed=3)
    b = generate_synthetic_market(n_assets=4, n_bars=300, seed=3)
    c = generate_synthetic_market(n_assets=4, n_bars=300, seed=4)
    for s in a.symbols:
        pd.testing.assert_frame_equal(a.bars[s], b.bars[s])
    assert not np.allclose(a.bars["SYN00/USDT"]["close"], c.bars["SYN00/USDT"]["close"])
    assert "SYNTHETIC" in a.label and a.bars["SYN00/USDT"].attrs["synthetic"]


def test_ohlc_is_consistent_and_passes_strict_validation():
    m = generate_synthetic_market(n_assets=6, n_bars=2000)
    assert validate_bars(m.bars, "1h", strict=True).ok
    df = m.bars["SYN01/USDT"]
    assert (df["open"].iloc[1:].to_numpy() == df["close"].iloc[:-1].to_numpy()).all()


def test_assets_in_the_same_cluster_are_more_correlated_than_across_clusters():
    m = generate_synthetic_market(n_assets=9, n_clusters=3, n_bars=4000)
    r = np.log(m.close_panel()).diff().dropna().corr()
    same, cross = [], []
    for i, a in enumerate(m.symbols):
        for b in m.symbols[i + 1:]:
            (same if m.clusters[a] == m.clusters[b] else cross).append(r.loc[a, b])
    assert min(same) > max(cross)


def test_regimes_switch_and_crashes_are_more_volatile():
    m = generate_synthetic_market(n_assets=8, n_bars=24 * 400, seed=11)
    assert set(m.regimes.unique()) == set(REGIMES)
    assert (m.regimes != m.regimes.shift()).sum() > 10
    mkt = np.log(m.close_panel()).diff().mean(axis=1)
    vol = mkt.groupby(m.regimes, observed=True).std()
    assert vol["crash"] > 2 * vol["calm"]


def test_volume_peaks_in_the_afternoon_utc():
    m = generate_synthetic_market(n_assets=5, n_bars=24 * 200)
    v = pd.DataFrame({s: df["volume"] * df["close"] for s, df in m.bars.items()}).sum(axis=1)
    by_hour = v.groupby(v.index.hour).mean()
    assert by_hour.idxmax() in (13, 14, 15, 16, 17)
    assert by_hour.max() > 2 * by_hour.min()


def test_the_planted_signal_predicts_the_next_bar_cross_sectionally():
    m = generate_synthetic_market(n_assets=12, n_bars=3000)
    fwd = np.log(m.close_panel()).diff().shift(-1)
    ic = m.signal.corrwith(fwd, axis=1).dropna()
    assert 0.08 < ic.mean() < 0.2
