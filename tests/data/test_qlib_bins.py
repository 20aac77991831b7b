"""Bins we write round-trip exactly through Qlib's own reader (qlib.data.D.features)."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.qlib_runtime import init_qlib
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import DataError

FIELDS = ["$open", "$high", "$low", "$close", "$volume", "$vwap", "$factor"]


def expected(df):
    return np.column_stack([df["open"], df["high"], df["low"], df["close"], df["volume"],
                            (df["high"] + df["low"] + df["close"]) / 3, np.ones(len(df))]).astype("float32")


def test_hourly_bins_round_trip_exactly_with_gaps_left_as_nan(tmp_path):
    from qlib.data import D

    m = generate_synthetic_market(n_assets=3, n_bars=200)
    bars = dict(m.bars)
    gappy = bars["SYN01/USDT"].drop(index=bars["SYN01/USDT"].index[[50, 51, 120]])
    bars["SYN01/USDT"] = gappy
    bars["SYN02/USDT"] = bars["SYN02/USDT"].iloc[30:]  # starts later
    summary = write_qlib_bins(bars, tmp_path / "q", "60min")
    assert summary["calendar_length"] == 200
    init_qlib(tmp_path / "q", mlflow_dir=tmp_path / "ml")
    for sym, code in [("SYN00/USDT", "SYN00USDT"), ("SYN01/USDT", "SYN01USDT"), ("SYN02/USDT", "SYN02USDT")]:
        got = D.features([code], FIELDS, freq="60min").droplevel("instrument")
        df = bars[sym]
        on_bars = got.loc[df.index.tz_convert(None)]
        np.testing.assert_array_equal(on_bars.to_numpy(), expected(df))
        missing = got.index.difference(df.index.tz_convert(None))
        assert got.loc[missing].isna().all().all()
    assert len(D.features(["SYN01USDT"], ["$close"], freq="60min")) == 200  # gaps are NaN rows, not dropped
    inst = (tmp_path / "q" / "instruments" / "all.txt").read_text().splitlines()
    assert "SYN02USDT\t2022-01-02 06:00:00\t2022-01-09 07:00:00" in inst


def test_daily_bins_round_trip_exactly(tmp_path):
    from qlib.data import D

    m = generate_synthetic_market(n_assets=3, n_bars=120, timeframe="1d", start="2021-01-01")
    write_qlib_bins(m.bars, tmp_path / "d", "day")
    assert (tmp_path / "d" / "calendars" / "day.txt").read_text().splitlines()[:2] == ["2021-01-01", "2021-01-02"]
    init_qlib(tmp_path / "d", mlflow_dir=tmp_path / "ml")
    got = D.features(["SYN01USDT"], FIELDS, freq="day")
    np.testing.assert_array_equal(got.to_numpy(), expected(m.bars["SYN01/USDT"]))


def test_hourly_is_60min_not_1h(tmp_path):
    m = generate_synthetic_market(n_assets=3, n_bars=10)
    with pytest.raises(DataError, match="hourly is '60min', not '1h'"):
        write_qlib_bins(m.bars, tmp_path, "1h")
