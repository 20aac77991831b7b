"""Ablations: every variant on the same folds and seeds; Rank IC per block as an independent Spearman computation
gives it; a planted signal is found with an interval above zero while noise is not; one model per regime learns a
relation whose sign flips with the regime, which one pooled model cannot; SHAP shares per family; bad set-ups are
refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from graphwiz_trader.errors import SettingError
from graphwiz_trader.research.ablation import (
    AblationSettings,
    Variant,
    family_shares,
    rank_ic_by_block,
    run_ablation,
    shap_stability,
    xs_accuracy_by_block,
)
from graphwiz_trader.research.experiment import WalkForwardSettings

N_T, N_I = 1300, 12


def _market(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Features: noise, a planted signal, a regime code (0/1, in blocks of 50 bars) and a feature whose effect on
    the forward return flips sign with the regime."""
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product([pd.date_range("2023-01-01", periods=N_T, freq="h"),
                                      [f"I{i:02d}" for i in range(N_I)]], names=["datetime", "instrument"])
    n = len(idx)
    signal = rng.standard_normal(n)
    flip = rng.standard_normal(n)
    regime = np.repeat((np.arange(N_T) // 50) % 2, N_I).astype(float)
    fwd = 0.3 * signal + 0.6 * flip * np.where(regime == 1, 1.0, -1.0) + rng.standard_normal(n)
    feats = pd.DataFrame({"noise": rng.standard_normal(n), "noise2": rng.standard_normal(n), "signal": signal,
                          "flip": flip, "regime": regime}, index=idx)
    return feats, pd.Series(fwd, index=idx, name="fwd")


def _settings(**kw) -> AblationSettings:
    wf = WalkForwardSettings(train_len=300, test_len=80, stride=80, lgb_params={"num_leaves": 7, "min_data_in_leaf": 50,
                                                                              "learning_rate": 0.1},
                             num_boost_round=40, early_stopping_rounds=10, split_min_rows=500)
    return AblationSettings(horizons=(1,), seeds=(0, 1), walkforward=wf, n_resamples=2000, **kw)


@pytest.fixture(scope="module")
def result():
    feats, fwd = _market()
    variants = [Variant("alpha158", ("noise", "noise2")),
                Variant("+signal", ("noise", "noise2", "signal"), families={"planted": ("signal",)}),
                Variant("+flip", ("noise", "flip"), families={"flip": ("flip",)}),
                Variant("+flip_split", ("noise", "flip"), split_by="regime", families={"flip": ("flip",)})]
    out = run_ablation(feats, {1: fwd}, variants, _settings(), naive_scores={"naive_signal": feats["signal"]},
                       progress=False)
    return feats, fwd, out[1]


def test_every_variant_is_scored_on_the_same_test_rows_and_folds(result):
    _, _, hr = result
    preds = hr.predictions
    assert preds[["alpha158", "+signal", "+flip", "+flip_split"]].notna().all().all()
    assert preds["fold"].nunique() == len(hr.rank_ic) >= 10


def test_rank_ic_per_fold_is_the_mean_of_per_time_spearman_correlations(result):
    _, fwd, hr = result
    preds = hr.predictions
    for fold, rows in preds.groupby("fold"):
        per_time = [spearmanr(g["+signal"], fwd.reindex(g.index)).statistic for _, g in rows.groupby(level="datetime")]
        assert hr.rank_ic.loc[fold, "+signal"] == pytest.approx(np.mean(per_time), abs=0.02)   # seeds averaged
        assert rank_ic_by_block(rows["+signal"], fwd, "fold", rows["fold"]).iloc[0] == pytest.approx(np.mean(per_time))


def test_a_planted_signal_is_found_with_an_interval_above_zero_and_noise_is_not(result):
    _, _, hr = result
    t = hr.table
    assert t.loc["+signal", "diff_boot_lo"] > 0.05
    assert t.loc["+signal", "ahead_blocks"] == t.loc["+signal", "diff_n_blocks"]
    assert abs(t.loc["alpha158", "ric_mean"]) < 0.03           # noise only: no skill
    assert t.loc["alpha158", "ric_boot_hi"] < t.loc["+signal", "ric_boot_lo"]
    assert t.loc["naive_signal", "kind"] == "naive"
    # the planted signal alone, without a model, is the strongest score of all
    assert t.loc["naive_signal", "ric_mean"] > t.loc["+signal", "ric_mean"] - 0.02


def test_one_model_per_regime_learns_a_sign_that_flips_with_the_regime(result):
    _, _, hr = result
    t = hr.table
    assert abs(t.loc["+flip", "ric_mean"]) < 0.05          # pooled: the two regimes cancel
    assert t.loc["+flip_split", "ric_mean"] > 0.2
    assert t.loc["+flip_split", "diff_boot_lo"] > 0.15


def test_cross_sectional_accuracy_counts_calls_on_the_right_side_of_the_median():
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=2), list("abcd")],
                                     names=["datetime", "instrument"])
    score = pd.Series([1, 2, 3, 4, 4, 3, 2, 1.0], index=idx)
    fwd = pd.Series([1, 2, 3, 4, 1, 2, 3, 4.0], index=idx)
    acc = xs_accuracy_by_block(score, fwd, "month")
    assert acc.iloc[0] == pytest.approx(0.5)       # day 1: 4/4 right, day 2: 0/4


