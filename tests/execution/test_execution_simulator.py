"""The impact simulator: formulas, monotonicity, determinism, missing bars, metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import DataError
from graphwiz_trader.execution import (
    ExecutionPlan,
    ExecutionStrategy,
    ImpactModelSettings,
    MarketImpactSimulator,
    Side,
    create_optimal_execution_engine,
)
from graphwiz_trader.execution.types import ChildOrder, OrderType

SYM = "SYN02/USDT"


def _calibration_by_hand(df: pd.DataFrame, i: int) -> tuple[float, float, float]:
    """(sigma_day, mean bar volume, half-spread) from bars before i, independently of the package."""
    past = df.iloc[:i]
    r = np.log(past["close"]).diff().iloc[-168:]
    sigma_day = float(r.std(ddof=1)) * math.sqrt(24)
    v = float(past["volume"].iloc[-168:].mean())
    lc, eta = np.log(past["close"]), (np.log(past["high"]) + np.log(past["low"])) / 2
    prod = ((lc.shift(1) - eta.shift(1)) * (lc.shift(1) - eta)).iloc[-336:]
    half = min(max(0.5 * math.sqrt(max(4 * float(prod.mean()), 0.0)), 0.5e-4), 25e-4)
    return sigma_day, v, half


def test_shortfall_matches_an_independent_formula(bars, start):
    engine = create_optimal_execution_engine(bars, impact=ImpactModelSettings(impact_noise_sd=0.0))
    sim = engine.simulator(seed=1)
    df = bars[SYM]
    i0 = df.index.get_loc(start)
    qty = 0.02 * float(df["volume"].iloc[i0 - 168: i0].mean())
    plan = engine.create_execution_plan(SYM, "sell", qty, "TWAP", start, 4)
    res = engine.execute(plan, sim)
    # plain loop over the documented model: fill = typical * (1 + side (D + half + eta sigma rho^alpha))
    side, perm, notional, filled = -1, 0.0, 0.0, 0.0
    for k in range(4):
        i = i0 + k
        sigma_day, v, half = _calibration_by_hand(df, i)
        o, h, lo, c, vol = (float(df[x].iloc[i]) for x in ("open", "high", "low", "close", "volume"))
        q = qty / 4
        temp = 0.142 * sigma_day * (q / vol) ** 0.6
        price = (o + h + lo + c) / 4 * (1 + side * (perm + half + temp))
        assert res.fills[k].price_quote == pytest.approx(price, rel=1e-12)
        perm += 0.314 * sigma_day * q / (v * 24)
        notional += q * price
        filled += q
    avg = notional / filled
    arrival = float(df["open"].iloc[i0])
    assert res.metrics.average_price_quote == pytest.approx(avg, rel=1e-12)
    assert res.metrics.implementation_shortfall_bps == pytest.approx(side * (avg - arrival) / arrival * 1e4, rel=1e-9)
    w = df.iloc[i0: i0 + 4]
    vwap = float((((w.open + w.high + w.low + w.close) / 4) * w.volume).sum() / w.volume.sum())
    assert res.metrics.vwap_slippage_bps == pytest.approx(side * (avg - vwap) / vwap * 1e4, rel=1e-9)
    assert res.metrics.fill_rate == 1.0


def test_simulator_charges_more_impact_at_higher_participation(bars, start):
    engine = create_optimal_execution_engine(bars, impact=ImpactModelSettings(impact_noise_sd=0.0))
    sim = engine.simulator(seed=0)
    vol = float(bars[SYM].loc[start, "volume"])
    temps, shortfalls = [], []
    for participation in (0.001, 0.01, 0.1, 0.5):
        plan = ExecutionPlan(SYM, Side.BUY, participation * vol, ExecutionStrategy.TWAP, start, 1, 60,
                             (ChildOrder(start, participation * vol, OrderType.PARTICIPATE),), 1.0, vol)
        r = sim.run(plan)
        assert r.fills[0].participation == pytest.approx(participation)
        temps.append(r.fills[0].temporary_impact_bps)
        shortfalls.append(r.metrics.implementation_shortfall_bps)
    assert temps == sorted(temps) and len(set(temps)) == 4
    assert shortfalls == sorted(shortfalls)
    assert temps[1] / temps[0] == pytest.approx(10 ** 0.6, rel=1e-9)  # participation^alpha


def test_an_immediate_order_costs_more_than_the_same_quantity_worked_through_the_bar(engine, start):
    sim = engine.simulator(seed=0)
    q = 0.05 * engine.market(SYM).mean_volume[engine.market(SYM).last_closed_index(start)]
    mkt = sim.run(engine.create_execution_plan(SYM, "buy", q, "MARKET", start, 1))
    twap = sim.run(engine.create_execution_plan(SYM, "buy", q, "TWAP", start, 1))
    ratio = mkt.fills[0].participation / twap.fills[0].participation
    assert ratio == pytest.approx(60 / 5)
    assert mkt.fills[0].temporary_impact_bps == pytest.approx(twap.fills[0].temporary_impact_bps * ratio ** 0.6)


def test_same_seed_gives_identical_fills_and_another_seed_different_noise(engine, start):
    plan = engine.create_execution_plan(SYM, "buy", 500.0, "TWAP", start, 6)
    a = engine.simulator(seed=5).run(plan)
    b = engine.simulator(seed=5).run(plan)
    c = engine.simulator(seed=6).run(plan)
    assert a.fills == b.fills
    assert [f.price_quote for f in a.fills] != [f.price_quote for f in c.fills]


def test_a_child_in_a_missing_bar_is_rejected_and_lowers_the_fill_rate(bars, start):
    holes = {s: df.drop(index=start + pd.Timedelta(hours=2)) for s, df in bars.items()}
    engine = create_optimal_execution_engine(holes)
    res = engine.execute(engine.create_execution_plan(SYM, "buy", 60.0, "TWAP", start, 6), engine.simulator())
    assert res.metrics.fill_rate == pytest.approx(5 / 6)
    assert res.fills[2].status.startswith("rejected: no bar at 2022-01-25 12:00:00+00:00")
    assert res.metrics.filled_quantity_base == pytest.approx(50.0)


def test_max_participation_caps_participating_children(bars, start):
    engine = create_optimal_execution_engine(bars, impact=ImpactModelSettings(max_participation=0.01))
    vol = float(bars[SYM].loc[start, "volume"])
    res = engine.execute(engine.create_execution_plan(SYM, "buy", 0.05 * vol, "TWAP", start, 1), engine.simulator())
    assert res.fills[0].quantity_base == pytest.approx(0.01 * vol)
    assert res.fills[0].status == "partial: max_participation"
    assert res.metrics.fill_rate == pytest.approx(0.2)


def test_simulator_refuses_unknown_symbols_and_starts_without_history(engine, bars):
    sim = engine.simulator()
    plan = engine.create_execution_plan(SYM, "buy", 1.0, "TWAP", pd.Timestamp("2022-01-25 10:00", tz="UTC"), 2)
    with pytest.raises(Exception, match=r"unknown symbol\(s\) SYN02/USDT in the simulator's bars"):
        MarketImpactSimulator({"SYN00/USDT": bars["SYN00/USDT"]}).run(plan)
    early = ExecutionPlan(SYM, Side.BUY, 1.0, ExecutionStrategy.TWAP, bars[SYM].index[10], 1, 60,
                          (ChildOrder(bars[SYM].index[10], 1.0, OrderType.PARTICIPATE),), 1.0, 1.0)
    with pytest.raises(DataError, match="not enough history before 2022-01-01 10:00:00"):
        sim.run(early)
