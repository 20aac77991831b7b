"""Walk-forward experiments: test bars never reach training or HPO (exact gaps); accuracy is scored on the target the
model was fitted on, beside the majority rate; long-short returns never overlap; stability is a share of folds."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.models import lgbm
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.research.experiment import WalkForwardSettings, long_short_returns, run_walkforward


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


def test_training_early_stopping_and_hpo_leave_exactly_the_gap_before_the_next_part(panel, monkeypatch):
    x, y = panel
    seen = []
    orig = lgbm.fit_booster

    def spy(x_train, y_train, x_stop, y_stop, *a, **k):
        seen.append((x_train.index.get_level_values("datetime").max(), x_stop.index.get_level_values("datetime").min(),
                     x_stop.index.get_level_values("datetime").max()))
        return orig(x_train, y_train, x_stop, y_stop, *a, **k)

    monkeypatch.setattr(lgbm, "fit_booster", spy)
    gap = 3  # the label horizon: the gap defaults to it
    cfg = WalkForwardSettings(train_len=100, test_len=50, label=LabelSpec("regression", gap), hpo_trials=2,
                            num_boost_round=30)
    res = run_walkforward(x, y, cfg, progress=False)
    assert len(res.folds) == 3 and len(seen) == 3 * 3  # 2 HPO trials + the final fit per fold
    bar = pd.Timedelta(hours=1)
    for k, start in enumerate(pd.to_datetime(res.folds["test_start"])):
        calls = seen[k * 3:(k + 1) * 3]
        for fit_end, stop_start, _ in calls:  # inner-fit | gap | inner-valid, and fit | gap | early stopping
            assert stop_start - fit_end == (gap + 1) * bar
        assert calls[-1][2] == start - (gap + 1) * bar  # the last training bar, then exactly `gap` bars, then test
        assert pd.Timestamp(res.folds["train_end"][k]) == start - (gap + 1) * bar
    assert len(res.best_params) == 3  # one search per fold, inside its training bars


def test_stability_is_the_share_of_folds_in_the_top_k(panel):
    x, y = panel
    cfg = WalkForwardSettings(train_len=100, test_len=50, gap=1, top_k=1, num_boost_round=30)
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


@pytest.fixture(scope="module")
def drifting_panel():
    """240 bars x 5 instruments; a large common drift makes almost every raw return positive, while feature f0
    carries the part relative to the cross-sectional mean (the target of a regression on a universe)."""
    rng = np.random.default_rng(8)
    dates = pd.date_range("2024-01-01", periods=240, freq="h")
    idx = pd.MultiIndex.from_product([dates, [f"I{i}" for i in range(5)]], names=["datetime", "instrument"])
    common = np.repeat(0.05 + rng.normal(0, 0.002, len(dates)), 5)
    idio = rng.normal(0, 0.01, len(idx))
    y = pd.Series(common + idio, index=idx, name="label")
    x = pd.DataFrame(rng.normal(size=(len(idx), 2)), index=idx, columns=["f0", "f1"])
    x["f0"] = (y - y.groupby(level="datetime").transform("mean")) * 100
    return x, y


def test_regression_accuracy_is_scored_against_the_demeaned_target_beside_the_majority_rate(drifting_panel):
    x, y = drifting_panel
    assert (y > 0).mean() > 0.99  # against the raw return, "always up" would look perfect
    cfg = WalkForwardSettings(train_len=100, test_len=60, label=LabelSpec("regression", 1), num_boost_round=60)
    res = run_walkforward(x, y, cfg, progress=False)
    target = y - y.groupby(level="datetime").transform("mean")
    for _, f in res.folds.iterrows():
        test = res.predictions.loc[f["test_start"]:f["test_end"]]
        t = target.reindex(test.index)
        expected = float(((test > 0) == (t > 0)).mean())
        assert f["accuracy"] == pytest.approx(expected, abs=1e-12)
        train = target.loc[f["train_start"]:f["train_end"]]
        major = int((train > 0).mean() >= 0.5)
        assert f["majority_rate"] == pytest.approx(float(((t > 0).astype(int) == major).mean()), abs=1e-12)
        assert f["accuracy"] > 0.85 and f["accuracy_minus_majority"] > 0.3
    s = res.summary()
    assert list(s)[1:3] == ["auc", "ic"]  # AUC and IC lead
    assert s["majority_rate"]["mean"] == pytest.approx(res.folds["majority_rate"].mean())


def test_long_short_returns_of_an_h_bar_horizon_never_overlap(panel):
    x, y = panel
    h = 3
    y3 = y.groupby(level="instrument").transform(lambda s: s.rolling(h).sum().shift(-(h - 1)))  # an h-bar return
    cfg = WalkForwardSettings(train_len=100, test_len=50, label=LabelSpec("regression", h), num_boost_round=30)
    res = run_walkforward(x, y3.dropna(), cfg, progress=False)
    first = pd.Timestamp(res.folds["test_start"][0])
    counts = []
    for _, f in res.folds.iterrows():
        test = res.predictions.loc[f["test_start"]:f["test_end"]]
        dates = test.index.get_level_values("datetime").unique().sort_values()
        held = dates[((dates - first) / pd.Timedelta(hours=1)).astype(int) % h == 0]  # rebalance every h bars
        ls = long_short_returns(test[test.index.get_level_values("datetime").isin(held)], y3, 0.2)
        assert f["long_short_return"] == pytest.approx(float(ls.sum()), abs=1e-12)
        counts.append(f["long_short_bars"])
        assert f["long_short_bars"] == len(held)
    assert counts == [17, 17, 16]  # 50 test bars each: positions 0..48, 51..99, 102..147 of one 3-bar grid
    steps = res.long_short.index.get_level_values("datetime").to_series().diff().dropna()
    assert (steps == pd.Timedelta(hours=h)).all()  # no overlap inside a fold or across fold boundaries


def test_zero_return_bars_are_dropped_from_direction_labels_and_counted(panel):
    x, y = panel
    fwd = y.copy()
    fwd.iloc[::7] = 0.0  # exact zero returns: no direction
    label = pd.Series(np.where(fwd == 0, np.nan, (fwd > 0).astype(float)), index=fwd.index)
    cfg = WalkForwardSettings(train_len=100, test_len=50, label=LabelSpec("direction", 1), num_boost_round=20)
    res = run_walkforward(x, label, cfg, fwd, progress=False)
    zero = fwd[fwd == 0].index
    assert not res.predictions.index.isin(zero).any()
    for _, f in res.folds.iterrows():
        in_test = zero.get_level_values("datetime").to_series().between(f["test_start"], f["test_end"]).sum()
        assert f["zero_return_rows"] == in_test > 0
    s = res.summary()
    assert s["zero_return_rows"] == res.folds["zero_return_rows"].sum()
    assert s["zero_returns"].startswith(f"dropped from the direction labels: {s['zero_return_rows']} test rows")
