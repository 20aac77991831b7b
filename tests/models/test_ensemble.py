"""Ensembles: weights are honoured; the stacked meta-learner sees only out-of-fold predictions."""

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.models.ensemble import EnsembleSignalGenerator, StackedSignalGenerator
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.risk import DrawdownRiskModel
from graphwiz_trader.models.targets import LabelSpec

REG = LabelSpec("regression", 1)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=6, n_bars=1500, seed=5)


def gen(workdir, seed, **kw):
    return QlibSignalGenerator(label=REG, work_dir=workdir, seed=seed, num_boost_round=60, **kw)


def test_weights_are_normalised_and_validated(tmp_path):
    e = EnsembleSignalGenerator([gen(tmp_path, 1), gen(tmp_path, 2)], [3, 1])
    assert e.weights == [0.75, 0.25]
    with pytest.raises(ValueError, match="one per generator"):
        EnsembleSignalGenerator([gen(tmp_path, 1)], [1, 1])


def test_the_ensemble_score_is_the_weighted_mean_of_member_ranks(market, tmp_path):
    e = EnsembleSignalGenerator([gen(tmp_path, 1), gen(tmp_path, 2, lgb_params={"num_leaves": 7})], [0.7, 0.3])
    m = e.train(market.bars)
    assert m["ic"] > 0.02
    feats = e.generators[0].build_features(market.bars)
    s1, s2 = (g.predict(feats).groupby(level="datetime").rank(pct=True) for g in e.generators)
    combined = e.predict(market.bars)
    np.testing.assert_allclose(combined.to_numpy(), (0.7 * s1 + 0.3 * s2).reindex(combined.index).to_numpy())


def test_stacking_fits_its_meta_learner_on_out_of_fold_predictions_only(market, tmp_path, monkeypatch):
    seen = []
    orig = QlibSignalGenerator.fit

    def spy(self, features, label, fit_dates, stop_dates, cs):
        seen.append((fit_dates.max(), self.seed))
        return orig(self, features, label, fit_dates, stop_dates, cs)

    monkeypatch.setattr(QlibSignalGenerator, "fit", spy)
    st = StackedSignalGenerator([gen(tmp_path, 1), gen(tmp_path, 2)], k_blocks=3)
    m = st.train(market.bars)
    assert m["oof_rows"] > 0 and len(m["meta_coef"]) == 2
    # 2 out-of-fold rounds x 2 members, then the final refit of both members
    assert len(seen) == 6
    oof_ends = sorted({d for d, _ in seen[:4]})
    assert oof_ends[0] < oof_ends[1]  # each block is predicted by members fitted strictly before it


def test_drawdown_risk_has_one_probability_per_horizon(market, tmp_path):
    d = DrawdownRiskModel(horizons=(6, 24), threshold=0.03, work_dir=tmp_path)
    out = d.train(market.bars)
    assert set(out) == {6, 24}
    assert out[24]["base_rate"] > out[6]["base_rate"]  # a longer window sees deeper drawdowns more often
    p = d.predict(d.models[6].build_features(market.bars))
    assert list(p.columns) == ["p_dd_6", "p_dd_24"] and p.min().min() >= 0 and p.max().max() <= 1
