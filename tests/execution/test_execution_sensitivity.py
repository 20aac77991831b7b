"""The eta x gamma sensitivity table: a full grid, paired cells, and the monotonicity theory predicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import ConfigError
from graphwiz_trader.execution import ExecutionStrategy
from graphwiz_trader.execution.evaluation import run_orders, sample_parent_orders
from graphwiz_trader.execution.sensitivity import format_sensitivity, impact_sensitivity, spread_subset

STRATEGIES = [ExecutionStrategy.MARKET, ExecutionStrategy.TWAP, ExecutionStrategy.VWAP, ExecutionStrategy.ALMGREN_CHRISS]


@pytest.fixture(scope="module")
def orders(engine):
    return sample_parent_orders(engine.markets, engine.symbols, pd.Timestamp("2022-01-20", tz="UTC"), None, 60, 4,
                                (0.01, 0.2), seed=1)


@pytest.fixture(scope="module")
def sens(engine, orders):
    return impact_sensitivity(engine, orders, STRATEGIES, 4, sim_seed=3, n_orders=40)


def _grid(sens, strategy: str) -> np.ndarray:
    """Mean IS as a (eta multiplier x gamma multiplier) matrix."""
    m = sens["multipliers"]
    out = np.full((len(m), len(m)), np.nan)
    for c in sens["cells"]:
        out[m.index(c["eta_multiplier"]), m.index(c["gamma_multiplier"])] = c["mean_shortfall_bps"][strategy]
    return out


def test_the_table_covers_every_pair_of_half_one_and_two_times_eta_and_gamma(sens, engine):
    assert sens["multipliers"] == [0.5, 1.0, 2.0] and len(sens["cells"]) == 9 and sens["n_orders"] == 40
    pairs = {(c["eta_multiplier"], c["gamma_multiplier"]) for c in sens["cells"]}
    assert pairs == {(a, b) for a in (0.5, 1.0, 2.0) for b in (0.5, 1.0, 2.0)}
    cell = next(c for c in sens["cells"] if c["eta_multiplier"] == 2.0 and c["gamma_multiplier"] == 0.5)
    assert cell["eta"] == pytest.approx(2 * engine.impact.eta) and cell["gamma"] == pytest.approx(0.5 * engine.impact.gamma)
    assert "parametric" in sens["impact_model"] and "not fitted" in sens["impact_model"]


def test_market_shortfall_rises_with_eta_linearly_and_ignores_gamma(sens):
    g = _grid(sens, "MARKET")
    assert np.all(np.diff(g, axis=0) > 0)  # more temporary impact, higher cost, at every gamma
    np.testing.assert_allclose(g, g[:, [0]].repeat(3, axis=1), rtol=1e-12)  # one child: no permanent impact
    # IS is linear in eta: IS(2 eta) - IS(eta) = 2 (IS(eta) - IS(eta / 2))
    np.testing.assert_allclose(g[2] - g[1], 2 * (g[1] - g[0]), rtol=1e-9)


def test_twap_shortfall_rises_with_gamma_and_with_eta(sens):
    g = _grid(sens, "TWAP")
    assert np.all(np.diff(g, axis=1) > 0) and np.all(np.diff(g, axis=0) > 0)


def test_the_one_times_cell_equals_the_evaluation_on_the_same_orders(sens, engine, orders):
    sub = spread_subset(orders, 40)
    direct = run_orders(engine, engine.simulator(seed=3), sub, STRATEGIES, 4, progress=False)
    means = direct.groupby("strategy")["shortfall_bps"].mean()
    cell = next(c for c in sens["cells"] if c["eta_multiplier"] == 1.0 and c["gamma_multiplier"] == 1.0)
    for s in STRATEGIES:
        assert cell["mean_shortfall_bps"][s.value] == pytest.approx(float(means[s.value]), rel=1e-12)


def test_the_subset_is_evenly_spread_and_deterministic(orders):
    sub = spread_subset(orders, 4)
    assert sub == [orders[0], orders[20], orders[39], orders[59]] and spread_subset(orders, 4) == sub
    assert spread_subset(orders, 500) == orders


def test_the_printed_table_has_one_row_per_cell(sens):
    text = format_sensitivity(sens)
    assert text.startswith("sensitivity of mean IS (bps) to the impact constants: parametric")
    rows = [ln for ln in text.splitlines()[3:]]
    assert len(rows) == 9 and rows[0].split()[:2] == ["0.5", "0.5"] and "ALMGREN_CHRISS" in text.splitlines()[2]


def test_negative_multipliers_are_refused(engine, orders):
    with pytest.raises(ConfigError, match="multipliers must be finite and >= 0"):
        impact_sensitivity(engine, orders, STRATEGIES, 4, multipliers=(1.0, -1.0))
