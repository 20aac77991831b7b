"""Point-in-time scores: the reversal score reproduces the synthetic planted signal; no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.scores import cross_sectional_momentum, cross_sectional_reversal, score_name
from graphwiz_trader.data.synthetic import generate_synthetic_market


def test_one_bar_reversal_tracks_the_planted_signal_of_the_synthetic_market() -> None:
    m = generate_synthetic_market(n_assets=6, n_bars=300, seed=3)
    # the planted signal is -(r - mean r) / std r of LOG returns (population std): rebuilt exactly
    # here; the score uses SIMPLE returns, so it matches up to the log/simple difference
    rev = cross_sectional_reversal(m.close_panel(), 1)
    logret = np.log(m.close_panel()).diff()
    planted_from_logs = -(logret.sub(logret.mean(axis=1), axis=0)).div(logret.std(axis=1, ddof=0), axis=0)
    pd.testing.assert_frame_equal(planted_from_logs.iloc[1:], m.signal.iloc[1:], atol=1e-9, check_freq=False)
    corr = np.corrcoef(rev.iloc[1:].to_numpy().ravel(), m.signal.iloc[1:].to_numpy().ravel())[0, 1]
    assert corr > 0.999


def test_scores_at_t_do_not_change_when_later_bars_are_removed() -> None:
    close = generate_synthetic_market(n_assets=5, n_bars=200, seed=1).close_panel()
    close.iloc[:30, 2] = np.nan  # a late listing
    for fn in (lambda c: cross_sectional_reversal(c, 5), lambda c: cross_sectional_momentum(c, 20, 2)):
        full = fn(close)
        cut = fn(close.iloc[:120])
        pd.testing.assert_frame_equal(cut, full.iloc[:120])


def test_momentum_is_the_zscore_of_the_return_between_lookback_and_skip() -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    close = pd.DataFrame({"a": [100.0, 110.0, 120.0, 0.1], "b": [100.0, 100.0, 90.0, 0.1]}, index=idx)
    mom = cross_sectional_momentum(close, lookback_bars=3, skip_bars=1)
    # at t=3: a 100 -> 120 (+20%), b 100 -> 90 (-10%): z = +1 / -1 (population std)
    np.testing.assert_allclose(mom.iloc[3].to_numpy(), [1.0, -1.0])
    assert mom.iloc[:3].isna().all().all()
    assert score_name("momentum", 3, 1) == "xs_momentum_3bar_skip1"
