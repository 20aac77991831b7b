"""Point-in-time universes in the snapshot builder: an asset is a node only when it is a member (e.g. of an
index) on the snapshot's as_of bar; its edges equal pandas' pairwise correlation among the members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.builders import build_snapshots, members_at
from graphwiz_trader.graph.builders.panel import log_returns

WINDOW, STRIDE, MIN_PERIODS = 30, 7, 20


def _panel_and_members() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(5)
    idx = pd.date_range("2021-01-04", periods=160, freq="1D", tz="UTC", name="datetime")
    r = rng.normal(0, 0.01, (160, 1)) + rng.normal(0, 0.01, (160, 6))
    cols = [f"S{i}/CNY" for i in range(6)]
    close = pd.DataFrame(30 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=cols)
    members = pd.DataFrame(True, index=idx, columns=cols)
    members.iloc[:70, 1] = False           # S1 joins on day 70
    members.iloc[110:, 4] = False          # S4 leaves on day 110
    members.iloc[:, 5] = False             # S5 is never a member
    return close, members


def test_an_asset_is_a_node_only_on_snapshots_where_it_is_a_member_on_the_as_of_day() -> None:
    close, members = _panel_and_members()
    snaps = build_snapshots(close, WINDOW, STRIDE, MIN_PERIODS, top_k=3, lead_max_lag=2, members=members)
    assert len(snaps) == len(range(WINDOW - 1, len(close) - 1, STRIDE))
    for s in snaps:
        expect = tuple(c for c in close.columns if members.loc[s.as_of, c])
        assert s.assets == expect
        ends = set(s.edges["src"]) | set(s.edges["dst"]) | set(s.leads["src"]) | set(s.leads["dst"])
        assert ends <= set(expect) and set(s.communities) == set(expect)
    held = [s.as_of for s in snaps if "S1/CNY" in s.assets]
    assert min(held) >= close.index[70]
    assert max(s.as_of for s in snaps if "S4/CNY" in s.assets) < close.index[110]


def test_the_edges_among_members_are_pandas_pairwise_correlations_of_the_window() -> None:
    close, members = _panel_and_members()
    snaps = build_snapshots(close, WINDOW, STRIDE, MIN_PERIODS, lead_max_lag=0, members=members)
    rets = log_returns(close)
    for s in (snaps[3], snaps[12], snaps[-1]):
        end = rets.index.get_loc(s.as_of)
        win = rets.iloc[end - WINDOW + 1: end + 1][list(s.assets)]
        ref = win.corr(min_periods=MIN_PERIODS)
        n = len(s.assets)
        assert len(s.edges) == n * (n - 1) // 2            # no pruning: every member pair
        for src, dst, rho in s.edges.itertuples(index=False):
            assert rho == pytest.approx(ref.loc[src, dst], abs=1e-12)


def test_a_mask_that_leaves_out_a_time_or_a_symbol_is_refused_naming_it() -> None:
    close, members = _panel_and_members()
    with pytest.raises(DataError, match="no membership column for S5/CNY"):
        build_snapshots(close, WINDOW, STRIDE, members=members.drop(columns="S5/CNY"))
    with pytest.raises(DataError, match="no membership row for 2021-02-"):
        build_snapshots(close, WINDOW, STRIDE, members=members.iloc[:40])
    with pytest.raises(DataError, match="booleans"):
        build_snapshots(close, WINDOW, STRIDE, members=members.astype(float))
    naive = members.copy()
    naive.index = naive.index.tz_convert(None)
    with pytest.raises(DataError, match="UTC"):
        members_at(naive, close.index, list(close.columns))


@pytest.mark.parametrize("cut", [45, 71, 111, 159])
def test_snapshots_with_a_mask_are_unchanged_when_later_bars_are_removed(cut: int) -> None:
    close, members = _panel_and_members()
    kw = {"window": WINDOW, "stride": STRIDE, "min_periods": MIN_PERIODS, "top_k": 3, "lead_max_lag": 2}
    full = build_snapshots(close, members=members, **kw)
    part = build_snapshots(close.iloc[: cut + 1], members=members.iloc[: cut + 1], **kw)
    t = close.index[cut]
    assert len(part) == sum(s.as_of <= t for s in full)
    for a, b in zip(part, full):
        assert a.as_of == b.as_of and a.assets == b.assets and a.communities == b.communities
        pd.testing.assert_frame_equal(a.edges, b.edges, check_exact=False, rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(a.leads, b.leads, check_exact=False, rtol=0, atol=1e-12)
