"""Graph features with a point-in-time universe and the neighbour-momentum gap, in memory and through the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import DataError
from graphwiz_trader.features.graph_features import feature_names, graph_features
from graphwiz_trader.features.graph_pipeline import graph_features_for_panel
from graphwiz_trader.graph.builders import build_snapshots
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_panel_graph

SPEC = GraphBuildSettings(window=30, stride=5, min_periods=20, top_k=3, min_abs_rho=0.0, lead_max_lag=2,
                          exchange="test")


def _panel_and_members() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    idx = pd.date_range("2022-01-03", periods=120, freq="1D", tz="UTC", name="datetime")
    r = rng.normal(0, 0.01, (120, 1)) + rng.normal(0, 0.01, (120, 5))
    cols = [f"A{i}/CNY" for i in range(5)]
    close = pd.DataFrame(10 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=cols)
    members = pd.DataFrame(True, index=idx, columns=cols)
    members.iloc[:50, 2] = False           # A2 joins on day 50
    members.iloc[90:, 3] = False           # A3 leaves on day 90
    return close, members


def test_feature_names_put_each_gap_after_its_momentum_and_leave_the_default_list_unchanged() -> None:
    assert feature_names() == [c for c in feature_names(gaps=True) if not c.startswith("G_nbr_mom_gap_")]
    names = feature_names(horizons=(5, 20), gaps=True)
    i = names.index("G_nbr_mom_5")
    assert names[i:i + 4] == ["G_nbr_mom_5", "G_nbr_mom_gap_5", "G_nbr_mom_20", "G_nbr_mom_gap_20"]


def test_an_asset_has_rows_only_on_member_days_with_the_values_of_the_unmasked_frame() -> None:
    close, members = _panel_and_members()
    snaps = build_snapshots(close, SPEC.window, SPEC.stride, SPEC.min_periods, top_k=3, lead_max_lag=2,
                            members=members)
    masked = graph_features(snaps, None, close, horizons=(5,), gaps=True, members=members)
    plain = graph_features(snaps, None, close, horizons=(5,), gaps=True)
    rows = members.stack()
    rows.index = rows.index.set_names(["datetime", "instrument"])
    expect_index = rows[rows].index
    expect_index = expect_index.set_levels(expect_index.levels[1].str.replace("/", ""), level=1)
    assert sorted(masked.index) == sorted(expect_index)
    pd.testing.assert_frame_equal(masked, plain.loc[masked.index])
    a2 = masked.xs("A2CNY", level="instrument").index
    assert a2.min() == close.index[50]
    assert masked.xs("A3CNY", level="instrument").index.max() == close.index[89]


def test_the_gap_is_the_own_h_bar_log_return_minus_the_neighbour_momentum() -> None:
    close, members = _panel_and_members()
    snaps = build_snapshots(close, SPEC.window, SPEC.stride, SPEC.min_periods, top_k=3, lead_max_lag=0,
                            members=members)
    f = graph_features(snaps, None, close, horizons=(5,), gaps=True, members=members)
    own = np.log(close).diff(5).stack()
    own.index = pd.MultiIndex.from_arrays([own.index.get_level_values(0),
                                           own.index.get_level_values(1).str.replace("/", "")],
                                          names=["datetime", "instrument"])
    ok = f["G_nbr_mom_5"].notna()
    assert ok.sum() > 300
    np.testing.assert_allclose(f.loc[ok, "G_nbr_mom_gap_5"], own.loc[f.index[ok]] - f.loc[ok, "G_nbr_mom_5"],
                               rtol=1e-12, atol=1e-14)
    assert f.loc[~ok, "G_nbr_mom_gap_5"].isna().all()


def test_a_mask_missing_a_bar_is_refused() -> None:
    close, members = _panel_and_members()
    with pytest.raises(DataError, match="no membership row"):
        graph_features([], None, close, members=members.iloc[1:])


def test_panel_features_read_back_from_the_store_equal_those_of_the_built_graph(graph_store) -> None:
    close, members = _panel_and_members()
    timings: dict = {}
    got = graph_features_for_panel(close, SPEC, members, store=graph_store, horizons=(5,), gaps=True,
                                   timings=timings)
    build = build_panel_graph(close, SPEC, members)
    ref = graph_features(build.snapshots, None, close, horizons=(5,), gaps=True, members=members)
    ref.index = ref.index.set_levels(ref.index.levels[0].tz_convert(None), level=0)
    pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-12, atol=1e-12)
    assert timings["n_snapshots"] == len(build.snapshots)
    assert build.build_id in set(graph_store.list_builds()["build"])


def test_the_panel_build_id_changes_with_the_mask_and_not_otherwise() -> None:
    close, members = _panel_and_members()
    a = build_panel_graph(close, SPEC, members).build_id
    assert build_panel_graph(close, SPEC, members.copy()).build_id == a
    other = members.copy()
    other.iloc[100, 0] = False
    assert build_panel_graph(close, SPEC, other).build_id != a
    assert build_panel_graph(close, SPEC, None).build_id != a


def test_a_build_the_store_holds_is_read_back_instead_of_written_again_with_reuse(graph_store) -> None:
    close, members = _panel_and_members()
    first: dict = {}
    a = graph_features_for_panel(close, SPEC, members, store=graph_store, horizons=(5,), timings=first, reuse=True)
    assert "reused_build" not in first                        # not there yet: built and written
    again: dict = {}
    b = graph_features_for_panel(close, SPEC, members, store=graph_store, horizons=(5,), timings=again, reuse=True)
    assert again["reused_build"] == 1.0 and again["n_snapshots"] == first["n_snapshots"]
    pd.testing.assert_frame_equal(a, b)
    other = members.copy()
    other.iloc[100:, 0] = False                               # another universe: another build, written
    third: dict = {}
    graph_features_for_panel(close, SPEC, other, store=graph_store, horizons=(5,), timings=third, reuse=True)
    assert "reused_build" not in third
