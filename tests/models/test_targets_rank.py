"""The rank label of the ablations: a centred percentile rank per datetime, and forward returns of a close panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from graphwiz_trader.errors import DataError, SettingError
from graphwiz_trader.models.targets import cross_sectional_rank, forward_log_return_panel


def _panel() -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    return pd.DataFrame({"A": [1.0, 2.0, 4.0, 8.0, 8.0], "B": [1.0, 1.0, 1.0, np.nan, 1.0],
                         "C": [2.0, 1.0, 3.0, 3.0, 6.0]}, index=idx)


def test_forward_return_of_a_panel_is_the_log_close_ratio_h_rows_ahead_and_never_bridges_a_gap():
    fwd = forward_log_return_panel(_panel(), 2)
    day = pd.Timestamp("2024-01-01")
    assert fwd.loc[(day, "A")] == pytest.approx(np.log(4.0))
    assert fwd.loc[(day, "C")] == pytest.approx(np.log(1.5))
    # B has no close on day 4: the two-day returns that end or start there are absent, not bridged
    assert (pd.Timestamp("2024-01-02"), "B") not in fwd.index
    assert (pd.Timestamp("2024-01-03"), "B") in fwd.index
    assert fwd.index.get_level_values("datetime").tz is None
    assert fwd.index.get_level_values("datetime").max() == pd.Timestamp("2024-01-03")


def test_the_rank_is_centred_in_the_open_unit_interval_with_average_ranks_on_ties():
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=3), list("abcdef")],
                                     names=["datetime", "instrument"])
    x = pd.Series(rng.integers(0, 3, len(idx)).astype(float), index=idx)
    r = cross_sectional_rank(x)
    for dt, grp in x.groupby(level="datetime"):
        expected = (rankdata(grp.to_numpy()) - 0.5) / len(grp) - 0.5
        np.testing.assert_allclose(r.loc[dt].to_numpy(), expected)
    assert r.groupby(level="datetime").mean().abs().max() < 1e-12


def test_a_datetime_with_a_single_value_has_no_rank():
    idx = pd.MultiIndex.from_tuples([(pd.Timestamp("2024-01-01"), "a"), (pd.Timestamp("2024-01-02"), "a"),
                                     (pd.Timestamp("2024-01-02"), "b")], names=["datetime", "instrument"])
    r = cross_sectional_rank(pd.Series([1.0, 1.0, 2.0], index=idx))
    assert np.isnan(r.iloc[0]) and r.iloc[1] == -0.25 and r.iloc[2] == 0.25


def test_bad_panels_and_horizons_are_refused():
    with pytest.raises(SettingError):
        forward_log_return_panel(_panel(), 0)
    with pytest.raises(DataError, match="ascending"):
        forward_log_return_panel(_panel().iloc[::-1], 1)