def test_shap_shares_and_their_stability_follow_the_folds():
    shap = pd.DataFrame({"a": [1.0, 1.0, 1.0], "g1": [2.0, 1.0, 2.0], "g2": [1.0, 2.0, 1.0]})
    shares = family_shares(shap, {"one": ("g1",), "two": ("g2",)})
    np.testing.assert_allclose(shares["one"], [0.5, 0.25, 0.5])
    stab = shap_stability(shares)
    assert stab.loc["one", "first_share"] == pytest.approx(2 / 3)
    assert stab.loc["one", "rank_corr_consecutive"] == pytest.approx(-1.0)


def test_bad_set_ups_are_refused():
    feats, fwd = _market()
    with pytest.raises(SettingError, match="baseline"):
        run_ablation(feats, {1: fwd}, [Variant("x", ("noise",))], _settings(), progress=False)
    with pytest.raises(SettingError, match="distinct"):
        run_ablation(feats, {1: fwd}, [Variant("alpha158", ("noise",)), Variant("alpha158", ("flip",))], _settings(),
                     progress=False)
    with pytest.raises(SettingError, match="horizon"):
        run_ablation(feats, {4: fwd}, [Variant("alpha158", ("noise",))], _settings(), progress=False)
    with pytest.raises(SettingError, match="block"):
        _settings(block="week")


def test_shap_by_month_gives_one_row_per_month_of_the_test_rows():
    from dataclasses import replace

    feats, fwd = _market()
    cfg = _settings()
    cfg = replace(cfg, walkforward=replace(cfg.walkforward, shap_blocks="month", max_folds=2))
    hr = run_ablation(feats, {1: fwd}, [Variant("alpha158", ("noise", "signal"), families={"s": ("signal",)})], cfg,
                      progress=False)[1]
    shares = hr.family_shap["alpha158"]
    months = pd.DatetimeIndex(hr.predictions.index.get_level_values("datetime")).to_period("M")
    per_fold = hr.predictions.assign(m=months.astype(str)).groupby("fold")["m"].nunique().sum()
    assert len(shares) == per_fold and shares.index[0].startswith("0:")


def test_scores_are_also_measured_on_another_label_with_per_time_correlations_averaged_per_fold(result):
    import copy

    feats, fwd, hr = result
    hr = copy.deepcopy(hr)
    other = fwd.groupby(level="instrument").shift(-1).dropna()        # a label one bar later, like Qlib's
    hr.add_scores({"peer_signal": feats["signal"]}, "peer", fwd, _settings())
    assert hr.predictions["peer_signal"].notna().all()                # the peer's scores are kept beside the models
    table = hr.against(other, _settings())
    assert list(table.index) == ["alpha158", "+signal", "+flip", "+flip_split", "peer_signal"]
    rows = hr.predictions
    per_fold = []
    for _, fold_rows in rows.groupby("fold"):
        per_time = []
        for _, g in fold_rows.groupby(level="datetime"):
            y = other.reindex(g.index)
            ok = y.notna()
            if ok.sum() > 1:
                per_time.append(np.corrcoef(g["peer_signal"][ok], y[ok])[0, 1])
        per_fold.append(np.mean(per_time))
    assert table.loc["peer_signal", "ic_mean"] == pytest.approx(np.mean(per_fold))
    assert abs(table.loc["peer_signal", "ic_mean"]) < 0.05            # the planted signal is for the next bar only
    assert table.loc["peer_signal", "ic_boot_lo"] < table.loc["peer_signal", "ic_mean"] < table.loc["peer_signal", "ic_boot_hi"]
