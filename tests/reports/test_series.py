"""Panel figures match a direct computation: monthly returns, rolling Sharpe and volatility, returns by regime."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import DataError
from graphwiz_trader.reports import (
    NO_LABEL,
    monthly_return_grid,
    monthly_returns,
    performance_by_regime,
    rolling_sharpe,
    rolling_volatility,
    thin_positions,
    top_and_rest,
)


def _equity(n: int = 24 * 80, seed: int = 1) -> pd.Series:
    idx = pd.date_range("2023-12-20", periods=n, freq="h", tz="UTC")
    r = np.random.default_rng(seed).normal(0.0002, 0.01, n)
    return pd.Series(1000.0 * np.cumprod(1 + r), index=idx)


def test_monthly_returns_chain_month_end_equities_from_the_initial_capital():
    eq = _equity()
    got = monthly_returns(eq, 1000.0)
    expected, prev = [], 1000.0
    for (y, m) in sorted({(t.year, t.month) for t in eq.index}):
        last = eq[(eq.index.year == y) & (eq.index.month == m)].iloc[-1]
        expected.append(last / prev - 1.0)
        prev = last
    assert np.allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)
    grid = monthly_return_grid(eq, 1000.0)
    assert list(grid.index) == [2023, 2024]
    assert grid.at[2023, "Dec"] == pytest.approx(expected[0]) and math.isnan(grid.at[2023, "Jan"])
    assert grid.at[2024, "Year"] == pytest.approx(np.prod(1 + np.array(expected[1:])) - 1)
    assert (1 + grid["Year"]).prod() == pytest.approx(eq.iloc[-1] / 1000.0)


def test_rolling_sharpe_and_volatility_use_only_the_trailing_window():
    r = _equity().pct_change().dropna()
    w, ppy = 48, 8760.0
    s, v = rolling_sharpe(r, w, ppy), rolling_volatility(r, w, ppy)
    assert s.iloc[: w - 1].isna().all()
    t = 500
    win = r.iloc[t - w + 1: t + 1].to_numpy()
    assert s.iloc[t] == pytest.approx(win.mean() / win.std(ddof=1) * math.sqrt(ppy))
    assert v.iloc[t] == pytest.approx(win.std(ddof=1) * math.sqrt(ppy))
    cut = rolling_sharpe(r.iloc[: t + 1], w, ppy)  # truncation: later bars do not move the value at t
    assert cut.iloc[t] == s.iloc[t]


def test_returns_by_regime_group_the_labelled_bars_and_show_unlabelled_ones():
    idx = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    rets = pd.DataFrame({"a": [0.01, -0.02, 0.03, 0.0, 0.01, 0.02, -0.01, 0.04],
                         "b": [0.0] * 8}, index=idx)
    regime = pd.Series(["high_vol", "low_vol", "high_vol", "low_vol", "low_vol", "mid_vol"], index=idx[2:])
    out = performance_by_regime(rets, regime, 10.0).set_index(["regime", "run"])
    assert list(dict.fromkeys(out.index.get_level_values(0))) == ["low_vol", "mid_vol", "high_vol", NO_LABEL]
    low = rets["a"].iloc[[3, 5, 6]].to_numpy()
    row = out.loc[("low_vol", "a")]
    assert row["bars"] == 3 and row["share"] == pytest.approx(3 / 8)
    assert row["total_return"] == pytest.approx(np.prod(1 + low) - 1)
    assert row["ann_return"] == pytest.approx(low.mean() * 10)
    assert row["sharpe"] == pytest.approx(low.mean() / low.std(ddof=1) * math.sqrt(10))
    assert out.loc[(NO_LABEL, "a"), "bars"] == 2  # the first two bars have no label and are not dropped
    assert math.isnan(out.loc[("mid_vol", "a"), "sharpe"])  # one bar: no volatility
    with pytest.raises(DataError, match="repeat"):
        performance_by_regime(rets, pd.concat([regime, regime.iloc[:1]]), 10.0)


def test_top_and_rest_keep_the_largest_columns_and_sum_the_others():
    f = pd.DataFrame({"a": [1.0, 1.0], "b": [-5.0, 5.0], "c": [0.1, 0.2], "d": [0.3, 0.0]})
    out = top_and_rest(f, 2)
    assert list(out.columns) == ["b", "a", "other (2)"]
    assert out["other (2)"].tolist() == [0.4, 0.2]
    assert np.allclose(out.sum(axis=1), f.sum(axis=1))
    assert thin_positions(10, 4).tolist() == [0, 3, 6, 9] and thin_positions(3, 10).tolist() == [0, 1, 2]
