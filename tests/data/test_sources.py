"""Importers: freqtrade feather and CSV; bad files fail naming the file, symbol and timestamps."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.sources import available_symbols, load_bars, read_bars
from graphwiz_trader.errors import DataError, DataValidationError, UnknownSymbolError


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
