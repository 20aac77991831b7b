"""Held-out order sampling and the summary statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.execution import build_market_arrays
from graphwiz_trader.execution.evaluation import sample_parent_orders, summarize


def test_held_out_orders_stay_in_the_window_never_overlap_and_are_sized_from_past_volume(bars):
    markets = {s: build_market_arrays(df, s) for s, df in bars.items()}
    lo, hi = pd.Timestamp("2022-02-01", tz="UTC"), pd.Timestamp("2022-02-15", tz="UTC")
    orders = sample_parent_orders(markets, list(markets), lo, hi, 60, 6, (0.001, 0.05), seed=4)
    assert len(orders) == 60
    assert orders == sample_parent_orders(markets, list(markets), lo, hi, 60, 6, (0.001, 0.05), seed=4)
    for o in orders:
        assert lo <= o.start_utc and o.start_utc + pd.Timedelta(hours=5) < hi
        assert 0.001 <= o.volume_fraction <= 0.05
        past = bars[o.symbol][bars[o.symbol].index < o.start_utc]["volume"].iloc[-168:]
        assert o.quantity_base == pytest.approx(o.volume_fraction * past.mean(), rel=1e-9)
    for s in markets:
        starts = sorted(o.start_utc for o in orders if o.symbol == s)
        assert all(b - a >= pd.Timedelta(hours=6) for a, b in zip(starts, starts[1:]))
    assert {o.side.value for o in orders} == {"buy", "sell"}


def _frame(values: dict[str, np.ndarray], days: int) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    starts = [pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=k % days, hours=k % 24) for k in range(n)]
    rows = []
    for s, v in values.items():
        for k in range(n):
            rows.append({"order": k, "strategy": s, "shortfall_bps": v[k], "vwap_slippage_bps": v[k] / 2,
                         "fill_rate": 1.0, "execution_cost_bps": 1.0, "start_utc": starts[k],
                         "volume_fraction": [0.001, 0.01, 0.03][k % 3]})
    return pd.DataFrame(rows)


def test_summary_means_and_paired_reductions_match_direct_computation():
    rng = np.random.default_rng(0)
    twap = rng.normal(8.0, 50.0, 120)
    market = twap + 10.0  # MARKET costs exactly 10 bps more on every order
    vwap = twap + rng.normal(-1.0, 2.0, 120)
    s = summarize(_frame({"MARKET": market, "TWAP": twap, "VWAP": vwap}, days=30), n_boot=500, seed=1)
    assert s["n_orders"] == 120 and s["n_days"] == 30
    assert s["strategies"]["TWAP"]["mean_shortfall_bps"] == pytest.approx(twap.mean())
    assert s["strategies"]["TWAP"]["std_shortfall_bps"] == pytest.approx(twap.std(ddof=1))
    r = s["reductions"]["TWAP_vs_MARKET"]
    assert r["mean_reduction_bps"] == pytest.approx(10.0)
    assert r["ci95_bps"] == pytest.approx([10.0, 10.0])  # a constant paired difference has no spread
    assert r["reduction_pct_of_baseline"] == pytest.approx(10.0 / market.mean() * 100)
    assert r["share_of_orders_cheaper"] == 1.0
    v = s["reductions"]["VWAP_vs_TWAP"]
    assert v["mean_reduction_bps"] == pytest.approx((twap - vwap).mean())
    lo, hi = v["ci95_bps"]
    assert lo < v["mean_reduction_bps"] < hi
    se = (twap - vwap).std(ddof=1) / np.sqrt(120)
    assert 2 * 1.96 * se * 0.6 < hi - lo < 2 * 1.96 * se * 1.6  # about the width of a normal CI
    assert s["by_volume_fraction"]["<0.5%"]["n_orders"] == 40
    assert s["by_volume_fraction"][">=2%"]["TWAP"]["mean_shortfall_bps"] == pytest.approx(twap[2::3].mean())
