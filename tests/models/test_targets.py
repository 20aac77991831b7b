"""Labels look forward by exactly the horizon; the drawdown label matches a plain loop."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.models.targets import LabelSpec, make_label


def bars():
    idx = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    c = np.array([100, 102, 99, 95, 97, 104, 103, 101], float)
    low = c - np.array([1, 1, 2, 3, 1, 1, 2, 1], float)
    a = pd.DataFrame({"open": c, "high": c + 1, "low": low, "close": c, "volume": 1.0}, index=idx)
    b = a.copy()
    b["close"] = c[::-1]
    b["low"] = c[::-1] - 1
    return {"A/USDT": a, "B/USDT": b}


def test_regression_label_is_the_log_return_h_bars_ahead():
    lab = make_label(bars(), LabelSpec("regression", 2)).xs("AUSDT", level="instrument")
    c = bars()["A/USDT"]["close"].to_numpy()
    np.testing.assert_allclose(lab.to_numpy()[:6], np.log(c[2:] / c[:-2]))
    assert lab.iloc[6:].isna().all()


def test_drawdown_label_matches_a_plain_loop():
    spec = LabelSpec("drawdown", 3, threshold=0.04)
    lab = make_label(bars(), spec).xs("AUSDT", level="instrument").to_numpy()
    a = bars()["A/USDT"]
    c, low = a["close"].to_numpy(), a["low"].to_numpy()
    for t in range(len(c)):
        if t + 3 >= len(c):
            assert np.isnan(lab[t])
        else:
            worst = min(low[t + 1:t + 4])
            assert lab[t] == float(worst / c[t] - 1 < -0.04)


def test_relative_direction_compares_to_the_cross_sectional_mean():
    lab = make_label(bars(), LabelSpec("direction", 1, relative=True))
    a, b = lab.xs("AUSDT", level="instrument"), lab.xs("BUSDT", level="instrument")
    # with two assets exactly one beats the mean at each bar (unless equal)
    both = (a + b).dropna()
    assert set(both.unique()) <= {1.0, 0.0} and (both == 1.0).mean() > 0.8


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        LabelSpec("regression", 0)
    with pytest.raises(ValueError, match="threshold > 0"):
        LabelSpec("drawdown", 6)
