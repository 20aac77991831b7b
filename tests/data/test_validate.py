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


@pytest.mark.parametrize("column, value", [("close", np.inf), ("high", np.inf), ("low", -np.inf),
                                           ("volume", np.inf)])
def test_non_finite_prices_and_volumes_are_errors_naming_the_bar(column, value):
    df = bars(6)
    df.iloc[4, df.columns.get_loc(column)] = value
    report = validate_bars({"BTC/USDT": df}, "1h")
    issue = {i.kind: i for i in report["BTC/USDT"].errors}[f"non_finite_{column}"]
    assert (issue.count, issue.first) == (1, ("2024-01-01 04:00:00+00:00",))
    assert not report.ok
    with pytest.raises(DataValidationError, match=rf"BTC/USDT: .*non_finite_{column}: 1 \(inf or -inf\) "
                                                  r"first at 2024-01-01 04:00:00\+00:00"):
        validate_bars({"BTC/USDT": df}, "1h", strict=True)


def test_hourly_candles_declared_4h_fail_strictly_naming_expected_and_found_spacing():
    hourly = bars(48, start="2024-01-01")
    with pytest.raises(DataValidationError) as exc:
        validate_bars({"ETH/USDT": hourly}, "4h", strict=True)
    msg = str(exc.value)
    assert "ETH/USDT: timeframe_mismatch: 47 (declared timeframe 4h: expected 0 days 04:00:00 between bars, " \
           "found 0 days 01:00:00 (47 of 47 spacings)" in msg
    # 36 of the 48 hourly open times are not on the 4h grid (00, 04, 08, ... UTC)
    assert "misaligned: 36" in msg


def test_daily_candles_in_an_hourly_file_are_an_error_not_gaps():
    daily = bars(30, freq="1D")
    r = validate_bars({"SOL/USDT": daily}, "1h")["SOL/USDT"]
    kinds = {i.kind: i for i in r.issues}
    assert kinds["timeframe_mismatch"].severity == "error"
    assert "expected 0 days 01:00:00 between bars, found 1 days 00:00:00 (29 of 29 spacings)" \
        in kinds["timeframe_mismatch"].detail
    assert "gaps" not in kinds and r.missing_bars == 0
    assert not r.ok


def test_bars_off_the_timeframe_grid_are_misaligned():
    shifted = bars(12, start="2024-01-01 01:00", freq="4h")
    issue = {i.kind: i for i in validate_bars({"X/USDT": shifted}, "4h")["X/USDT"].errors}["misaligned"]
    assert issue.count == 12 and issue.first[0] == "2024-01-01 01:00:00+00:00"
    assert validate_bars({"X/USDT": bars(12, freq="4h")}, "4h").ok


def test_weekly_bars_open_on_mondays():
    mondays = bars(6, start="2024-01-01", freq="7D")  # 2024-01-01 is a Monday
    assert validate_bars({"X/USDT": mondays}, "1w").ok
    sundays = bars(6, start="2023-12-31", freq="7D")
    assert "misaligned" in {i.kind for i in validate_bars({"X/USDT": sundays}, "1w")["X/USDT"].errors}


def test_a_gappy_hourly_series_still_matches_its_timeframe():
    df = bars(40).drop(index=pd.date_range("2024-01-01 03:00", periods=10, freq="2h", tz="UTC"))
    r = validate_bars({"X/USDT": df}, "1h")["X/USDT"]
    assert r.ok and r.missing_bars == 10


def test_gap_warnings_are_one_summary_line_logged_once(caplog):
    import logging

    from graphwiz_trader.data import validate as V

    idx = pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")
    full = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=idx)
    bars = {"AAA/USDT": full.drop(idx[[5, 6, 7]]), "BBB/USDT": full.drop(idx[[20]]), "CCC/USDT": full}
    V._LOGGED.clear()
    with caplog.at_level(logging.INFO, logger="graphwiz_trader.data.validate"):
        V.validate_bars(bars, "1h")
        V.validate_bars(bars, "1h")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines == ["validation 1h: 2 of 3 symbols have gaps (4 missing bars; largest 4h in AAA/USDT)"
                     " (details: graphwiz data validate, or the report's JSON)"]
