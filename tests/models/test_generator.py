"""The LightGBM generator: finds a planted signal, not noise; saves/loads; no look-ahead end to end."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.models.generator import ModelFeatureMismatchError, QlibSignalGenerator
from graphwiz_trader.models.targets import LabelSpec, make_label


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=10, n_bars=3000, seed=21)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("qlib")


@pytest.fixture(scope="module")
def trained(market, workdir):
    gen = QlibSignalGenerator(label=LabelSpec("regression", 1), work_dir=workdir, seed=3)
    metrics = gen.train(market.bars)
    return gen, metrics


def test_a_planted_signal_is_found_out_of_sample(trained):
    _, m = trained
    assert m["ic"] > 0.05 and m["rank_ic"] > 0.05
    assert m["n_instruments"] == 10
    assert m["holdout"][0] > m["stop"][1] > m["fit"][1]  # time-ordered, never shuffled


def test_regression_accuracy_is_scored_against_the_demeaned_target_it_was_fitted_on(trained, market):
    gen, m = trained
    feats = gen.build_features(market.bars)
    hold = feats.loc[m["holdout"][0]:m["holdout"][1]]
    score = gen.predict(hold)
    raw = make_label(market.bars, LabelSpec("regression", 1))
    target = (raw - raw.groupby(level="datetime").transform("mean")).reindex(score.index).dropna()
    expected = float(((score.reindex(target.index) > 0) == (target > 0)).mean())
    assert m["val_accuracy"] == pytest.approx(expected, abs=1e-12)
    on_raw = raw.reindex(target.index)
    assert m["val_accuracy"] != pytest.approx(float(((score.reindex(target.index) > 0) == (on_raw > 0)).mean()))
    train = (raw - raw.groupby(level="datetime").transform("mean")).loc[m["fit"][0]:m["stop"][1]].dropna()
    major = int((train > 0).mean() >= 0.5)
    assert m["majority_rate"] == pytest.approx(float(((target > 0).astype(int) == major).mean()), abs=1e-12)
    assert 0.0 < m["balanced_accuracy"] < 1.0


def test_pure_noise_gives_an_ic_near_zero(market, workdir):
    noise = generate_synthetic_market(n_assets=10, n_bars=3000, seed=21, signal_strength=0.0)
    m = QlibSignalGenerator(label=LabelSpec("regression", 1), work_dir=workdir, seed=3).train(noise.bars)
    # ~745 holdout dates x 10 assets: the IC's standard error is about 1/sqrt(745*9) ~ 0.012
    assert abs(m["ic"]) < 0.03


def test_classification_reports_accuracy_and_auc(market, workdir):
    gen = QlibSignalGenerator(label=LabelSpec("direction", 1, relative=True), work_dir=workdir, seed=3)
    m = gen.train(market.bars)
    assert 0.5 < m["val_accuracy"] < 0.7 and 0.5 < m["auc"] < 0.75
    assert set(m) >= {"val_accuracy", "auc", "ic", "rank_ic", "icir"}


def test_save_and_load_give_identical_predictions(trained, market, tmp_path):
    gen, _ = trained
    path = gen.save_model(tmp_path / "m")
    meta = (path / "meta.json").read_text()
    for key in ("feature_columns", "data_range", "data_fingerprint", "lightgbm", "pyqlib", "label"):
        assert key in meta
    loaded = QlibSignalGenerator.load_model(path, work_dir=gen.work_dir)
    feats = gen.build_features(market.bars)
    pd.testing.assert_series_equal(loaded.predict(feats), gen.predict(feats))
    assert loaded.meta["data_fingerprint"] == gen.meta["data_fingerprint"]


def test_loading_against_mismatched_features_fails_clearly(trained, market):
    gen, _ = trained
    feats = gen.build_features(market.bars).drop(columns=["KMID", "ROC5"]).assign(NEW=1.0)
    with pytest.raises(ModelFeatureMismatchError, match=r"2 missing \(KMID, ROC5\); 1 unexpected \(NEW\)"):
        gen.predict(feats)


def test_the_prediction_at_t_is_unchanged_when_data_after_t_is_removed(trained, market, workdir):
    gen, _ = trained
    full = gen.predict(gen.build_features(market.bars))
    for cut in (1500, 2200, 2999):
        trunc = {s: df.iloc[: cut + 1] for s, df in market.bars.items()}
        part = gen.predict(gen.build_features(trunc))
        t = market.bars["SYN00/USDT"].index[cut].tz_convert(None)
        np.testing.assert_array_equal(part.loc[t].to_numpy(), full.loc[t].to_numpy())


def test_predict_latest_uses_the_last_bar(trained, market):
    gen, _ = trained
    out = gen.predict_latest(market.bars["SYN03/USDT"].iloc[:500], "SYN03/USDT")
    assert out["datetime"] == str(market.bars["SYN03/USDT"].index[499].tz_convert(None))
    assert out["signal"] in {"BUY", "SELL", "HOLD"}
