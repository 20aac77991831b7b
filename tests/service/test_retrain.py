"""Champion/challenger on the latest walk-forward fold of a real strategy: a deliberately worse challenger
(trained on shuffled labels) is not deployed; one that meets the margin is, with its version in the journal and
the mlflow store; rolling back redeploys the previous version from its saved folder."""

import asyncio
import copy
import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from graphwiz_trader.config.settings import RetrainSettings
from graphwiz_trader.models.generator import time_split
from graphwiz_trader.models.targets import make_label
from graphwiz_trader.service.retrain import (
    ChampionChallenger,
    RetrainError,
    fold_metric,
)
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.strategies.session import cost_model
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

from .conftest import quick_settings


def shuffled_labels(template, bars):
    """The champion's kind of model fitted on the fold's features with the labels randomly permuted."""
    gen = copy.copy(template)
    gen.booster, gen.feature_columns = None, None
    feats = gen.build_features(bars)
    label = make_label(bars, gen.label)
    noise = pd.Series(np.random.default_rng(0).permutation(label.to_numpy()), index=label.index)
    dates = feats.index.get_level_values("datetime").unique().sort_values()
    fit_d, stop_d, _ = time_split(dates, gen.split, gen.label.horizon)
    gen.fit(feats, noise, fit_d, stop_d, True)
    gen.meta = {"data_range": [str(min(d.index[0] for d in bars.values())), str(max(d.index[-1] for d in bars.values()))],
                "data_fingerprint": "shuffled"}
    return gen


def same_model(template, bars):
    """A challenger scoring exactly like the champion (ties the metric): deployed only with margin 0."""
    gen = copy.copy(template)
    gen.meta = {**template.meta, "data_fingerprint": "tie00000"}
    return gen


@pytest.fixture
def running(synthetic_market, tmp_path):
    s = quick_settings()
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    eng = ReplayEngine(synthetic_market.bars, start=synthetic_market.bars["SYN00/USDT"].index[260],
                       costs=cost_model(s.execution), timeframe="1h")
    strat = create_qlib_strategy_v2(eng, sorted(synthetic_market.bars), settings=s, graph_store=False, journal=j,
                                    run_id="cc", model_dir=tmp_path / "models")

    async def warm():
        await strat.start()
        r = None
        for _ in range(80):
            r = await strat.run_cycle()
        return r["as_of"]

    as_of = asyncio.run(warm())
    yield strat, j, as_of, tmp_path
    j.close()


def test_ic_and_accuracy_of_a_fold_are_computed_per_bar_across_symbols():
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=2, freq="h"), ["A", "B", "C"]],
                                     names=["datetime", "instrument"])
    s = pd.Series([0.1, 0.2, 0.3, 0.3, 0.2, 0.1], index=idx)
    r = pd.Series([1.0, 2.0, 3.0, 1.0, 2.0, 3.0], index=idx)
    assert fold_metric(s, r, "ic", 0.0) == pytest.approx((1.0 + -1.0) / 2)
    assert fold_metric(s - 0.2, r - 2.0, "accuracy", 0.0) == pytest.approx(2 / 4)     # zero returns left out


def test_a_worse_challenger_is_not_deployed_and_is_recorded_in_mlflow(running):
    strat, j, as_of, tmp = running
    champion = strat.scores.version
    cc = ChampionChallenger(strat, RetrainSettings(enabled=True, test_bars=48, margin=0.01, metric="ic"),
                            tmp / "models", mlflow_dir=tmp / "mlruns", challenger=shuffled_labels)
    # a hybrid generator's cache of graph features per bar window (shared with its challenger) is emptied after
    # the round: otherwise each round's windows stay in memory for ever
    strat.scores.gen._graph_cache = {"an old window": pd.DataFrame(np.zeros((1000, 20)))}
    d = asyncio.run(cc.run(as_of))
    assert strat.scores.gen._graph_cache == {}
    assert not d.deployed and d.test_bars >= 24
    assert d.challenger_score < d.champion_score + 0.01
    assert strat.scores.version == champion and cc.history == [champion]
    assert set(j.model_versions_frame("cc")["version"]) == {champion}
    client = MlflowClient(tracking_uri=(tmp / "mlruns").resolve().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("graphwiz_service").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["graphwiz.deployed"] == "false"
    assert runs[0].data.metrics["challenger_score"] == pytest.approx(d.challenger_score)


def test_a_challenger_meeting_the_margin_is_deployed_and_a_rollback_restores_the_champion(running):
    strat, j, as_of, tmp = running
    champion = strat.scores.version
    cc = ChampionChallenger(strat, RetrainSettings(enabled=True, test_bars=48, margin=0.0, metric="ic"),
                            tmp / "models", mlflow_dir=tmp / "mlruns", challenger=same_model)
    d = asyncio.run(cc.run(as_of))
    assert d.deployed and d.challenger_score == pytest.approx(d.champion_score)
    assert strat.scores.version == d.challenger != champion and (tmp / "models" / d.challenger / "meta.json").is_file()
    info = json.loads(j.model_versions_frame("cc").set_index("version").loc[d.challenger, "info"])
    assert info["events"][-1]["event"] == "deploy" and info["events"][-1]["replaced"] == champion
    # the strategy keeps trading on the new model
    r = asyncio.run(strat.run_cycle())
    assert r["status"] == "ok" and j.signals_frame("cc", cycle=r["cycle"])["model_version"].iloc[0] == d.challenger
    back = asyncio.run(cc.rollback())
    assert back == champion and strat.scores.version == champion
    info = json.loads(j.model_versions_frame("cc").set_index("version").loc[champion, "info"])
    assert info["events"][-1] == {**info["events"][-1], "event": "rollback", "replaced": d.challenger}
    with pytest.raises(RetrainError, match="no saved model 'nope'"):
        asyncio.run(cc.rollback("nope"))
