"""IC, Rank IC, ICIR and accuracy match independent computations (scipy, plain loops)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from graphwiz_trader.research.metrics import (
    directional_accuracy,
    evaluate_predictions,
    ic_series,
    signal_metrics,
    time_series_ic,
)


@pytest.fixture
def panel():
    rng = np.random.default_rng(0)
    dates = pd.date_range("2024-01-01", periods=30, freq="h")
    insts = [f"I{i}" for i in range(7)]
    idx = pd.MultiIndex.from_product([dates, insts], names=["datetime", "instrument"])
    label = pd.Series(rng.normal(size=len(idx)), index=idx)
    score = 0.3 * label + pd.Series(rng.normal(size=len(idx)), index=idx)
    score.iloc[[3, 40]] = np.nan  # missing scores are skipped pairwise
    label.iloc[[17]] = 1.5
    label.iloc[[18]] = 1.5  # a tie for the rank test
    return score, label


def test_ic_and_rank_ic_equal_scipy_per_date(panel):
    score, label = panel
    ic = ic_series(score, label)
    ric = ic_series(score, label, "spearman")
    for d in score.index.get_level_values(0).unique():
        s, l = score.loc[d], label.loc[d]
        ok = s.notna() & l.notna()
        assert ic.loc[d] == pytest.approx(pearsonr(s[ok], l[ok])[0], abs=1e-12)
        assert ric.loc[d] == pytest.approx(spearmanr(s[ok], l[ok])[0], abs=1e-12)


def test_icir_is_mean_over_sample_std(panel):
    score, label = panel
    m = signal_metrics(score, label)
    per = [pearsonr(score.loc[d].dropna(), label.loc[d][score.loc[d].notna()])[0]
           for d in score.index.get_level_values(0).unique()]
    assert m["ic"] == pytest.approx(np.mean(per), abs=1e-12)
    assert m["icir"] == pytest.approx(np.mean(per) / np.std(per, ddof=1), abs=1e-12)
    assert m["n_dates"] == 30


def test_accuracy_counts_matching_directions():
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=2, freq="h"), ["A", "B"]],
                                     names=["datetime", "instrument"])
    score = pd.Series([0.2, -0.1, 0.3, 0.5], index=idx)
    label = pd.Series([0.01, 0.02, -0.03, 0.04], index=idx)
    assert directional_accuracy(score, label) == 0.5  # rows 1 and 4 agree
    m = evaluate_predictions(score, label, classification=False)
    assert m["accuracy"] == 0.5


def test_single_instrument_ic_is_the_time_series_correlation():
    rng = np.random.default_rng(1)
    idx = pd.MultiIndex.from_arrays([pd.date_range("2024-01-01", periods=200, freq="h"), ["A"] * 200],
                                    names=["datetime", "instrument"])
    label = pd.Series(rng.normal(size=200), index=idx)
    score = label + rng.normal(size=200)
    m = time_series_ic(score, label, blocks=10)
    assert m["ic"] == pytest.approx(pearsonr(score, label)[0], abs=1e-12)
    blocks = [pearsonr(score.iloc[i:i + 20], label.iloc[i:i + 20])[0] for i in range(0, 200, 20)]
    assert m["icir"] == pytest.approx(np.mean(blocks) / np.std(blocks, ddof=1), abs=1e-12)
