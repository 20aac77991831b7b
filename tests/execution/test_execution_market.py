"""Past-only calibrations: truncation invariance and independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graphwiz_trader.execution import build_market_arrays
from graphwiz_trader.execution.market import observation

SYM = "SYN01/USDT"


@pytest.mark.parametrize("j", [400, 700, 1000, 1199])
def test_calibrations_at_a_bar_are_unchanged_when_later_bars_are_removed(bars, j):
    full = build_market_arrays(bars[SYM], SYM)
    cut = build_market_arrays(bars[SYM].iloc[: j + 1], SYM)
    for name in ("sigma_bar", "mean_volume", "half_spread", "logret"):
        assert getattr(cut, name)[j] == getattr(full, name)[j], name
    np.testing.assert_array_equal(cut.profile[j], full.profile[j])
    np.testing.assert_array_equal(cut.features[j], full.features[j])
    assert cut.valid[j] == full.valid[j]


def test_volatility_volume_and_spread_match_plain_loops(bars):
    df = bars[SYM]
    m = build_market_arrays(df, SYM)
    j = 900
    c = list(df["close"])
    r = [math.log(c[t] / c[t - 1]) for t in range(j - 167, j + 1)]
    mean = sum(r) / len(r)
    sigma = math.sqrt(sum((x - mean) ** 2 for x in r) / (len(r) - 1))
    assert m.sigma_bar[j] == pytest.approx(sigma, rel=1e-9)
    assert m.mean_volume[j] == pytest.approx(sum(df["volume"].iloc[j - 167: j + 1]) / 168, rel=1e-12)
    # Abdi-Ranaldo: s^2 = 4 mean over pairs (t-1, t) of (c_{t-1} - eta_{t-1})(c_{t-1} - eta_t)
    h, lo = list(df["high"]), list(df["low"])
    prods = []
    for t in range(j - 335, j + 1):
        eta0 = (math.log(h[t - 1]) + math.log(lo[t - 1])) / 2
        eta1 = (math.log(h[t]) + math.log(lo[t])) / 2
        prods.append((math.log(c[t - 1]) - eta0) * (math.log(c[t - 1]) - eta1))
    s2 = 4 * sum(prods) / len(prods)
    half = min(max(0.5 * math.sqrt(max(s2, 0.0)), 0.5e-4), 25e-4)
    assert m.half_spread[j] == pytest.approx(half, rel=1e-9)


def test_observation_signs_returns_by_side_and_stays_in_bounds(bars):
    m = build_market_arrays(bars[SYM], SYM)
    j = 800
    buy = observation(m, j, +1, 0.75, 0.5, 0.3)
    sell = observation(m, j, -1, 0.75, 0.5, 0.3)
    assert buy[:3].tolist() == pytest.approx([0.75, 0.5, 0.3])
    np.testing.assert_array_equal(buy[3:6], -sell[3:6])
    np.testing.assert_array_equal(buy[6:], sell[6:])
    assert buy[3] == pytest.approx(m.logret[j] / m.sigma_bar[j], rel=1e-6)
    assert np.all(np.abs(m.features[m.valid]) <= 10)
