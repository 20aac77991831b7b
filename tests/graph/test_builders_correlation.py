"""Rolling correlation snapshots: values against pandas/scipy, windows, pruning, missing data, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError
from graphwiz_trader.graph.builders import build_snapshots, close_panel, log_returns, prune_edges
from graphwiz_trader.graph.builders.correlation import average_ranks, correlation_chunk, window_stack


def _panel_with_holes(seed: int = 3, n: int = 400) -> pd.DataFrame:
    """Five assets: one listed late, one with gaps, one with many ties (rounded prices)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC", name="datetime")
    common = rng.standard_normal(n) * 0.01
    r = common[:, None] * np.array([1.0, 0.8, 0.5, 0.0, 1.2]) + rng.standard_normal((n, 5)) * 0.006
    close = 100 * np.exp(np.cumsum(r, axis=0))
    close[:, 3] = np.round(close[:, 3], 0)                     # many zero returns: ties for Spearman
    panel = pd.DataFrame(close, index=idx, columns=["AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT", "EEE/USDT"])
    panel.iloc[:230, 2] = np.nan                               # CCC listed late
    panel.iloc[rng.choice(n, 25, replace=False), 4] = np.nan   # EEE has gaps
    return panel


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_every_snapshot_matches_pandas_pairwise_correlation_on_its_window(method: str) -> None:
    panel = _panel_with_holes()
    window, stride, mp = 120, 17, 40
    snaps = build_snapshots(panel, window, stride, min_periods=mp, method=method, lead_max_lag=0,
                            communities=False)
    rets = log_returns(panel)
    assert len(snaps) == (len(rets) - window) // stride + 1
    for k, snap in enumerate(snaps):
        end = window - 1 + k * stride
        win = rets.iloc[end - window + 1: end + 1]
        assert snap.as_of == rets.index[end]                 # the last bar inside the window
        assert snap.as_of <= panel.index[-1]
        ref = win.corr(method=method, min_periods=mp)
        eligible = [c for c in win.columns if win[c].notna().sum() >= mp]
        assert snap.assets == tuple(eligible)
        expected = {(a, b): ref.loc[a, b] for i, a in enumerate(eligible) for b in eligible[i + 1:]
                    if np.isfinite(ref.loc[a, b])}
        got = {(s, d): r for s, d, r in snap.edges.itertuples(index=False)}
        assert got.keys() == expected.keys()
        for key, val in expected.items():
            assert got[key] == pytest.approx(val, abs=1e-12)


def test_spearman_matches_scipy_on_pairwise_complete_rows_when_masks_differ() -> None:
    panel = _panel_with_holes()
    rets = log_returns(panel)
    snaps = build_snapshots(panel, 200, 200, min_periods=30, method="spearman", lead_max_lag=0, communities=False)
    snap = snaps[0]                                           # CCC has 29+ returns, EEE has gaps
    win = rets.iloc[:200]
    for s, d, r in snap.edges.itertuples(index=False):
        both = win[[s, d]].dropna()
        assert r == pytest.approx(spearmanr(both[s], both[d]).statistic, abs=1e-12)


def test_average_ranks_equal_scipy_rankdata_with_ties_and_nans() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((3, 4, 50)), 1)
    x[0, 1, :7] = np.nan
    x[2, 3, 10:20] = np.nan
    np.testing.assert_array_equal(average_ranks(x), rankdata(x, axis=-1, nan_policy="omit"))


def test_asset_enters_a_snapshot_only_with_min_periods_valid_returns() -> None:
    panel = _panel_with_holes()
    rets = log_returns(panel)
    first_valid = rets["CCC/USDT"].first_valid_index()
    snaps = build_snapshots(panel, 100, 10, min_periods=60, lead_max_lag=0, communities=False)
    for s in snaps:
        n_valid = rets["CCC/USDT"].loc[:s.as_of].iloc[-100:].notna().sum()
        assert ("CCC/USDT" in s.assets) == (n_valid >= 60)
        if "CCC/USDT" not in s.assets:
            assert not ((s.edges["src"] == "CCC/USDT") | (s.edges["dst"] == "CCC/USDT")).any()
    assert any("CCC/USDT" in s.assets for s in snaps) and first_valid is not None


