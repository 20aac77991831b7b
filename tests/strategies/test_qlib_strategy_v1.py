"""create_qlib_strategy: one saved model, a signal threshold, simple sizing; its newest-bar scores equal the model's
predictions on the full Alpha158 computation at that bar."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.features.pipeline import alpha_features
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.strategies import create_qlib_strategy
from graphwiz_trader.trading.engines.replay import ReplayEngine


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("v1")
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=5, n_bars=700, seed=2))
    train = {s: df.iloc[:500] for s, df in m.bars.items()}
    gen = QlibSignalGenerator(label=LabelSpec("direction", 1), work_dir=d / "qlib", num_boost_round=60)
    gen.train(train, list(train))
    gen.save_model(d / "model")
    return m, d


def test_v1_scores_the_newest_bar_as_the_model_scores_the_full_alpha158_frame(saved):
    m, d = saved
    eng = ReplayEngine(m.bars, start=m.bars["SYN00/USDT"].index[520], costs=CostModel())
    s = create_qlib_strategy(eng, sorted(m.bars), d / "model", config={"cov_window_bars": 72, "topk": 2,
                                                                       "signal_threshold": 0.0},
                             work_dir=d / "qlib", config_path=None)

    async def go():
        await s.start()
        return [await s.run_cycle() for _ in range(3)]

    res = asyncio.run(go())
    t = res[-1]["as_of"]
    cut = {sym: df.loc[:t] for sym, df in m.bars.items()}
    full = alpha_features(cut, d / "qlib")
    rows = full[full.index.get_level_values("datetime") == t.tz_convert(None)]
    expected = s.scores.gen.predict(rows)
    got = s.scores.score(s.buffer, t)
    for sym in sorted(m.bars):
        assert got[sym] == pytest.approx(float(expected.xs(to_qlib_instrument(sym), level="instrument").iloc[0]),
                                         rel=1e-12)
    w = pd.Series(res[-1]["target_weights"])
    above = got[got > 0.5].sort_values(ascending=False).index[:2]
    expected_w = min(0.25, 0.97 / len(above)) if len(above) else 0.0
    assert set(w[w > 0].index) == set(above) and np.allclose(w[w > 0], expected_w)


def test_v1_without_a_saved_model_says_how_to_get_one():
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=3, n_bars=100, seed=2))
    eng = ReplayEngine(m.bars, start=m.bars["SYN00/USDT"].index[80])
    with pytest.raises(ConfigError, match="create_qlib_strategy needs a saved model"):
        create_qlib_strategy(eng, sorted(m.bars), None, config_path=None)
