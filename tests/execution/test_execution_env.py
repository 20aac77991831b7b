"""ExecutionEnvironment: gymnasium contract, reward accounting, input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.execution import (
    ExecutionEnvironment,
    ExecutionInputError,
    ExecutionPlan,
    ExecutionStrategy,
    ImpactModelSettings,
    MarketImpactSimulator,
    Side,
)
from graphwiz_trader.execution.types import ChildOrder, OrderType

SYM = "SYN00/USDT"


def test_environment_passes_gymnasium_check_env(bars):
    env = ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.001, 0.05), time_horizon=6)
    check_env(env, skip_render_check=True)


def test_environment_passes_stable_baselines3_check_env(bars):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = ExecutionEnvironment(order_book_history=bars[SYM], target_quantity=250.0, time_horizon="4h")
    with pytest.warns(UserWarning, match="symmetric and normalized Box action space"):
        sb3_check_env(env)


def test_rewards_add_up_to_minus_the_simulated_shortfall_and_the_risk_penalty(bars, start):
    impact = ImpactModelSettings(impact_noise_sd=0.0)
    lam = 3e-4
    env = ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.01, 0.01), time_horizon=5,
                               impact=impact, risk_aversion_per_bps=lam, reward_scale_bps=7.0)
    qty = 800.0
    obs, info = env.reset(seed=0, options={"symbol": SYM, "start_utc": start, "side": "sell", "quantity_base": qty})
    assert info["arrival_price_quote"] == bars[SYM].loc[start, "open"]
    actions = [float(np.float32(a)) for a in (0.1, 0.5, 0.0, 0.9, 0.3)]  # what the env reads
    rewards, traded, done = [], [], False
    for a in actions:
        obs, r, done, trunc, info = env.step(np.array([a], dtype=np.float32))
        rewards.append(r)
        traded.append(info["traded_fraction"])
    assert done and not trunc and obs[0] == 0.0
    rem, fr = 1.0, []
    for k, a in enumerate(actions):  # the last bar trades all that is left
        q = rem if k == 4 else rem * a
        fr.append(q)
        rem -= q
    assert traded == pytest.approx(fr)
    children = tuple(ChildOrder(start + pd.Timedelta(hours=k), qty * f, OrderType.PARTICIPATE)
                     for k, f in enumerate(fr) if f > 0)
    plan = ExecutionPlan(SYM, Side.SELL, qty, ExecutionStrategy.TWAP, start, 5, 60, children, 1.0, 1.0)
    sim = MarketImpactSimulator(env.markets, impact=impact).run(plan)
    assert info["shortfall_bps"] == pytest.approx(sim.metrics.implementation_shortfall_bps, rel=1e-9)
    m = env.markets[SYM]
    i0 = m.index_of(start)
    remaining_after = 1.0 - np.cumsum(fr)
    penalty = sum(lam * max(x, 0.0) ** 2 * (m.sigma_bar[i0 - 1 + k] * 1e4) ** 2 for k, x in enumerate(remaining_after))
    assert info["risk_penalty_bps"] == pytest.approx(penalty, rel=1e-9)
    assert sum(rewards) * 7.0 == pytest.approx(-(sim.metrics.implementation_shortfall_bps + penalty), rel=1e-9)


def test_observation_holds_remaining_time_size_returns_volume_and_spread(bars, start):
    env = ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.01, 0.01), time_horizon=4)
    m = env.markets[SYM]
    j = m.index_of(start) - 1
    obs, _ = env.reset(seed=1, options={"symbol": SYM, "start_utc": start, "side": "buy"})
    assert obs[:3].tolist() == pytest.approx([1.0, 1.0, 0.0], abs=1e-6)  # 1% of mean volume -> log10(0.01) + 2 = 0
    assert obs[3] == pytest.approx(m.logret[j] / m.sigma_bar[j], rel=1e-5)
    assert obs[6] == pytest.approx(np.log(m.volume[j] / m.mean_volume[j]), abs=1e-4)
    assert obs[8] == pytest.approx(m.half_spread[j] * 1e4 / 10, rel=1e-5)
    obs, *_ = env.step(np.array([0.25], dtype=np.float32))
    assert obs[:2].tolist() == pytest.approx([0.75, 0.75])


def test_episodes_only_use_bars_inside_the_requested_window(bars):
    lo, hi = pd.Timestamp("2022-01-30", tz="UTC"), pd.Timestamp("2022-02-05", tz="UTC")
    env = ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.001, 0.05), time_horizon=6,
                               start=lo, end=hi)
    for seed in range(50):
        _, info = env.reset(seed=seed)
        assert lo <= info["start_utc"] and info["start_utc"] + pd.Timedelta(hours=5) < hi


def test_environment_bad_input_gets_clear_errors(bars):
    with pytest.raises(ExecutionInputError, match="horizon of 0 bars is shorter than one 1h step"):
        ExecutionEnvironment(order_book_history=bars[SYM], target_quantity=1.0, time_horizon=0)
    with pytest.raises(ExecutionInputError, match="target_quantity must be a positive number of base units, got -2.0"):
        ExecutionEnvironment(order_book_history=bars[SYM], target_quantity=-2.0, time_horizon=3)
    with pytest.raises(ExecutionInputError, match="give exactly one of target_quantity"):
        ExecutionEnvironment(order_book_history=bars[SYM], time_horizon=3)
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) BTC/USDT in order_book_history"):
        ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.01, 0.02), symbols=["BTC/USDT"])
    with pytest.raises(DataError, match="no episode fits"):
        ExecutionEnvironment(order_book_history=bars, volume_fraction_range=(0.01, 0.02),
                             end=pd.Timestamp("2022-01-05", tz="UTC"))
