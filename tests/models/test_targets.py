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


def test_labels_count_bars_of_the_shared_calendar_so_a_missing_bar_gives_nan():
    full = bars()
    gappy = {"A/USDT": full["A/USDT"], "B/USDT": full["B/USDT"].drop(full["B/USDT"].index[3])}  # B has no bar at 03:00
    lab = make_label(gappy, LabelSpec("regression", 1)).xs("BUSDT", level="instrument")
    cb = full["B/USDT"]["close"].to_numpy()
    t = full["B/USDT"].index.tz_convert(None)
    assert np.isnan(lab.loc[t[2]])  # 02:00 -> 03:00 is missing: NaN, not log(c[04:00] / c[02:00])
    assert t[3] not in lab.index  # no row where B has no bar
    assert lab.loc[t[4]] == pytest.approx(np.log(cb[5] / cb[4]))
    assert lab.loc[t[1]] == pytest.approx(np.log(cb[2] / cb[1]))
    a = make_label(gappy, LabelSpec("regression", 1)).xs("AUSDT", level="instrument")
    pd.testing.assert_series_equal(a, make_label(full, LabelSpec("regression", 1)).xs("AUSDT", level="instrument"))
    h2 = make_label(gappy, LabelSpec("regression", 2)).xs("BUSDT", level="instrument")
    assert np.isnan(h2.loc[t[1]]) and h2.loc[t[2]] == pytest.approx(np.log(cb[4] / cb[2]))  # 2 calendar bars ahead
    dd = make_label(gappy, LabelSpec("drawdown", 2, threshold=0.01)).xs("BUSDT", level="instrument")
    assert np.isnan(dd.loc[t[1]]) and np.isnan(dd.loc[t[2]]) and not np.isnan(dd.loc[t[4]])  # window holds the gap


def test_zero_return_bars_have_no_direction():
    b = bars()
    b["A/USDT"] = b["A/USDT"].copy()
    b["A/USDT"].iloc[3, b["A/USDT"].columns.get_loc("close")] = b["A/USDT"]["close"].iloc[2]  # 02:00 -> 03:00 flat
    lab = make_label(b, LabelSpec("direction", 1)).xs("AUSDT", level="instrument")
    assert np.isnan(lab.iloc[2])  # a zero return is neither up nor down: left out, not labelled 0
    assert lab.iloc[:2].tolist() == [1.0, 0.0] and lab.iloc[3] == 0.0 and lab.iloc[4] == 1.0
    ret = make_label(b, LabelSpec("regression", 1)).xs("AUSDT", level="instrument")
    assert ret.iloc[2] == 0.0
