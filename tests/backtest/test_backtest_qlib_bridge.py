"""Qlib bridge on the shared CSI300 folder with a point-in-time score (negative 20-day return)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.qlib_bridge import (
    CRYPTO_SETTINGS,
    CSI300_SETTINGS,
    change_unit,
    held_amounts,
    qlib_expression_scores,
    run_qlib_topk_backtest,
)

REPO = Path(__file__).resolve().parents[2]
CSI300 = REPO.parent / "shared" / "data" / "qlib_cn_csi300"
START, END = "2019-03-01", "2019-04-12"

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def mlruns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (CSI300 / "calendars" / "day.txt").is_file():
        pytest.skip(f"Qlib CSI300 data not found at {CSI300}")
    from graphwiz_trader.data.qlib_runtime import init_qlib

    path = tmp_path_factory.mktemp("mlruns")
    init_qlib(CSI300, region="cn", mlflow_dir=path)
    return path


@pytest.fixture(scope="module")
def scores(mlruns: Path) -> pd.Series:
    """Negative 20-day return at each day's close: known at t, traded by Qlib at t+1."""
    return qlib_expression_scores("1-$close/Ref($close,20)", "csi300", "2019-01-15", END)


def _run(scores: pd.Series, mlruns: Path, settings=CSI300_SETTINGS):
    return run_qlib_topk_backtest(scores, CSI300, START, END, topk=30, n_drop=3, settings=settings, mlflow_dir=mlruns)


@pytest.fixture(scope="module")
def csi300_run(scores, mlruns):
    return _run(scores, mlruns)


def test_topk_dropout_buys_the_top_scores_of_the_previous_day_with_csi300_costs(scores, csi300_run) -> None:
    from qlib.data import D

    res = csi300_run
    first = res.report.index[0]
    held = held_amounts(res, first)
    prev_day = scores.index.get_level_values("datetime")[scores.index.get_level_values("datetime") < first].max()
    top = scores.xs(prev_day, level="datetime").sort_values(ascending=False).index[:30]
    assert len(held) >= 27  # a few of the top may be suspended or at the limit
    assert set(held.index) <= set(top)
    # Qlib's CSI300 costs: buying ~95% of 1e8 on day one costs 0.0005 of the traded value
    day1 = res.report.iloc[0]
    assert day1["total_cost"] == pytest.approx(0.0005 * day1["total_turnover"], rel=1e-6)
    assert np.isfinite(res.risk["excess_return_with_cost"]["annualized_return"])
    assert len(res.report) == len(D.calendar(start_time=START, end_time=END))


def test_csi300_settings_trade_in_lots_of_100_shares_and_crypto_settings_in_fractions(scores, csi300_run,
                                                                                     mlruns) -> None:
    from qlib.data import D

    lots = csi300_run
    when = lots.report.index[0]
    held = held_amounts(lots, when)
    factor = D.features(list(held.index), ["$factor"], when, when).droplevel("datetime")["$factor"]
    shares = held * factor.reindex(held.index)
    np.testing.assert_allclose(shares / 100.0, np.round(shares / 100.0), atol=1e-6)

    crypto = dataclasses.replace(CRYPTO_SETTINGS, benchmark="SH000300", periods_per_year=252.0)
    frac = _run(scores, mlruns, crypto)
    held_c = held_amounts(frac, frac.report.index[0])
    shares_c = held_c * factor.reindex(held_c.index).fillna(1.0)
    assert (np.abs(shares_c / 100.0 - np.round(shares_c / 100.0)) > 1e-3).mean() > 0.5
    assert frac.report.iloc[0]["total_cost"] == pytest.approx(0.001 * frac.report.iloc[0]["total_turnover"], rel=1e-6)


def test_percent_change_is_detected_and_the_limit_passed_in_percent(scores, csi300_run, mlruns) -> None:
    codes = sorted(scores.xs("2019-03-01", level="datetime").index)
    assert change_unit(codes, "2019-01-02", END) == "percent"
    # the same threshold as a fraction on a percent field blocks almost every trade ...
    naive = _run(scores, mlruns, dataclasses.replace(CSI300_SETTINGS, limit_source="change"))
    assert len(held_amounts(naive, naive.report.index[0])) < 10
    # ... while limits computed from adjusted closes agree with the detected-unit rule on day one
    by_close = _run(scores, mlruns, dataclasses.replace(CSI300_SETTINGS, limit_source="close"))
    first = csi300_run.report.index[0]
    assert set(held_amounts(by_close, first).index) == set(held_amounts(csi300_run, first).index)
