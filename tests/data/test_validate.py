"""The validator reports every problem kind and, in strict mode, names symbol and first timestamps."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.validate import fill_gaps, sort_and_dedupe, validate_bars
from graphwiz_trader.errors import DataValidationError


def bars(n=10, start="2024-01-01", freq="1h"):
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="datetime")
    c = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": c - 0.5, "high": c + 1, "low": c - 1, "close": c, "volume": 10.0}, index=idx)


def test_clean_bars_are_ok_with_no_findings():
    report = validate_bars({"BTC/USDT": bars()}, "1h")
    assert report.ok and report["BTC/USDT"].issues == ()


def test_duplicates_and_out_of_order_rows_are_errors_with_their_timestamps():
    df = bars(6)
    df = pd.concat([df.iloc[:3], df.iloc[[2]], df.iloc[[5, 4, 3]]])
    r = validate_bars({"ETH/USDT": df}, "1h")["ETH/USDT"]
    kinds = {i.kind: i for i in r.issues}
    assert kinds["duplicate_timestamps"].count == 1
    assert kinds["duplicate_timestamps"].first == ("2024-01-01 02:00:00+00:00",)
    # rows: 00 01 02 02 05 04 03 -> 04 (after 05) and 03 (after 04) step back in time
    assert kinds["out_of_order"].count == 2
    assert kinds["out_of_order"].first == ("2024-01-01 04:00:00+00:00", "2024-01-01 03:00:00+00:00")
    assert not r.ok


def test_strict_mode_raises_naming_the_symbol_and_first_offending_timestamps():
    df = bars(5)
    df.iloc[2, df.columns.get_loc("close")] = np.nan
    with pytest.raises(DataValidationError, match=r"BTC/USDT: nan_close: 1 first at 2024-01-01 02:00:00\+00:00"):
        validate_bars({"BTC/USDT": df}, "1h", strict=True)


def test_gaps_are_counted_with_the_largest_gap():
    df = bars(20).drop(index=pd.date_range("2024-01-01 05:00", periods=3, freq="1h", tz="UTC"))
    df = df.drop(index=pd.Timestamp("2024-01-01 12:00", tz="UTC"))
    r = validate_bars({"X/USDT": df}, "1h")["X/USDT"]
    assert r.missing_bars == 4
    assert r.largest_gap == "0 days 04:00:00"
    assert r.ok  # gaps are warnings: reported, not fatal


def test_ohlc_inconsistency_non_positive_prices_and_jumps_are_found():
    df = bars(6)
    df.iloc[1, df.columns.get_loc("high")] = 50.0  # high below close
    df.iloc[3, df.columns.get_loc("low")] = -1.0
    df.iloc[5, df.columns.get_loc("close")] = 400.0  # jump ~ +1.3 log
    df.iloc[5, df.columns.get_loc("high")] = 401.0
    kinds = {i.kind for i in validate_bars({"X/USDT": df}, "1h")["X/USDT"].issues}
    assert {"ohlc_inconsistent", "non_positive_price", "extreme_jump"} <= kinds


def test_filling_is_explicit_and_counted():
    df = bars(10).drop(index=pd.Timestamp("2024-01-01 04:00", tz="UTC"))
    filled, added = fill_gaps(df, "1h")
    assert added == 1 and len(filled) == 10
    row = filled.loc[pd.Timestamp("2024-01-01 04:00", tz="UTC")]
    assert row["open"] == row["close"] == df.loc[pd.Timestamp("2024-01-01 03:00", tz="UTC"), "close"]
    assert row["volume"] == 0.0


def test_sort_and_dedupe_reports_what_it_dropped():
    df = bars(4)
    messy = pd.concat([df.iloc[[3, 0, 1]], df.iloc[[1]], df.iloc[[2]]])
    clean, dropped = sort_and_dedupe(messy)
    assert dropped == 1
    assert clean.index.equals(df.index)
