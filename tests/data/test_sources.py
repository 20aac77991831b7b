"""Importers: freqtrade feather and CSV; bad files fail naming the file, symbol and timestamps."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.sources import available_symbols, load_bars, load_universe, read_bars
from graphwiz_trader.errors import DataError, DataValidationError, NoBarsInRangeError, TimeframeError, UnknownSymbolError


def frame(n=48, start="2024-03-01"):
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[100.0, c[:-1]]
    return pd.DataFrame({"date": idx, "open": o, "high": np.maximum(o, c) * 1.001,
                         "low": np.minimum(o, c) * 0.999, "close": c, "volume": rng.uniform(1, 5, n)})


@pytest.fixture
def freqtrade_dir(tmp_path):
    d = tmp_path / "ft" / "1h"
    d.mkdir(parents=True)
    frame().to_feather(d / "BTC_USDT-1h.feather")
    frame(start="2024-03-02").to_feather(d / "ETH_USDT-1h.feather")
    return tmp_path / "ft"


def test_freqtrade_layout_is_read_from_the_timeframe_subfolder(freqtrade_dir):
    assert available_symbols(freqtrade_dir, "1h") == ["BTC/USDT", "ETH/USDT"]
    bars, report = read_bars(freqtrade_dir, "1h")
    assert report.ok
    btc = bars["BTC/USDT"]
    assert list(btc.columns) == ["open", "high", "low", "close", "volume"]
    assert str(btc.index.tz) == "UTC" and btc.index[0] == pd.Timestamp("2024-03-01", tz="UTC")
    np.testing.assert_array_equal(btc["close"].to_numpy(), frame()["close"].to_numpy())


def test_a_truncated_feather_fails_naming_the_file(freqtrade_dir):
    path = freqtrade_dir / "1h" / "BTC_USDT-1h.feather"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read .*BTC_USDT-1h\.feather: the file is truncated or not a valid Feather"):
        read_bars(freqtrade_dir, "1h", ["BTC/USDT"])


def test_an_unknown_symbol_is_named_with_what_is_available(freqtrade_dir):
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) DOGE/USDT in .*available: BTC/USDT, ETH/USDT"):
        read_bars(freqtrade_dir, "1h", "BTC/USDT,DOGE/USDT")


def test_csv_with_duplicate_and_out_of_order_rows_fails_strictly_naming_both(tmp_path):
    df = frame(6)
    messy = pd.concat([df.iloc[:4], df.iloc[[2]], df.iloc[[5, 4]]])
    messy["date"] = messy["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    messy.to_csv(tmp_path / "SOL_USDT-1h.csv", index=False)
    with pytest.raises(DataValidationError) as exc:
        read_bars(tmp_path, "1h", fmt="csv")
    msg = str(exc.value)
    assert "SOL/USDT" in msg
    assert "duplicate_timestamps: 1 first at 2024-03-01 02:00:00+00:00" in msg
    assert "out_of_order: 2 (timestamp earlier than the row before) first at 2024-03-01 02:00:00+00:00, 2024-03-01 04:00:00+00:00" in msg
    report = exc.value.report
    assert not report["SOL/USDT"].ok


def test_csv_with_nan_closes_fails_naming_the_rows(tmp_path):
    df = frame(6)
    df.loc[3, "close"] = np.nan
    df.to_csv(tmp_path / "ADA_USDT-1h.csv", index=False)
    with pytest.raises(DataValidationError, match=r"ADA/USDT: nan_close: 1 first at 2024-03-01 03:00:00\+00:00"):
        read_bars(tmp_path, "1h", fmt="csv")


def test_csv_with_epoch_milliseconds_is_parsed_as_utc(tmp_path):
    df = frame(4)
    df["timestamp"] = df.pop("date").astype("int64") // 1_000_000
    df.to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    bars, _ = read_bars(tmp_path, "1h", fmt="csv")
    assert bars["BTC/USDT"].index[1] == pd.Timestamp("2024-03-01 01:00", tz="UTC")


def test_a_csv_missing_a_column_names_it(tmp_path):
    frame(4).drop(columns=["volume"]).to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    with pytest.raises(DataError, match=r"BTC_USDT-1h\.csv: missing column\(s\) volume"):
        read_bars(tmp_path, "1h", fmt="csv")


def test_load_bars_cuts_validated_bars_to_the_requested_range(freqtrade_dir):
    bars, label = load_bars(freqtrade_dir, "freqtrade", "1h", "BTC/USDT", start="2024-03-01 10:00", end="2024-03-01 20:00")
    assert len(bars["BTC/USDT"]) == 11 and "freqtrade" in label


def test_the_synthetic_source_says_it_is_synthetic():
    bars, label = load_bars(None, "synthetic", "1h", synthetic={"n_assets": 3, "n_bars": 50})
    assert "SYNTHETIC" in label and len(bars) == 3


@pytest.mark.parametrize("unit, per_ns, name", [("s", 10**9, "seconds"), ("ms", 10**6, "milliseconds"),
                                                ("us", 10**3, "microseconds"), ("ns", 1, "nanoseconds")])
def test_csv_epoch_timestamps_are_read_in_the_unit_their_magnitude_shows(tmp_path, caplog, unit, per_ns, name):
    df = frame(4)
    df["timestamp"] = df.pop("date").astype("int64") // per_ns
    df.to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    with caplog.at_level("DEBUG", logger="graphwiz_trader.data.bars"):
        bars, _ = read_bars(tmp_path, "1h", fmt="csv")
    assert list(bars["BTC/USDT"].index) == list(pd.date_range("2024-03-01", periods=4, freq="1h", tz="UTC"))
    assert f"epoch timestamps in column timestamp read as {name}" in caplog.text


def test_epoch_seconds_and_milliseconds_mixed_in_one_column_are_refused(tmp_path):
    df = frame(4)
    secs = df.pop("date").astype("int64") // 10**9
    df["timestamp"] = [secs[0], secs[1] * 1000, secs[2], secs[3]]
    df.to_csv(tmp_path / "BTC_USDT-1h.csv", index=False)
    with pytest.raises(DataError, match=r"BTC_USDT-1h\.csv: epoch timestamps mix units \(seconds at row 0, "
                                        r"milliseconds at row 1\)"):
        read_bars(tmp_path, "1h", fmt="csv")


def test_hourly_candles_imported_as_4h_fail_naming_the_symbol_and_spacings(tmp_path):
    d = tmp_path / "4h"
    d.mkdir()
    frame(48).to_feather(d / "BTC_USDT-4h.feather")
    with pytest.raises(DataValidationError, match=r"BTC/USDT: timeframe_mismatch: 47 \(declared timeframe 4h: "
                                                  r"expected 0 days 04:00:00 between bars, found 0 days 01:00:00"):
        read_bars(tmp_path, "4h")


def test_a_source_that_is_a_file_is_named_with_what_was_expected(freqtrade_dir):
    f = freqtrade_dir / "1h" / "BTC_USDT-1h.feather"
    with pytest.raises(DataError, match=r"source .*BTC_USDT-1h\.feather is a file, not a folder; expected a folder "
                                        r"holding <BASE>_<QUOTE>-1h\.feather files"):
        read_bars(f, "1h")
    with pytest.raises(DataError, match=r"is a file, not a folder"):
        load_bars(f, "freqtrade", "1h")


def test_a_named_symbol_without_bars_in_the_range_is_an_error_naming_it_and_the_range(freqtrade_dir):
    # ETH/USDT starts 2024-03-02 00:00; BTC/USDT covers 2024-03-01 00:00 .. 2024-03-02 23:00
    with pytest.raises(NoBarsInRangeError) as exc:
        load_bars(freqtrade_dir, "freqtrade", "1h", "BTC/USDT,ETH/USDT", start="2024-03-01", end="2024-03-01 12:00")
    assert str(exc.value) == ("no bars in [2024-03-01, 2024-03-01 12:00] for 1 symbol(s): "
                              "ETH/USDT: first bar 2024-03-02, after --end 2024-03-01 12:00")
    assert exc.value.reasons == {"ETH/USDT": "first bar 2024-03-02, after --end 2024-03-01 12:00"}


def test_a_default_universe_says_which_symbols_it_dropped_and_why(freqtrade_dir, caplog):
    with caplog.at_level("WARNING", logger="graphwiz_trader.data.ranges"):
        loaded = load_universe(freqtrade_dir, "freqtrade", "1h", None, start="2024-03-01", end="2024-03-01 12:00")
    assert list(loaded.bars) == ["BTC/USDT"] and len(loaded.bars["BTC/USDT"]) == 13
    assert loaded.dropped == {"ETH/USDT": "first bar 2024-03-02, after --end 2024-03-01 12:00"}
    assert "dropped 1 of 2 symbols without bars in the range: ETH/USDT" in loaded.label
    assert "dropped 1 of 2 symbols with no bars in [2024-03-01, 2024-03-01 12:00]: ETH/USDT: first bar" in caplog.text
    _, label = load_bars(freqtrade_dir, "freqtrade", "1h", None, start="2024-03-01", end="2024-03-01 12:00")
    assert label == loaded.label


def test_a_range_ending_before_a_symbol_starts_or_inside_a_gap_is_explained(freqtrade_dir):
    with pytest.raises(NoBarsInRangeError, match=r"BTC/USDT: last bar 2024-03-02 23:00, before --start 2024-04-01"):
        load_bars(freqtrade_dir, "freqtrade", "1h", "BTC/USDT", start="2024-04-01")


def test_bad_dates_are_named_errors_not_tracebacks(freqtrade_dir):
    with pytest.raises(DataError, match=r"--start: '2023-13-45' is not a valid timestamp"):
        load_bars(freqtrade_dir, "freqtrade", "1h", start="2023-13-45")
    with pytest.raises(DataError, match=r"--start 2024-03-02 00:00:00\+00:00 is after --end 2024-03-01"):
        load_bars(freqtrade_dir, "freqtrade", "1h", start="2024-03-02", end="2024-03-01")


def test_an_unknown_timeframe_is_a_graphwiz_error_with_a_hint(freqtrade_dir):
    with pytest.raises(TimeframeError, match=r"'1H'.*did you mean '1h'"):
        load_bars(None, "synthetic", "1H")
