"""Hybrid against baseline: same folds only; differences carry the fold statistics of research.stats; models never
import research at module level (research calls models, not the other way round)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.research.compare import compare_results
from graphwiz_trader.research.experiment import WalkForwardSettings, run_walkforward
from graphwiz_trader.research.stats import fold_statistics


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(4)
    dates = pd.date_range("2024-01-01", periods=300, freq="h")
    idx = pd.MultiIndex.from_product([dates, [f"I{i}" for i in range(6)]], names=["datetime", "instrument"])
    y = pd.Series(rng.normal(0, 0.01, len(idx)), index=idx, name="label")
    x = pd.DataFrame(rng.normal(size=(len(idx), 3)), index=idx, columns=["f0", "f1", "f2"])
    x["f0"] = y * 100 + rng.normal(0, 2.0, len(idx))
    return x, y


def test_comparison_refuses_runs_on_different_folds(panel):
    x, y = panel
    a = run_walkforward(x, y, WalkForwardSettings(train_len=100, test_len=50, num_boost_round=20), progress=False)
    b = run_walkforward(x, y, WalkForwardSettings(train_len=120, test_len=50, num_boost_round=20), progress=False)
    with pytest.raises(ValueError, match="same folds"):
        compare_results(a, b)
    same = compare_results(a, a)
    assert same["accuracy_improvement_pct"] == 0.0 and same["n_folds"] == 3


def test_differences_and_their_intervals_come_from_the_per_fold_values(panel):
    x, y = panel
    cfg = WalkForwardSettings(train_len=60, test_len=20, label=LabelSpec("regression", 1), num_boost_round=20)
    base = run_walkforward(x[["f1", "f2"]], y, cfg, progress=False)
    hyb = run_walkforward(x, y, cfg, progress=False)
    out = compare_results(base, hyb, seed=5)
    b, h = base.folds, hyb.folds
    rel = (100 * (h["accuracy"] - b["accuracy"]) / b["accuracy"]).to_numpy()
    assert out["n_folds"] == len(rel) == 11
    assert out["accuracy_improvement_pct"] == pytest.approx(rel.mean())
    expected = fold_statistics(rel, seed=5)
    assert out["accuracy_improvement_pct_ci_hac"] == (expected["ci_low"], expected["ci_high"])
    assert out["accuracy_improvement_pct_ci_block_bootstrap"] == expected["bootstrap_ci"] is not None  # 11 folds
    assert out["ic_difference"] == pytest.approx((h["ic"] - b["ic"]).mean())
    assert out["auc_difference_stats"]["lag1_autocorr"] == fold_statistics((h["auc"] - b["auc"]).to_numpy())[
        "lag1_autocorr"]
    assert out["majority_rate"] == pytest.approx(b["majority_rate"].mean())
    assert [r["majority_rate"] for r in out["per_fold"]] == b["majority_rate"].tolist()
    assert out["ic_difference"] > 0 and out["auc_difference"] > 0  # f0 carries the label
    few = compare_results(run_walkforward(x[["f1", "f2"]], y, WalkForwardSettings(train_len=100, test_len=50,
                                                                                 num_boost_round=20), progress=False),
                          run_walkforward(x, y, WalkForwardSettings(train_len=100, test_len=50, num_boost_round=20),
                                          progress=False))
    assert few["accuracy_improvement_pct_ci_block_bootstrap"] is None and "3 folds < 10" in few["bootstrap_note"]


def test_models_never_import_research_at_module_level():
    code = ("import sys, graphwiz_trader.models.generator, graphwiz_trader.models.hybrid, "
            "graphwiz_trader.models.ensemble, graphwiz_trader.models.risk, graphwiz_trader.models.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('graphwiz_trader.research')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
