"""PPO: a few thousand steps on an impact-dominated setting beat a random policy; engine integration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import ConfigError
from graphwiz_trader.execution import (
    ExecutionEnvironment,
    ExecutionStrategy,
    ImpactModelSettings,
    build_market_arrays,
    create_optimal_execution_engine,
)
from graphwiz_trader.execution.ppo import PPOExecutionPolicy, PPOTrainingSettings, check_disjoint, train_ppo

SYM = "SYN00/USDT"
# simple setting: one symbol, orders of one hour of volume over 4 bars, strong impact, no impact noise,
# no risk penalty -> spreading evenly is optimal and a random fraction front-loads
IMPACT = ImpactModelSettings(eta=1.0, impact_noise_sd=0.0)


@pytest.fixture(scope="module")
def trained(bars, tmp_path_factory):
    markets = {SYM: build_market_arrays(bars[SYM], SYM)}
    out = tmp_path_factory.mktemp("models") / "ppo_simple.zip"
    cfg = PPOTrainingSettings(total_timesteps=4096, seed=0, n_envs=4, n_steps=128, batch_size=128, n_epochs=10,
                            learning_rate=1e-3, torch_threads=1)
    res = train_ppo(markets, out, symbols=[SYM], train_start=None, train_end=pd.Timestamp("2022-02-10", tz="UTC"),
                    time_horizon_bars=4, volume_fraction_range=(1.0, 1.0), impact=IMPACT, risk_aversion_per_bps=0.0,
                    config=cfg, data_source="synthetic", data_label="SYNTHETIC", progress=False)
    return markets, res


def _episode_returns(env: ExecutionEnvironment, choose, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(123)
    out = []
    for e in range(n):
        obs, _ = env.reset(seed=10_000 + e)
        total, done = 0.0, False
        while not done:
            obs, r, done, _, _ = env.step(np.array([choose(obs, rng)], dtype=np.float32))
            total += r
        out.append(total)
    return np.array(out)


def test_ppo_trained_a_few_thousand_steps_beats_a_random_policy(trained):
    markets, res = trained
    policy = PPOExecutionPolicy.load(res.model_path)
    env = ExecutionEnvironment(markets, volume_fraction_range=(1.0, 1.0), time_horizon=4, impact=IMPACT,
                               risk_aversion_per_bps=0.0, start=pd.Timestamp("2022-02-10", tz="UTC"))  # unseen dates
    ppo = _episode_returns(env, lambda o, _: policy.fraction(o))
    rnd = _episode_returns(env, lambda o, rng: rng.random())
    twap = _episode_returns(env, lambda o, _: 1.0 / round(4 * float(o[1])))
    diff = ppo - rnd
    assert diff.mean() > 5 * diff.std(ddof=1) / np.sqrt(len(diff))  # clearly better than random
    assert ppo.mean() > rnd.mean() + 0.5 * (twap.mean() - rnd.mean())  # closes most of the gap to TWAP


def test_saved_model_metadata_records_seed_steps_and_training_data(trained):
    _, res = trained
    meta = json.loads(res.metadata_path.read_text())
    assert meta["seed"] == 0 and meta["total_timesteps"] == 4096
    assert meta["train_symbols"] == [SYM]
    assert meta["train_start_utc"] == "2022-01-15T01:00:00+00:00"  # first calibrated bar (14-day warm-up)
    assert meta["train_end_utc"] == "2022-02-09T23:00:00+00:00"
    assert meta["hyperparameters"]["torch_threads"] == 1
    assert meta["observation"][:3] == ["remaining_fraction", "time_left_fraction", "log10_size_over_bar_volume_plus_2"]


def test_evaluation_on_training_dates_or_symbols_is_refused(trained):
    _, res = trained
    with pytest.raises(ConfigError, match="evaluation dates must come after training"):
        check_disjoint(res.metadata, ["SYN01/USDT"], pd.Timestamp("2022-02-01", tz="UTC"))
    with pytest.raises(ConfigError, match="evaluation symbols SYN00/USDT were used to train the PPO model"):
        check_disjoint(res.metadata, [SYM, "SYN01/USDT"], pd.Timestamp("2022-02-11", tz="UTC"))
    check_disjoint(res.metadata, ["SYN01/USDT"], pd.Timestamp("2022-02-11", tz="UTC"))


def test_engine_runs_a_ppo_plan_adaptively_on_the_simulator(trained, bars):
    _, res = trained
    engine = create_optimal_execution_engine(bars, ppo_model=res.model_path)
    start = pd.Timestamp("2022-02-12 09:00", tz="UTC")
    plan = engine.create_execution_plan("SYN01/USDT", "buy", 40.0, ExecutionStrategy.PPO, start, 4)
    assert plan.adaptive and plan.child_quantities_base.sum() == pytest.approx(40.0)
    result = engine.execute(plan, engine.simulator(seed=0))
    assert result.metrics.fill_rate == pytest.approx(1.0)
    assert sum(f.quantity_base for f in result.fills) == pytest.approx(40.0)
    assert all(start <= f.time_utc < plan.end_utc for f in result.fills)


def test_missing_model_file_gets_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        PPOExecutionPolicy.load(tmp_path / "nope.zip")


def test_ppo_on_an_exchange_connection_decides_like_in_the_simulator(trained, bars, fakes):
    from graphwiz_trader.execution import ExchangeVenue

    FakeClock, FakeExchange = fakes
    _, res = trained
    engine = create_optimal_execution_engine(bars, ppo_model=res.model_path)
    start = pd.Timestamp("2022-02-12 09:00", tz="UTC")
    plan = engine.create_execution_plan("SYN01/USDT", "sell", 40.0, "PPO", start, 4)
    sim = engine.execute(plan, engine.simulator(seed=0))
    clock = FakeClock(start)
    ex = FakeExchange(bars["SYN01/USDT"], clock)
    ex.amount_to_precision = lambda symbol, amount: amount  # no rounding, to compare decisions exactly
    live = engine.execute(plan, ExchangeVenue(ex, sleep=clock.sleep, clock=clock))
    np.testing.assert_allclose([f.quantity_base for f in live.fills], [f.quantity_base for f in sim.fills], rtol=1e-5)
    assert [o[4] for o in ex.orders] == [f.time_utc for f in sim.fills]


def test_training_writes_nothing_into_the_temp_folder(bars, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where SB3's default logger would make SB3-<time>/
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    cfg = PPOTrainingSettings(total_timesteps=128, seed=0, n_envs=1, n_steps=64, batch_size=64, n_epochs=1,
                              torch_threads=1)
    train_ppo({SYM: build_market_arrays(bars[SYM], SYM)}, tmp_path / "m.zip", symbols=[SYM], train_start=None,
              train_end=pd.Timestamp("2022-02-10", tz="UTC"), time_horizon_bars=4, volume_fraction_range=(1.0, 1.0),
              impact=IMPACT, risk_aversion_per_bps=0.0, config=cfg, data_source="synthetic",
              data_label="SYNTHETIC", progress=False)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")] == []
