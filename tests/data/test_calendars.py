"""Trading calendars: closed sessions are not gaps; gaps inside sessions and bars off the calendar are reported."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.calendars import check_calendar, expected_opens, infer_calendar
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError, DataValidationError


def bars_at(index):
    idx = pd.DatetimeIndex(index, name="datetime")
    c = 100 + np.arange(len(idx), dtype=float) * 0.01
    return pd.DataFrame({"open": c, "high": c + 0.5, "low": c - 0.5, "close": c, "volume": 1.0}, index=idx)


def test_nyse_daily_sessions_skip_weekends_and_holidays():
    got = expected_opens("XNYS", "1d", pd.Timestamp("2024-06-28", tz="UTC"), pd.Timestamp("2024-07-08", tz="UTC"))
    # Sat 29, Sun 30 June, Thu 4 July (Independence Day), Sat 6, Sun 7 July are closed
    assert [str(d.date()) for d in got] == ["2024-06-28", "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05",
                                            "2024-07-08"]
    assert str(got.tz) == "UTC"


def test_nyse_hourly_bars_open_at_the_session_open_in_utc_across_daylight_saving():
    winter = expected_opens("XNYS", "1h", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-02 23:00", tz="UTC"))
    summer = expected_opens("XNYS", "1h", pd.Timestamp("2024-07-01", tz="UTC"), pd.Timestamp("2024-07-01 23:00", tz="UTC"))
    assert winter[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC") and len(winter) == 7
    assert summer[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC") and len(summer) == 7


def test_shanghai_hourly_bars_restart_after_the_lunch_break():
    got = expected_opens("XSHG", "1h", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-02 23:00", tz="UTC"))
    # 09:30-11:30 and 13:00-15:00 Beijing time = 01:30-03:30 and 05:00-07:00 UTC
    assert [t.strftime("%H:%M") for t in got] == ["01:30", "02:30", "05:00", "06:00"]


def test_around_the_clock_is_the_timeframe_grid():
    got = expected_opens("24/7", "1h", pd.Timestamp("2024-01-06 22:30", tz="UTC"), pd.Timestamp("2024-01-07 01:00", tz="UTC"))
    assert [t.strftime("%d %H:%M") for t in got] == ["06 23:00", "07 00:00", "07 01:00"]


def test_weekends_are_gaps_on_24_7_but_not_on_the_exchange_calendar():
    sessions = expected_opens("XNYS", "1d", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-03-28", tz="UTC"))
    bars = {"AAPL": bars_at(sessions)}
    assert validate_bars(bars, "1d", calendar="XNYS")["AAPL"].missing_bars == 0
    around = validate_bars(bars, "1d", calendar="24/7")["AAPL"]
    days = (sessions[-1] - sessions[0]).days + 1
    assert around.missing_bars == days - len(sessions)


def test_a_missing_session_is_still_a_gap_and_named():
    sessions = expected_opens("XNYS", "1d", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-31", tz="UTC"))
    rep = validate_bars({"AAPL": bars_at(sessions.delete([5, 6]))}, "1d", calendar="XNYS")["AAPL"]
    assert rep.missing_bars == 2
    gap = next(i for i in rep.warnings if i.kind == "gaps")
    assert gap.count == 1 and gap.first == (str(sessions[4]),) and "XNYS sessions" in gap.detail


def test_bars_on_a_closed_day_are_an_error_naming_them():
    sessions = expected_opens("XNYS", "1d", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-12", tz="UTC"))
    saturday = pd.Timestamp("2024-01-06", tz="UTC")
    with pytest.raises(DataValidationError, match=r"AAPL: off_calendar: 1 .*first at 2024-01-06"):
        validate_bars({"AAPL": bars_at(sessions.append(pd.DatetimeIndex([saturday])).sort_values())}, "1d",
                      strict=True, calendar="XNYS")


def test_the_default_calendar_follows_the_source_and_says_why():
    assert infer_calendar("freqtrade", ["BTC/USDT"])[0] == "24/7"
    assert infer_calendar("csv", ["AAPL", "MSFT"]) == ("XNYS", "instrument codes without a quote currency; pass "
                                                       "--calendar for another exchange")
    assert infer_calendar("qlib", ["SH600000"], "cn")[0] == "XSHG"
    with pytest.raises(DataError, match="mixes crypto pairs and codes"):
        infer_calendar("csv", ["AAPL", "BTC/USDT"])


def test_an_unknown_calendar_is_refused_with_a_suggestion():
    assert check_calendar("xnys") == "XNYS"
    with pytest.raises(DataError, match="unknown trading calendar 'XNSY'; did you mean 'XNYS'"):
        check_calendar("XNSY")


def test_a_year_has_the_calendars_bars_for_annualising():
    from graphwiz_trader.data.calendars import bars_per_year

    assert bars_per_year("24/7", "1h") == 8760.0
    nyse_2023 = expected_opens("XNYS", "1d", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-12-31", tz="UTC"))
    assert bars_per_year("XNYS", "1d") == len(nyse_2023) == 250
