"""The Parquet store upserts without duplicates; new rows win on the same timestamp."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.errors import DataError, DataValidationError, NoBarsInRangeError, UnknownSymbolError


def bars(start, n, level=100.0):
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="datetime")
    c = level + np.arange(n, dtype=float)
    return pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0}, index=idx)


def test_upsert_of_overlapping_batches_leaves_no_duplicates(tmp_path):
    store = ParquetStore(tmp_path)
    assert store.upsert("BTC/USDT", "1h", bars("2024-01-01", 10)) == (10, 0)
    added, replaced = store.upsert("BTC/USDT", "1h", bars("2024-01-01 05:00", 10, level=200.0))
    assert (added, replaced) == (5, 5)
    out = store.read("BTC/USDT", "1h")
    assert len(out) == 15 and out.index.is_unique and out.index.is_monotonic_increasing
    # the newer batch wins where both have the bar
    assert out.loc[pd.Timestamp("2024-01-01 05:00", tz="UTC"), "close"] == 200.0
    assert out.loc[pd.Timestamp("2024-01-01 04:00", tz="UTC"), "close"] == 104.0


def test_repeating_the_same_upsert_changes_nothing(tmp_path):
    store = ParquetStore(tmp_path)
    b = bars("2024-01-01", 24)
    store.upsert("ETH/USDT", "1h", b)
    assert store.upsert("ETH/USDT", "1h", b) == (0, 24)
    pd.testing.assert_frame_equal(store.read("ETH/USDT", "1h"), b, check_freq=False)
    assert store.last_timestamp("ETH/USDT", "1h") == b.index[-1]


def test_malformed_bars_never_reach_the_store(tmp_path):
    store = ParquetStore(tmp_path)
    b = bars("2024-01-01", 5)
    b.iloc[2, 3] = np.nan
    with pytest.raises(DataValidationError, match="BTC/USDT: nan_close"):
        store.upsert("BTC/USDT", "1h", b)
    assert store.symbols("1h") == []


def test_reading_an_unknown_symbol_names_it_and_what_is_stored(tmp_path):
    store = ParquetStore(tmp_path)
    store.upsert("BTC/USDT", "1h", bars("2024-01-01", 3))
    with pytest.raises(UnknownSymbolError, match=r"XRP/USDT in store .* available: BTC/USDT"):
        store.read_many(["BTC/USDT", "XRP/USDT"], "1h")


def test_non_finite_values_never_reach_the_store(tmp_path):
    store = ParquetStore(tmp_path)
    b = bars("2024-01-01", 5)
    b.iloc[3, b.columns.get_loc("volume")] = np.inf
    with pytest.raises(DataValidationError, match=r"BTC/USDT: non_finite_volume: 1 \(inf or -inf\) "
                                                  r"first at 2024-01-01 03:00:00\+00:00"):
        store.upsert("BTC/USDT", "1h", b)
    assert store.symbols("1h") == []


def test_an_upsert_leaves_only_the_data_file_and_its_lock(tmp_path):
    store = ParquetStore(tmp_path)
    store.upsert("BTC/USDT", "1h", bars("2024-01-01", 5))
    store.upsert("BTC/USDT", "1h", bars("2024-01-01 03:00", 5))
    assert sorted(p.name for p in (tmp_path / "1h").iterdir()) == [".BTC_USDT.lock", "BTC_USDT.parquet"]


def test_a_named_symbol_without_bars_in_the_range_is_an_error_naming_it_and_why(tmp_path):
    store = ParquetStore(tmp_path)
    store.upsert("BTC/USDT", "1h", bars("2024-01-01", 48))
    store.upsert("PEPE/USDT", "1h", bars("2024-01-02 12:00", 12))
    with pytest.raises(NoBarsInRangeError, match=r"no bars in \[2024-01-01, 2024-01-02\] for 1 symbol\(s\): "
                                                 r"PEPE/USDT: first bar 2024-01-02 12:00, after --end 2024-01-02"):
        store.read_many(["BTC/USDT", "PEPE/USDT"], "1h", "2024-01-01", "2024-01-02")
    # without named symbols PEPE is dropped (and logged), BTC is cut to the 25 bars in the range
    out = store.read_many(None, "1h", "2024-01-01", "2024-01-02")
    assert list(out) == ["BTC/USDT"] and len(out["BTC/USDT"]) == 25


def test_a_file_given_as_the_store_folder_is_named(tmp_path):
    f = tmp_path / "store.parquet"
    f.write_text("x")
    with pytest.raises(DataError, match=r"store .*store\.parquet is a file, not a folder"):
        ParquetStore(f)
