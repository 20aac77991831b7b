"""Walk-forward experiments: test bars never reach training or HPO; importance stability is a share of folds."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.models import lgbm
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.research.experiment import (
    WalkForwardConfig,
    bootstrap_ci,
    compare_results,
    fold_ci,
    long_short_returns,
    run_walkforward,
)


@pytest.fixture(scope="module")
def panel():
    """300 bars x 6 instruments; feature f0 carries the next-bar return, f1..f3 are noise."""
    rng = np.random.default_rng(4)
    dates = pd.date_range("2024-01-01", periods=300, freq="h")
    idx = pd.MultiIndex.from_product([dates, [f"I{i}" for i in range(6)]], names=["datetime", "instrument"])
    y = pd.Series(rng.normal(0, 0.01, len(idx)), index=idx, name="label")
    x = pd.DataFrame(rng.normal(size=(len(idx), 4)), index=idx, columns=["f0", "f1", "f2", "f3"])
    x["f0"] = y * 100 + rng.normal(0, 0.5, len(idx))
    return x, y


def test_training_and_early_stopping_only_see_bars_before_the_test_window(panel, monkeypatch):
    x, y = panel
    seen = []
    orig = lgbm.fit_booster

    def spy(x_train, y_train, x_stop, y_stop, *a, **k):
        last = x_train.index.get_level_values("datetime").max()
        if x_stop is not None:
            last = max(last, x_stop.index.get_level_values("datetime").max())
        seen.append(last)
        return orig(x_train, y_train, x_stop, y_stop, *a, **k)

    monkeypatch.setattr(lgbm, "fit_booster", spy)
    cfg = WalkForwardConfig(train_len=100, test_len=50, gap=2, label=LabelSpec("regression", 1), hpo_trials=2,
                            num_boost_round=30)
    res = run_walkforward(x, y, cfg, progress=False)
    assert len(res.folds) == 3
    starts = pd.to_datetime(res.folds["test_start"])
    per_fold = len(seen) // 3  # 2 HPO trials + the final fit per fold
    for k, start in enumerate(starts):
        for last in seen[k * per_fold:(k + 1) * per_fold]:
            assert last < start - pd.Timedelta(hours=1)  # gap of 2 bars
    assert len(res.best_params) == 3  # one search per fold, inside its training bars


def test_stability_is_the_share_of_folds_in_the_top_k(panel):
    x, y = panel
    cfg = WalkForwardConfig(train_len=100, test_len=50, gap=1, top_k=1, num_boost_round=30)
    res = run_walkforward(x, y, cfg, progress=False)
    st = res.stability("shap")
    assert st["f0"] == 1.0 and st.drop("f0").sum() == 0.0
    assert res.folds["ic"].min() > 0.5  # f0 is nearly the label
    assert res.shap.shape == (3, 4)


def test_long_short_takes_the_top_and_bottom_fifth():
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=1, freq="h"), list("ABCDEFGHIJ")],
                                     names=["datetime", "instrument"])
    score = pd.Series(np.arange(10.0), index=idx)
    ret = pd.Series(np.arange(10.0) / 100, index=idx)
    ls = long_short_returns(score, ret, 0.2)
    assert ls.iloc[0] == pytest.approx((0.085) - (0.005))


def test_confidence_intervals_match_their_definitions():
    v = np.array([1.0, 2.0, 3.0, 4.0])
    lo, hi = fold_ci(v)
    from scipy import stats

    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert (lo, hi) == pytest.approx((2.5 - half, 2.5 + half))
    blo, bhi = bootstrap_ci(v, seed=1)
    assert 1.0 <= blo < 2.5 < bhi <= 4.0


def test_comparison_refuses_runs_on_different_folds(panel):
    x, y = panel
    a = run_walkforward(x, y, WalkForwardConfig(train_len=100, test_len=50, num_boost_round=20), progress=False)
    b = run_walkforward(x, y, WalkForwardConfig(train_len=120, test_len=50, num_boost_round=20), progress=False)
    with pytest.raises(ValueError, match="same folds"):
        compare_results(a, b)
    same = compare_results(a, a)
    assert same["accuracy_improvement_pct"] == 0.0 and same["n_folds"] == 3
