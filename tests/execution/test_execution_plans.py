"""Plans: TWAP, VWAP, MARKET, Almgren-Chriss schedules and input errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError
from graphwiz_trader.execution import (
    ExecutionInputError,
    ExecutionStrategy,
    OrderType,
    create_optimal_execution_engine,
)

SYM = "SYN00/USDT"


def test_twap_slices_sum_to_the_parent_and_are_evenly_spaced(engine, start):
    plan = engine.create_execution_plan(SYM, "buy", 123.456, ExecutionStrategy.TWAP, start, horizon=8)
    q = plan.child_quantities_base
    assert len(q) == 8
    assert q.sum() == pytest.approx(123.456, rel=1e-12)
    np.testing.assert_allclose(q, np.full(8, 123.456 / 8), rtol=1e-12)
    times = [c.time_utc for c in plan.children]
    assert times[0] == start
    assert {b - a for a, b in zip(times, times[1:])} == {pd.Timedelta(hours=1)}
    assert {c.order_type for c in plan.children} == {OrderType.PARTICIPATE}
    assert plan.end_utc == start + pd.Timedelta(hours=8)


def test_horizon_given_as_a_duration_equals_the_same_number_of_bars(engine, start):
    a = engine.create_execution_plan(SYM, "sell", 10.0, "TWAP", start, horizon="6h")
    b = engine.create_execution_plan(SYM, "sell", 10.0, "TWAP", start, horizon=6)
    assert a.children == b.children and a.horizon_bars == 6


def _past_profile_by_loop(df: pd.DataFrame, start: pd.Timestamp, days: int = 30) -> list[float]:
    """Independent hour-of-day profile: mean of the last `days` volumes at each hour among closed bars."""
    past = df[df.index + pd.Timedelta(hours=1) <= start]
    means = []
    for h in range(24):
        vols = [v for t, v in zip(past.index, past["volume"]) if t.hour == h]
        last = vols[-days:]
        means.append(sum(last) / len(last))
    avg = sum(means) / 24
    return [m / avg for m in means]


def test_vwap_slices_follow_the_hour_of_day_profile_learned_from_past_bars(engine, bars, start):
    plan = engine.create_execution_plan(SYM, "buy", 50.0, ExecutionStrategy.VWAP, start, horizon=10)
    profile = _past_profile_by_loop(bars[SYM], start)
    hours = [(start + pd.Timedelta(hours=k)).hour for k in range(10)]
    w = [profile[h] for h in hours]
    expected = [50.0 * x / sum(w) for x in w]
    np.testing.assert_allclose(plan.child_quantities_base, expected, rtol=1e-6)
    # the learned profile recovers the planted seasonality 1 + 0.5 cos(2 pi (h - 15) / 24)
    planted = [1 + 0.5 * math.cos(2 * math.pi * (h - 15) / 24) for h in range(24)]
    assert np.corrcoef(profile, planted)[0, 1] > 0.9
    assert plan.details["profile"] == pytest.approx(profile, rel=1e-6)


def test_vwap_plan_does_not_change_when_bars_after_the_start_change(bars, start):
    base = create_optimal_execution_engine(bars)
    altered = {s: df.copy() for s, df in bars.items()}
    after = altered[SYM].index >= start
    altered[SYM].loc[after, "volume"] *= np.linspace(0.1, 10.0, int(after.sum()))
    altered[SYM].loc[after, ["open", "high", "low", "close"]] *= 1.3
    other = create_optimal_execution_engine(altered)
    for strat in ("VWAP", "ALMGREN_CHRISS"):
        a = base.create_execution_plan(SYM, "buy", 70.0, strat, start, 6)
        b = other.create_execution_plan(SYM, "buy", 70.0, strat, start, 6)
        np.testing.assert_array_equal(a.child_quantities_base, b.child_quantities_base)


def test_market_plan_is_one_immediate_child_for_the_whole_quantity(engine, start):
    plan = engine.create_execution_plan(SYM, "sell", 3.5, "market", start, 6)
    assert len(plan.children) == 1
    c = plan.children[0]
    assert (c.time_utc, c.quantity_base, c.order_type) == (start, 3.5, OrderType.MARKET)


def test_almgren_chriss_follows_its_closed_form_trajectory(engine, bars, start):
    lam_bps = 2e-4
    qty = 0.03 * engine.market(SYM).mean_volume[engine.market(SYM).last_closed_index(start)]
    plan = engine.create_execution_plan(SYM, "buy", qty, "ALMGREN_CHRISS", start, 6, risk_aversion_per_bps=lam_bps)
    # independent calibration from the raw bars (trailing 168 bars before the start)
    df = bars[SYM][bars[SYM].index < start]
    r = np.log(df["close"]).diff().iloc[-168:]
    sigma = float(r.std(ddof=1))
    v = float(df["volume"].iloc[-168:].mean())
    sigma_day = sigma * math.sqrt(24)
    eta = 0.142 * sigma_day * (qty / v) ** 0.6 * (1 / 6) ** (0.6 - 1)
    gamma = 0.314 * sigma_day * qty / (v * 24)
    kt2 = lam_bps * 1e4 * sigma**2 / (eta - gamma / 2)
    kappa = math.acosh(1 + kt2 / 2)
    x = [math.sinh(kappa * (6 - k)) / math.sinh(kappa * 6) for k in range(7)]
    expected = [qty * (x[k - 1] - x[k]) for k in range(1, 7)]
    assert plan.details["kappa_per_bar"] == pytest.approx(kappa, rel=1e-9)
    np.testing.assert_allclose(plan.child_quantities_base, expected, rtol=1e-9)
    assert plan.child_quantities_base[0] > plan.child_quantities_base[-1]  # risk aversion front-loads


def test_almgren_chriss_without_risk_aversion_is_twap(engine, start):
    ac = engine.create_execution_plan(SYM, "buy", 40.0, "ALMGREN_CHRISS", start, 5, risk_aversion_per_bps=0.0)
    np.testing.assert_allclose(ac.child_quantities_base, np.full(5, 8.0), rtol=1e-9)


@pytest.mark.parametrize("quantity", [0, 0.0, -5.0, float("nan")])
def test_non_positive_quantity_is_refused_with_a_clear_error(engine, start, quantity):
    with pytest.raises(ExecutionInputError, match=r"quantity must be a positive number of base units, got"):
        engine.create_execution_plan(SYM, "buy", quantity, "TWAP", start, 6)


@pytest.mark.parametrize(("horizon", "message"), [
    (0, "horizon of 0 bars is shorter than one 1h step"),
    (-3, "horizon of -3 bars is shorter than one 1h step"),
    ("30min", "horizon 30min is shorter than one 1h step"),
    ("90min", "horizon 90min is not a whole number of 1h steps"),
])
def test_horizon_shorter_than_one_step_is_refused(engine, start, horizon, message):
    with pytest.raises(ExecutionInputError, match=message):
        engine.create_execution_plan(SYM, "buy", 1.0, "TWAP", start, horizon)


def test_unknown_symbol_is_refused_naming_it_and_the_available_ones(engine, start):
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol\(s\) NOPE/USDT in the execution engine's bars; "
                                                 r"available: SYN00/USDT, SYN01/USDT, SYN02/USDT"):
        engine.create_execution_plan("NOPE/USDT", "buy", 1.0, "TWAP", start, 6)


def test_other_bad_inputs_get_clear_errors(engine, bars, start):
    with pytest.raises(ExecutionInputError, match="unknown side 'hold'; expected 'buy' or 'sell'"):
        engine.create_execution_plan(SYM, "hold", 1.0, "TWAP", start, 6)
    with pytest.raises(ExecutionInputError, match="unknown execution strategy 'ICEBERG'"):
        engine.create_execution_plan(SYM, "buy", 1.0, "ICEBERG", start, 6)
    with pytest.raises(ExecutionInputError, match="is not on the 1h bar grid"):
        engine.create_execution_plan(SYM, "buy", 1.0, "TWAP", start + pd.Timedelta(minutes=30), 6)
    with pytest.raises(DataError, match="not enough history before 2022-01-02 00:00:00"):
        engine.create_execution_plan(SYM, "buy", 1.0, "TWAP", bars[SYM].index[24], 6)
    with pytest.raises(ConfigError, match="the PPO strategy needs a trained model"):
        engine.create_execution_plan(SYM, "buy", 1.0, "PPO", start, 6)


def test_default_engine_runs_offline_on_the_labelled_synthetic_market_with_config_settings():
    from graphwiz_trader.config.settings import ExecutionSettings

    engine = create_optimal_execution_engine(settings=ExecutionSettings(horizon_bars=3, taker_fee_bps=7.5))
    assert engine.data_label.startswith("SYNTHETIC")
    assert engine.impact.max_participation == 0.1
    start = pd.Timestamp("2022-03-01 12:00", tz="UTC")
    plan = engine.create_execution_plan("SYN03/USDT", "buy", 10.0, "TWAP", start)
    assert plan.horizon_bars == 3
    res = engine.execute(plan, engine.simulator())
    assert res.metrics.fees_bps == pytest.approx(7.5)
