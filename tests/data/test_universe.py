"""Point-in-time universes from Qlib instruments files: spans, the membership mask, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.paths import csi300_dir
from graphwiz_trader.data.universe import instruments_file, mask_values, membership_mask, read_instruments
from graphwiz_trader.errors import ConfigError, DataError

TEXT = ("SH600000\t2020-01-02\t2020-12-31\n"
        "SH600001\t2020-03-02\t2020-04-30\n"
        "sh600001\t2020-09-01\t2020-12-31\n"      # left and came back (lower-case code in the file)
        "SZ000002\t2020-01-02\t2020-02-28\n")


def _provider(tmp_path: Path) -> Path:
    (tmp_path / "instruments").mkdir()
    (tmp_path / "instruments" / "mkt.txt").write_text(TEXT)
    return tmp_path


def test_spans_are_read_per_code_with_every_line_of_a_returning_member(tmp_path: Path) -> None:
    spans = read_instruments(_provider(tmp_path), "mkt")
    assert spans["SH600001"] == [(pd.Timestamp("2020-03-02"), pd.Timestamp("2020-04-30")),
                                 (pd.Timestamp("2020-09-01"), pd.Timestamp("2020-12-31"))]
    assert sorted(spans) == ["SH600000", "SH600001", "SZ000002"]
    assert read_instruments(tmp_path / "instruments" / "mkt.txt") == spans


def test_the_mask_is_true_from_the_first_to_the_last_day_of_each_span_inclusive(tmp_path: Path) -> None:
    cal = pd.bdate_range("2020-01-01", "2020-12-31", name="datetime")
    m = membership_mask(_provider(tmp_path), cal, ["SH600000", "SH600001", "SZ000002", "SH699999"], market="mkt")
    assert m.dtypes.map(pd.api.types.is_bool_dtype).all() and m.index.equals(cal)
    days = cal.to_series()
    expect_1 = (days.between("2020-03-02", "2020-04-30") | days.between("2020-09-01", "2020-12-31")).to_numpy()
    np.testing.assert_array_equal(m["SH600001"].to_numpy(), expect_1)
    assert m["SZ000002"][m["SZ000002"]].index.max() == pd.Timestamp("2020-02-28")
    assert m["SH600000"][m["SH600000"]].index.min() == pd.Timestamp("2020-01-02")
    assert not m["SH699999"].any()                          # never listed: never a member


def test_utc_bar_times_are_members_on_their_utc_date(tmp_path: Path) -> None:
    cal = pd.date_range("2020-04-29", periods=8, freq="12h", tz="UTC")
    m = membership_mask(_provider(tmp_path), cal, ["SH600001"], market="mkt")
    assert list(m["SH600001"]) == [True, True, True, True, False, False, False, False]


def test_bad_files_and_missing_markets_are_refused_naming_where(tmp_path: Path) -> None:
    p = _provider(tmp_path)
    with pytest.raises(ConfigError, match="markets there: mkt"):
        instruments_file(p, "csi500")
    with pytest.raises(ConfigError, match="name the market"):
        instruments_file(p)
    bad = tmp_path / "bad.txt"
    bad.write_text("SH600000\t2020-01-02\t2020-12-31\nSH600001\t2020-05-01\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected"):
        read_instruments(bad)
    bad.write_text("SH600000\t2020-12-31\t2020-01-02\n")
    with pytest.raises(DataError, match=r"bad.txt:1: span ends before it starts"):
        read_instruments(bad)


def test_a_mask_that_does_not_cover_the_data_is_refused() -> None:
    idx = pd.date_range("2021-01-01", periods=5, freq="1D", tz="UTC")
    m = pd.DataFrame(True, index=idx, columns=["A", "B"])
    assert mask_values(m, idx[1:3], ["B", "A"]).shape == (2, 2)
    with pytest.raises(DataError, match="no membership column for C"):
        mask_values(m, idx, ["A", "C"])
    with pytest.raises(DataError, match="no membership row for 2021-01-06"):
        mask_values(m, pd.date_range("2021-01-02", periods=5, freq="1D", tz="UTC"), ["A"])
    with pytest.raises(DataError, match="time zone"):
        mask_values(m, idx.tz_localize(None), ["A"])
    with pytest.raises(DataError, match="booleans"):
        mask_values(m.astype(int), idx, ["A"])


@pytest.mark.realdata
def test_sh600880_is_a_csi300_member_from_2014_06_16_to_2014_12_15_only() -> None:
    d = csi300_dir()
    if not (d / "instruments" / "csi300.txt").is_file():
        pytest.skip(f"CSI300 Qlib data not found at {d} (see ../shared/data/README.md)")
    cal = pd.DatetimeIndex(pd.read_csv(d / "calendars" / "day.txt", header=None)[0])
    m = membership_mask(d, cal, ["SH600880", "SH600000"], market="csi300")["SH600880"]
    assert m[m].index.min() == pd.Timestamp("2014-06-16") and m[m].index.max() == pd.Timestamp("2014-12-15")
    assert m.loc["2014-06-16":"2014-12-15"].all()