def test_bars_and_close_panel_give_identical_snapshots() -> None:
    m = generate_synthetic_market(n_assets=5, n_bars=600, seed=11)
    a = build_snapshots(m.bars, 200, 50, lead_max_lag=3)
    b = build_snapshots(m.close_panel(), 200, 50, lead_max_lag=3)
    assert len(a) == len(b) == (599 - 200) // 50 + 1
    for x, y in zip(a, b):
        assert x.as_of == y.as_of and x.assets == y.assets and x.communities == y.communities
        pd.testing.assert_frame_equal(x.edges, y.edges)
        pd.testing.assert_frame_equal(x.leads, y.leads)


def _plain_prune(rho: np.ndarray, syms: list[str], thr: float, k: int | None) -> set[tuple[str, str]]:
    n = len(syms)
    top: list[set[int]] = []
    for i in range(n):
        cands = [(-abs(rho[i, j]), j) for j in range(n) if j != i and np.isfinite(rho[i, j])]
        top.append({j for _, j in sorted(cands)[:k]} if k is not None else set(range(n)))
    out = set()
    for i in range(n):
        for j in range(i + 1, n):
            if np.isfinite(rho[i, j]) and abs(rho[i, j]) >= thr and (j in top[i] or i in top[j]):
                out.add((syms[i], syms[j]))
    return out


@pytest.mark.parametrize(("thr", "k"), [(0.0, None), (0.3, None), (0.0, 2), (0.25, 3)])
def test_pruning_keeps_threshold_and_union_of_top_k_like_a_plain_loop(thr: float, k: int | None) -> None:
    rng = np.random.default_rng(5)
    n = 9
    a = rng.uniform(-0.9, 0.9, (n, n))
    rho = (a + a.T) / 2
    np.fill_diagonal(rho, np.nan)
    rho[2, 5] = rho[5, 2] = np.nan
    syms = [f"S{i}/USDT" for i in range(n)]
    edges = prune_edges(rho, syms, thr, k)
    assert set(zip(edges["src"], edges["dst"])) == _plain_prune(rho, syms, thr, k)
    assert (edges["src"] < edges["dst"]).all()
    assert list(edges.columns) == ["src", "dst", "rho"]


def test_window_longer_than_the_data_names_both_lengths() -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=500, seed=1)
    with pytest.raises(DataError, match=r"window of 720 bars is longer than the data: 499 returns from 500 bars"):
        build_snapshots(m.bars, 720, 24)


def test_unknown_symbols_are_named() -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=300, seed=1)
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) XYZ/USDT, FOO/USDT"):
        build_snapshots(m.bars, 100, 10, symbols=["SYN00/USDT", "XYZ/USDT", "FOO/USDT"])


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"method": "kendall"}, "unknown correlation method 'kendall'"),
    ({"min_periods": 500}, "min_periods must be an integer in"),
    ({"top_k": 0}, "top_k must be a positive integer"),
    ({"min_abs_rho": 1.5}, "min_abs_rho must be in"),
    ({"stride": 0}, "stride must be an integer"),
])
def test_bad_parameters_raise_config_errors(kwargs: dict, msg: str) -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=300, seed=1)
    with pytest.raises(ConfigError, match=msg):
        build_snapshots(m.bars, **{"window": 100, "stride": 10, **kwargs})


def test_non_utc_and_unsorted_bars_are_rejected_with_the_symbol() -> None:
    m = generate_synthetic_market(n_assets=3, n_bars=50, seed=1)
    bad = dict(m.bars)
    bad["SYN01/USDT"] = bad["SYN01/USDT"].iloc[::-1]
    with pytest.raises(DataError, match=r"bars\[SYN01/USDT\]: timestamps are not sorted"):
        close_panel(bad)


def test_chunking_does_not_change_values() -> None:
    panel = _panel_with_holes()
    rets = log_returns(panel).to_numpy()
    ends = np.arange(99, len(rets), 7)
    whole, _, _ = correlation_chunk(window_stack(rets, ends, 100), "pearson", 30)
    for a in range(0, len(ends), 5):
        part, _, _ = correlation_chunk(window_stack(rets, ends[a:a + 5], 100), "pearson", 30)
        np.testing.assert_allclose(part, whole[a:a + 5], rtol=0, atol=1e-13)
