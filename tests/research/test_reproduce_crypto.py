"""graph-crypto's aggregation and verdict on hand-made per-fold numbers: seeds are averaged fold by fold, the interval
is the HAC interval over the seed-averaged folds in fold order, and each verdict follows from where that interval lies."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from graphwiz_trader.research.reproduce_crypto import FOLD_COLUMNS, aggregate_folds, format_crypto_table, verdict

# seed-averaged improvement (%) per fold, in fold order; seed 0 is 0.4 above it and seed 1 0.4 below
IMPROVEMENT = [-1.0, -0.6, -1.4, -0.9, -0.2, -1.1, -0.8, -1.6, -0.5, -1.2]


def rows() -> pd.DataFrame:
    out = []
    for seed, shift in ((0, 0.4), (1, -0.4)):
        for fold, imp in enumerate(IMPROVEMENT):
            acc_b = 0.52 + 0.001 * fold
            out.append({"seed": seed, "fold": fold, "auc_baseline": 0.51, "auc_hybrid": 0.50 + 0.002 * seed,
                        "auc_difference": -0.01 + 0.002 * seed, "ic_baseline": 0.02, "ic_hybrid": 0.015,
                        "ic_difference": -0.005, "majority_rate": 0.516 + 0.001 * fold, "acc_baseline": acc_b,
                        "acc_hybrid": acc_b * (1 + (imp + shift) / 100), "balanced_acc_baseline": 0.505,
                        "balanced_acc_hybrid": 0.5, "accuracy_improvement_pct": imp + shift})
    return pd.DataFrame(out)


def hac_by_hand(x, lags, level=0.95):
    n, m = len(x), sum(x) / len(x)
    var = sum((v - m) ** 2 for v in x) / n
    for lag in range(1, lags + 1):
        var += 2 * (1 - lag / (lags + 1)) * sum((x[t] - m) * (x[t - lag] - m) for t in range(lag, n)) / n
    half = stats.t.ppf(0.5 + level / 2, n - 1) * math.sqrt(var / n)
    return m - half, m + half


def test_seeds_are_averaged_fold_by_fold_then_summarised_across_folds():
    s = aggregate_folds(rows(), [float(np.mean(IMPROVEMENT)) + 0.4, float(np.mean(IMPROVEMENT)) - 0.4])
    assert s["n_folds"] == 10 and s["hybrid_better_folds"] == 0
    assert s["accuracy_improvement_pct"] == pytest.approx(np.mean(IMPROVEMENT))
    assert s["accuracy_improvement_pct_ci_hac"] == pytest.approx(hac_by_hand(IMPROVEMENT, lags=2))
    x = np.array(IMPROVEMENT) - np.mean(IMPROVEMENT)
    assert s["accuracy_improvement_pct_lag1_autocorr"] == pytest.approx((x[1:] * x[:-1]).sum() / (x * x).sum())
    assert s["accuracy_improvement_pct_ci_block_bootstrap"] is not None  # 10 folds: the block bootstrap is shown
    assert s["accuracy_improvement_pct_std_over_seeds"] == pytest.approx(np.std([0.4, -0.4], ddof=1))
    assert s["auc_difference"] == pytest.approx(-0.009) and s["auc_hybrid"] == pytest.approx(0.501)
    assert s["majority_rate"] == pytest.approx(0.516 + 0.0045)
    assert s["accuracy_baseline"] == pytest.approx(0.5245)
    assert s["verdict"].startswith("graph features LOWER accuracy")


def test_the_order_of_the_rows_does_not_matter_but_the_order_of_the_folds_does():
    a = aggregate_folds(rows())
    b = aggregate_folds(rows().sample(frac=1.0, random_state=0))
    assert a["accuracy_improvement_pct_ci_hac"] == b["accuracy_improvement_pct_ci_hac"]
    assert a["accuracy_improvement_pct_lag1_autocorr"] == b["accuracy_improvement_pct_lag1_autocorr"]


def test_fewer_than_ten_folds_show_no_bootstrap_interval_and_say_why():
    s = aggregate_folds(rows()[rows()["fold"] < 6])
    assert s["accuracy_improvement_pct_ci_block_bootstrap"] is None
    assert "6 folds < 10" in s["bootstrap_note"]
    res = {"summary": {**s, "zero_return_rows": 7}, "data": "hand-made", "symbols": ["A", "B"],
           "range": ["2021-01-01", "2021-06-01"], "label": "1[r > 0]", "seeds": [0, 1],
           "folds": {"train_len": 100, "test_len": 10, "stride": 10}}
    table = format_crypto_table(res)
    lines = table.splitlines()
    assert lines[2].split() == ["AUC", "IC", "accuracy", "balanced"]  # AUC and IC lead
    assert "training-fold majority" in table and "7 test rows" in table
    assert "no bootstrap interval: 6 folds < 10" in table


@pytest.mark.parametrize("lo,hi,start", [
    (float("nan"), float("nan"), "too few folds"),
    (16.0, 20.0, "improvement above the claimed"),
    (-3.0, -1.0, "graph features LOWER accuracy"),
    (0.5, 1.5, "a real but smaller gain than claimed"),
    (-0.5, 1.5, "no measurable gain"),
    (2.5, 9.0, "consistent with the claim"),
    (1.0, 4.0, "inconclusive"),
])
def test_each_verdict_follows_from_where_the_interval_lies(lo, hi, start):
    assert verdict((lo + hi) / 2, lo, hi).startswith(start)


def test_fold_columns_are_what_compare_results_writes_per_fold():
    from graphwiz_trader.research.compare import compare_results
    from graphwiz_trader.research.experiment import WalkForwardSettings, run_walkforward

    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=120, freq="h"), list("ABCD")],
                                     names=["datetime", "instrument"])
    y = pd.Series(rng.normal(size=len(idx)), index=idx)
    x = pd.DataFrame({"f0": y + rng.normal(size=len(idx)), "f1": rng.normal(size=len(idx))}, index=idx)
    run = run_walkforward(x, y, WalkForwardSettings(train_len=60, test_len=20, num_boost_round=5), progress=False)
    assert set(FOLD_COLUMNS) <= set(compare_results(run, run)["per_fold"][0])
