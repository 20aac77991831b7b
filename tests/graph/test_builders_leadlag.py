"""Lead-lag edges: lagged cross-correlation against pandas, the selection rule, a planted lead recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.graph.builders import build_snapshots, log_returns
from graphwiz_trader.graph.builders.correlation import window_stack
from graphwiz_trader.graph.builders.leadlag import lagged_corr_chunk, select_leads


def _planted(n: int = 1500, seed: int = 2) -> pd.DataFrame:
    """LEAD moves first; FOLL follows it 2 bars later; NOIS is independent."""
    rng = np.random.default_rng(seed)
    lead = rng.standard_normal(n) * 0.01
    foll = np.r_[np.zeros(2), lead[:-2]] * 0.7 + rng.standard_normal(n) * 0.008
    nois = rng.standard_normal(n) * 0.01
    r = np.column_stack([foll, lead, nois])
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="datetime")
    return pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx,
                        columns=["FOLL/USDT", "LEAD/USDT", "NOIS/USDT"])


def test_lagged_cross_correlation_equals_pandas_shifted_corr() -> None:
    rng = np.random.default_rng(1)
    r = rng.standard_normal((260, 4))
    r[:30, 1] = np.nan
    r[rng.random((260, 4)) < 0.03] = np.nan
    ends = np.array([149, 199, 259])
    lagged = lagged_corr_chunk(window_stack(r, ends, 150), 4, 40)
    for k, e in enumerate(ends):
        win = pd.DataFrame(r[e - 149: e + 1])
        for lag in range(1, 5):
            for i in range(4):
                for j in range(4):
                    ref = win[i].iloc[:-lag].reset_index(drop=True).corr(
                        win[j].iloc[lag:].reset_index(drop=True), min_periods=40)
                    got = lagged[k, lag - 1, i, j]
                    if np.isnan(ref):
                        assert np.isnan(got)
                    else:
                        assert got == pytest.approx(ref, abs=1e-12)


def test_selection_rule_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(9)
    n, lmax = 6, 3
    lagged = rng.uniform(-0.4, 0.4, (lmax, n, n))
    lagged[1, 2, 4] = np.nan
    eligible = np.array([True, True, True, True, False, True])
    syms = [f"A{i}/USDT" for i in range(n)]
    got = select_leads(lagged, eligible, syms, min_abs_rho=0.2, min_gain=0.05)
    expected = []
    for i in range(n):
        for j in range(n):
            if i == j or not (eligible[i] and eligible[j]):
                continue
            vals = [(abs(lagged[L, i, j]), L) for L in range(lmax) if np.isfinite(lagged[L, i, j])]
            rev = [abs(lagged[L, j, i]) for L in range(lmax) if np.isfinite(lagged[L, j, i])]
            best, bl = max(vals, key=lambda t: (t[0], -t[1]))
            if best >= 0.2 and best >= (max(rev) if rev else 0.0) + 0.05:
                expected.append((syms[i], syms[j], bl + 1, lagged[bl, i, j]))
    assert list(got.itertuples(index=False, name=None)) == expected
    assert got["lag"].dtype == np.int64


def test_planted_lead_is_found_at_its_lag_with_the_numpy_correlation() -> None:
    panel = _planted()
    snaps = build_snapshots(panel, 720, 240, lead_max_lag=4, communities=False)
    rets = log_returns(panel)
    assert len(snaps) == 4
    for s in snaps:
        leads = s.leads
        row = leads[(leads["src"] == "LEAD/USDT") & (leads["dst"] == "FOLL/USDT")]
        assert len(row) == 1 and int(row["lag"].iloc[0]) == 2
        win = rets.loc[:s.as_of].iloc[-720:]
        x, y = win["LEAD/USDT"].to_numpy()[:-2], win["FOLL/USDT"].to_numpy()[2:]
        assert float(row["rho"].iloc[0]) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        # nothing leads in the reverse direction or from noise
        assert not ((leads["src"] == "FOLL/USDT") & (leads["dst"] == "LEAD/USDT")).any()
        assert not (leads["src"] == "NOIS/USDT").any()


def test_no_lead_edges_when_disabled() -> None:
    snaps = build_snapshots(_planted(400), 200, 100, lead_max_lag=0, communities=False)
    assert all(len(s.leads) == 0 and list(s.leads.columns) == ["src", "dst", "lag", "rho"] for s in snaps)
