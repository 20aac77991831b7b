"""CSV sources: files named by the symbol, files with a symbol column, one long file; nothing dropped silently."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.data.calendars import expected_opens
from graphwiz_trader.data.sources import SourceOptions, available_symbols, load_universe, read_bars
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.errors import DataError, UnknownSymbolError

SESSIONS = expected_opens("XNYS", "1d", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-03-28", tz="UTC"))


def yahoo(seed, sessions=SESSIONS):
    """A Yahoo-style daily file: Date, Open, High, Low, Close, Adj Close, Volume."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(sessions))))
    o = np.r_[c[0], c[:-1]]
    return pd.DataFrame({"Date": sessions.strftime("%Y-%m-%d"), "Open": o, "High": np.maximum(o, c) * 1.002,
                         "Low": np.minimum(o, c) * 0.998, "Close": c, "Adj Close": c, "Volume": 1e6 + seed})


@pytest.fixture
def stock_dir(tmp_path):
    d = tmp_path / "stocks"
    d.mkdir()
    for k, t in enumerate(["AAPL", "MSFT", "BRK.B"]):
        yahoo(k).to_csv(d / f"{t}.csv", index=False)
    return d


def test_files_named_by_the_ticker_are_found_and_weekends_are_not_gaps(stock_dir):
    assert available_symbols(stock_dir, "1d", "csv") == ["AAPL", "BRK.B", "MSFT"]
    bars, report = read_bars(stock_dir, "1d", fmt="csv")
    assert sorted(bars) == ["AAPL", "BRK.B", "MSFT"]
    assert report.calendar == "XNYS"
    assert [s.missing_bars for s in report.symbols] == [0, 0, 0]
    expected = yahoo(0)
    np.testing.assert_allclose(bars["AAPL"]["close"].to_numpy(), expected["Close"].to_numpy())
    assert bars["AAPL"].index[0] == pd.Timestamp("2024-01-02", tz="UTC")


def test_a_symbol_pattern_names_other_files_and_a_timeframe_in_them(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    yahoo(1).to_csv(d / "aapl_daily_1d.csv", index=False)
    yahoo(2).to_csv(d / "notes.csv", index=False)
    bars, _ = read_bars(d, "1d", fmt="csv", symbol_pattern="{symbol}_daily_{timeframe}.csv")
    assert list(bars) == ["AAPL"]
    with pytest.raises(DataError, match=r"must hold '\{symbol\}' once"):
        read_bars(d, "1d", fmt="csv", symbol_pattern="daily.csv")


def test_one_long_file_is_split_by_its_symbol_column(tmp_path):
    long = pd.concat([yahoo(0).assign(Name="AAPL"), yahoo(1).assign(Name="MSFT")])
    path = tmp_path / "all_stocks.csv"
    long.to_csv(path, index=False)
    bars, report = read_bars(path, "1d", fmt="csv")  # Name is found without --symbol-column
    assert sorted(bars) == ["AAPL", "MSFT"] and report.ok
    np.testing.assert_allclose(bars["MSFT"]["close"].to_numpy(), yahoo(1)["Close"].to_numpy())
    only, _ = read_bars(path, "1d", symbols="MSFT", fmt="csv", symbol_column="Name")
    assert list(only) == ["MSFT"]
    with pytest.raises(UnknownSymbolError, match="unknown symbol.*TSLA.*available: AAPL, MSFT"):
        read_bars(path, "1d", symbols="TSLA", fmt="csv")


def test_a_folder_of_files_with_a_symbol_column_is_read_by_the_column(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    yahoo(0).assign(Ticker="AAPL").to_csv(d / "part1.csv", index=False)
    yahoo(1).assign(Ticker="MSFT").to_csv(d / "part2.csv", index=False)
    bars, _ = read_bars(d, "1d", fmt="csv", symbol_column="Ticker")
    assert sorted(bars) == ["AAPL", "MSFT"]
    yahoo(2).assign(Ticker="AAPL").to_csv(d / "part3.csv", index=False)
    with pytest.raises(DataError, match="AAPL is in both part1.csv and part3.csv"):
        read_bars(d, "1d", fmt="csv", symbol_column="Ticker")


def test_rows_without_a_symbol_are_an_error_naming_the_row(tmp_path):
    long = yahoo(0).assign(Name="AAPL")
    long.loc[3, "Name"] = None
    path = tmp_path / "l.csv"
    long.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"1 row\(s\) without a symbol in column 'Name', first at row 3"):
        read_bars(path, "1d", fmt="csv")


def test_a_long_file_without_a_symbol_column_says_what_to_pass(tmp_path):
    path = tmp_path / "l.csv"
    yahoo(0).to_csv(path, index=False)
    with pytest.raises(DataError, match="a long CSV needs a symbol column.*pass --symbol-column"):
        read_bars(path, "1d", fmt="csv")


def test_a_folder_without_matching_files_names_the_patterns_tried(tmp_path):
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no CSV files named \{symbol\}-1d.csv or \{symbol\}.csv"):
        read_bars(tmp_path / "e", "1d", fmt="csv")


def test_the_calendar_can_be_chosen_and_a_wrong_one_is_caught(stock_dir):
    loaded = load_universe(stock_dir, "csv", "1d", options=SourceOptions(calendar="XNYS"))
    assert loaded.calendar == "XNYS" and "XNYS calendar" in loaded.label
    # Shanghai is closed on other days (Lunar New Year) and open on US holidays (MLK day 2024-01-15)
    with pytest.raises(DataError, match="off_calendar"):
        load_universe(stock_dir, "csv", "1d", options=SourceOptions(calendar="XSHG"))


def test_the_store_keeps_each_symbols_calendar_and_refuses_to_mix_them(stock_dir, tmp_path):
    store = ParquetStore(tmp_path / "store")
    bars, report = read_bars(stock_dir, "1d", fmt="csv")
    store.upsert("AAPL", "1d", bars["AAPL"], calendar=report.calendar)
    assert store.calendar("AAPL", "1d") == "XNYS"
    loaded = load_universe(tmp_path / "store", "store", "1d")
    assert loaded.calendar == "XNYS"
    with pytest.raises(DataError, match="stored on the XNYS calendar.*24/7 calendar cannot be merged"):
        store.upsert("AAPL", "1d", bars["AAPL"].iloc[:3], calendar="24/7")


def test_import_and_validate_commands_state_the_calendar_and_find_no_weekend_gaps(stock_dir, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["data", "import", "--format", "csv", "--source", str(stock_dir), "--timeframe", "1d",
                 "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "trading calendar XNYS" in out and "(0 missing bars in total)" in out
    assert main(["data", "validate", "--store", str(store), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "1d: 3 symbols, XNYS calendar" in out and "missing bars" not in out
