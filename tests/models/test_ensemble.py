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


def test_stacking_predicts_each_block_only_after_its_members_fit_end_plus_the_gap(market, tmp_path, monkeypatch):
    events = []
    orig_fit, orig_predict = QlibSignalGenerator.fit, QlibSignalGenerator.predict

    def fit_spy(self, features, label, fit_dates, stop_dates, cs):
        events.append(("fit", self.seed, fit_dates.max()))
        return orig_fit(self, features, label, fit_dates, stop_dates, cs)

    def predict_spy(self, features):
        d = features.index.get_level_values("datetime")
        events.append(("predict", self.seed, d.min(), d.max()))
        return orig_predict(self, features)

    monkeypatch.setattr(QlibSignalGenerator, "fit", fit_spy)
    monkeypatch.setattr(QlibSignalGenerator, "predict", predict_spy)
    h = 3  # the label horizon: a training label at t ends at t + 3, so blocks must start after fit end + 3
    members = [QlibSignalGenerator(label=LabelSpec("regression", h), work_dir=tmp_path, seed=s, num_boost_round=30)
               for s in (1, 2)]
    st = StackedSignalGenerator(members, k_blocks=3)
    m = st.train(market.bars)
    assert m["oof_rows"] > 0 and len(m["meta_coef"]) == 2
    calendar = members[0].build_features(market.bars).index.get_level_values("datetime").unique().sort_values()
    pos = {d: i for i, d in enumerate(calendar)}
    # 2 out-of-fold rounds x 2 members: fit on the past, then predict the block
    oof = events[:8]
    assert [e[0] for e in oof] == ["fit", "predict"] * 4
    blocks = []
    for fit, pred in zip(oof[0::2], oof[1::2]):
        assert fit[1] == pred[1]  # the same member
        assert pos[pred[2]] > pos[fit[2]] + h  # the block starts strictly after the member's fit end + gap
        assert pos[pred[2]] - pos[fit[2]] == h + 1  # and no later: the purge is exactly the horizon
        blocks.append((pred[2], pred[3]))
    assert blocks[0] == blocks[1] and blocks[2] == blocks[3] and blocks[1][1] < blocks[2][0]  # two blocks, in order


def test_drawdown_risk_has_one_probability_per_horizon(market, tmp_path):
    d = DrawdownRiskModel(horizons=(6, 24), threshold=0.03, work_dir=tmp_path)
    out = d.train(market.bars)
    assert set(out) == {6, 24}
    assert out[24]["base_rate"] > out[6]["base_rate"]  # a longer window sees deeper drawdowns more often
    p = d.predict(d.models[6].build_features(market.bars))
    assert list(p.columns) == ["p_dd_6", "p_dd_24"] and p.min().min() >= 0 and p.max().max() <= 1
