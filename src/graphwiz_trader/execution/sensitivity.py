"""How the execution comparison depends on the impact constants nobody fitted to crypto.

The simulator's impact model is parametric (:data:`~graphwiz_trader.execution.simulator.IMPACT_MODEL`):
``eta`` (temporary) and ``gamma`` (permanent) are equity-literature values. :func:`impact_sensitivity`
re-runs a fixed subset of the evaluation's parent orders on a grid of multiples of both (default 0.5x, 1x,
2x each: 3 x 3 cells) and reports each engine's mean implementation shortfall (bps) per cell.

In every cell the simulator *and* the Almgren-Chriss plan use the scaled constants (AC re-plans as if it
knew them); MARKET, TWAP and VWAP plans do not depend on them; a PPO policy keeps what it learned under the
constants it was trained with. Every cell uses the same orders and the same impact noise (the simulator
seed), so differences between cells are paired, not sampling noise.

What theory says, and the tests check: MARKET trades once, so it pays no permanent impact and its shortfall
is linear in ``eta`` and independent of ``gamma``; schedules with more than one child (TWAP, VWAP) pay
permanent impact on later children, so theirs rises with ``gamma`` as well.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from graphwiz_trader.errors import ConfigError
from graphwiz_trader.execution.engine import ExecutionEngine
from graphwiz_trader.execution.evaluation import ParentOrder, run_orders
from graphwiz_trader.execution.simulator import IMPACT_MODEL
from graphwiz_trader.execution.types import ExecutionStrategy

DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.5, 1.0, 2.0)
DEFAULT_SENSITIVITY_ORDERS = 300


def spread_subset(orders: list[ParentOrder], n: int) -> list[ParentOrder]:
    """``n`` orders evenly spaced through ``orders`` (all when ``n >= len(orders)``); deterministic."""
    if n >= len(orders):
        return list(orders)
    idx = np.unique(np.linspace(0, len(orders) - 1, n).round().astype(int))
    return [orders[int(i)] for i in idx]


def impact_sensitivity(engine: ExecutionEngine, orders: list[ParentOrder], strategies: list[ExecutionStrategy],
                       horizon_bars: int, *, sim_seed: int = 0, n_orders: int = DEFAULT_SENSITIVITY_ORDERS,
                       multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS) -> dict[str, Any]:
    """Mean implementation shortfall (bps) per engine on a grid of ``eta`` x ``gamma`` multiples.

    Parameters
    ----------
    engine
        the evaluation's engine; its impact model is the 1x point.
    orders
        the evaluation's held-out parent orders; :func:`spread_subset` picks ``n_orders`` of them.
    strategies
        engines to run (PPO needs ``engine.ppo_policy``).
    sim_seed
        simulator seed shared by every cell (common random numbers).
    multipliers
        factors applied to ``eta`` and to ``gamma`` (all pairs).

    Returns
    -------
    dict
        ``impact_model``, ``base`` (eta, gamma), ``multipliers``, ``n_orders``, ``sim_seed``, ``what_varies`` and
        ``cells``: one per (eta multiplier, gamma multiplier) with the constants used and
        ``mean_shortfall_bps`` per strategy.
    """
    if not multipliers or any(not np.isfinite(m) or m < 0 for m in multipliers):
        raise ConfigError(f"sensitivity multipliers must be finite and >= 0, got {list(multipliers)}")
    subset = spread_subset(orders, n_orders)
    base = engine.impact
    cells = []
    for me in multipliers:
        for mg in multipliers:
            impact = replace(base, eta=base.eta * me, gamma=base.gamma * mg)
            scaled = ExecutionEngine(engine.markets, timeframe=engine.timeframe, impact=impact, features=engine.features,
                                     risk_aversion_per_bps=engine.risk_aversion_per_bps, ppo_policy=engine.ppo_policy,
                                     default_horizon_bars=engine.default_horizon_bars, data_label=engine.data_label)
            res = run_orders(scaled, scaled.simulator(seed=sim_seed), subset, strategies, horizon_bars, progress=False)
            means = res.groupby("strategy")["shortfall_bps"].mean()
            cells.append({"eta_multiplier": me, "gamma_multiplier": mg, "eta": impact.eta, "gamma": impact.gamma,
                          "mean_shortfall_bps": {s.value: float(means[s.value]) for s in strategies}})
    return {
        "impact_model": IMPACT_MODEL,
        "base": {"eta": base.eta, "gamma": base.gamma, "alpha": base.alpha},
        "multipliers": list(multipliers), "n_orders": len(subset), "sim_seed": sim_seed,
        "strategies": [s.value for s in strategies],
        "what_varies": "eta and gamma of the simulator and of the Almgren-Chriss plan; PPO keeps its trained policy; "
                       "same orders and impact noise in every cell",
        "cells": cells,
    }


def format_sensitivity(sens: dict[str, Any]) -> str:
    """Plain-text table of :func:`impact_sensitivity` (mean IS in bps per engine and cell)."""
    names = sens["strategies"]
    width = {n: max(9, len(n) + 2) for n in names}
    lines = [f"sensitivity of mean IS (bps) to the impact constants: {sens['impact_model']}",
             f"{sens['n_orders']} of the held-out orders (evenly spaced), simulator seed {sens['sim_seed']}; "
             f"{sens['what_varies']}",
             f"{'eta x':>6}{'gamma x':>9}{'eta':>8}{'gamma':>8}" + "".join(f"{n:>{width[n]}}" for n in names)]
    for c in sens["cells"]:
        lines.append(f"{c['eta_multiplier']:>6g}{c['gamma_multiplier']:>9g}{c['eta']:>8.3f}{c['gamma']:>8.3f}"
                     + "".join(f"{c['mean_shortfall_bps'][n]:>{width[n]}.2f}" for n in names))
    return "\n".join(lines)
