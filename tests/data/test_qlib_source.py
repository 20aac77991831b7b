"""Qlib binary data as a source: a market's members point in time, on the exchange's calendar."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.calendars import expected_opens
from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.universe import membership_mask
from graphwiz_trader.data.sources import SourceOptions, load_universe
from graphwiz_trader.errors import DataError, UnknownSymbolError

SESSIONS = expected_opens("XSHG", "1d", pd.Timestamp("2023-01-03", tz="UTC"), pd.Timestamp("2023-06-30", tz="UTC"))


def bars(seed, sessions):
    rng = np.random.default_rng(seed)
    c = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, len(sessions))))
    return pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1e5},
                        index=pd.DatetimeIndex(sessions, name="datetime"))


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    root = tmp_path_factory.mktemp("qlib_cn")
    data = {"SH600000": bars(0, SESSIONS), "SH600001": bars(1, SESSIONS.delete([40])),  # suspended one day
            "SZ000001": bars(2, SESSIONS[60:])}                                       # listed later
    write_qlib_bins(data, root, "day", calendar="XSHG")
    # SH600001 leaves the index on 2023-03-31; SZ000001 joins on 2023-04-10
    (root / "instruments" / "csi3.txt").write_text(
        "SH600000\t2023-01-03\t2023-06-30\nSH600001\t2023-01-03\t2023-03-31\nSZ000001\t2023-04-10\t2023-06-30\n")
    return root


def test_a_market_loads_its_members_bars_on_the_shanghai_calendar(provider):
    loaded = load_universe(None, "qlib", "1d", options=SourceOptions(provider=provider, market="csi3"))
    assert sorted(loaded.bars) == ["SH600000", "SH600001", "SZ000001"]
    assert loaded.calendar == "XSHG" and "Qlib csi3" in loaded.label
    assert len(loaded.bars["SH600000"]) == len(SESSIONS)
    assert len(loaded.bars["SH600001"]) == len(SESSIONS) - 1   # the suspended day is a missing bar, not a NaN row
    assert loaded.bars["SZ000001"].index[0] == SESSIONS[60]
    np.testing.assert_allclose(loaded.bars["SH600000"]["close"].to_numpy(), bars(0, SESSIONS)["close"].to_numpy(),
                               rtol=1e-6)  # Qlib stores float32


def test_membership_spans_travel_with_the_bars_and_make_a_point_in_time_mask(provider):
    loaded = load_universe(None, "qlib", "1d", options=SourceOptions(provider=provider, market="csi3"))
    mask = membership_mask(loaded.membership, SESSIONS, ["SH600000", "SH600001", "SZ000001"])
    day = pd.Timestamp("2023-04-03", tz="UTC")
    assert mask.loc[day].tolist() == [True, False, False]
    assert mask.loc[pd.Timestamp("2023-03-31", tz="UTC"), "SH600001"]
    assert mask.loc[pd.Timestamp("2023-04-10", tz="UTC"), "SZ000001"]
    assert not mask.loc[pd.Timestamp("2023-04-07", tz="UTC"), "SZ000001"]


def test_a_range_takes_the_members_of_that_range_only(provider):
    loaded = load_universe(None, "qlib", "1d", start="2023-04-10", end="2023-06-30",
                           options=SourceOptions(provider=provider, market="csi3"))
    assert sorted(loaded.bars) == ["SH600000", "SZ000001"]   # SH600001 left before the range


def test_unknown_markets_codes_and_folders_are_named(provider, tmp_path):
    with pytest.raises(DataError, match="no market 'csi500'.*markets: all, csi3"):
        load_universe(None, "qlib", "1d", options=SourceOptions(provider=provider, market="csi500"))
    with pytest.raises(UnknownSymbolError, match="SH999999"):
        load_universe(None, "qlib", "1d", symbols="SH999999", options=SourceOptions(provider=provider, market="csi3"))
    with pytest.raises(DataError, match="is not Qlib data: no calendars/ folder"):
        load_universe(None, "qlib", "1d", options=SourceOptions(provider=tmp_path))


def test_a_flat_bar_without_volume_is_a_suspended_day_and_a_moving_one_is_refused(tmp_path, caplog):
    flat = bars(3, SESSIONS)
    day = SESSIONS[20]
    price = flat.loc[day, "close"]
    flat.loc[day, ["open", "high", "low", "close", "volume"]] = [price, price, price, price, np.nan]
    write_qlib_bins({"SH600000": flat.fillna({"volume": 1.0}), "SH600001": bars(4, SESSIONS)}, tmp_path, "day",
                    calendar="XSHG")                                   # the writer refuses NaN: punch it in after
    _nan_volume(tmp_path, "SH600000", 20)
    _nan_volume(tmp_path, "SH600001", 30)
    with caplog.at_level("WARNING", logger="graphwiz_trader.data.qlib_source"):
        loaded = load_universe(None, "qlib", "1d", symbols="SH600000", options=SourceOptions(provider=tmp_path))
    got = loaded.bars["SH600000"]
    assert got.loc[day, "volume"] == 0.0 and len(got) == len(SESSIONS)           # kept, with no trades possible
    assert f"SH600000 {day.date()}" in caplog.text and "read as suspended days" in caplog.text
    with pytest.raises(DataError, match=f"SH600001: nan_volume: 1 first at {SESSIONS[30].date()}"):
        load_universe(None, "qlib", "1d", symbols="SH600001", options=SourceOptions(provider=tmp_path))


def _nan_volume(root, code, position):
    """Set one day's volume to NaN in a Qlib bin file (float32: the first calendar index, then the values)."""
    path = root / "features" / code.lower() / "volume.day.bin"
    values = np.fromfile(path, dtype="<f4")
    values[1 + position - int(values[0])] = np.nan
    values.tofile(path)
