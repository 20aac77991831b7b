"""IC, Rank IC, ICIR and accuracy match independent computations (scipy, plain loops)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from graphwiz_trader.models.metrics import (
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
    m = evaluate_predictions(score, label, classification=False)
    assert m["accuracy"] == 0.5  # rows 1 and 4 agree


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


def _rows(values):
    idx = pd.MultiIndex.from_arrays([pd.date_range("2024-01-01", periods=len(values), freq="h"), ["A"] * len(values)],
                                    names=["datetime", "instrument"])
    return pd.Series(values, index=idx, dtype=float)


def test_the_majority_rate_is_the_training_majority_class_scored_on_the_test_rows():
    train = _rows([1, 1, 1, 0])  # majority class 1 in training
    test_label = _rows([0, 0, 0, 1, 1])  # ... but 0 dominates the test rows
    score = _rows([0.9, 0.2, 0.3, 0.8, 0.4])
    m = evaluate_predictions(score, test_label, classification=True, train_label=train)
    assert m["majority_class"] == 1
    assert m["majority_rate"] == pytest.approx(2 / 5)  # always predicting 1 is right on the two 1-rows
    assert m["accuracy"] == pytest.approx(3 / 5)  # rows 2, 3, 4 right


def test_balanced_accuracy_equals_sklearn():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(3)
    true = (rng.random(200) < 0.7).astype(int)
    score = np.clip(true * 0.2 + rng.random(200) * 0.8, 0, 1)
    m = evaluate_predictions(_rows(score), _rows(true), classification=True, train_label=_rows(true))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, (score > 0.5).astype(int)), abs=1e-12)


def test_zero_returns_have_no_direction_and_are_left_out_and_counted():
    label = _rows([0.01, 0.0, -0.02, 0.0, 0.03])
    score = _rows([0.5, -1.0, -0.5, 1.0, -0.1])
    m = evaluate_predictions(score, label, classification=False, train_label=_rows([0.1, -0.1, -0.2, 0.0]))
    assert m["n_zero_label"] == 2 and m["n_direction_rows"] == 3
    assert m["accuracy"] == pytest.approx(2 / 3)  # rows 1 and 3 right, row 5 wrong; zeros skipped
    assert m["majority_class"] == 0 and m["majority_rate"] == pytest.approx(1 / 3)
    from sklearn.metrics import roc_auc_score

    assert m["auc"] == pytest.approx(roc_auc_score([1, 0, 1], [0.5, -0.5, -0.1]))
