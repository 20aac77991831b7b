"""Trading costs of a backtest's rebalance orders when each order is worked as a TWAP by the execution engine.

What is simulated (and what is not):

1. The backtest (:func:`graphwiz_trader.backtest.engine.run_backtest`) is run WITHOUT price costs (fees,
   spread, slippage and impact set to 0; the minimum order size kept), so every rebalance order is filled
   at the open of the bar after its decision: the order's arrival price.
2. Each of those orders (a parent: symbol, side, units) is planned by
   :class:`~graphwiz_trader.execution.engine.ExecutionEngine` as a TWAP of ``horizon_bars`` equal children,
   one per bar from the fill bar on, calibrated on bars closed by the decision, and executed on
   :class:`~graphwiz_trader.execution.simulator.MarketImpactSimulator` (each child at its bar's typical price
   plus the bar-measured half-spread, temporary and permanent impact; impact constants from equity
   literature, not fitted to crypto, see :data:`~graphwiz_trader.execution.simulator.IMPACT_MODEL`).
3. Each child costs ``side * q * (fill price - arrival price) + fee_bps * q * fill price`` (quote currency):
   the shortfall against the price the backtest filled at, which includes the price drift over the TWAP
   horizon (a signal that decays within it shows up here), plus the fee. It is charged in the child's bar
   as a fraction of the strategy's equity at the previous close:
   ``r_net[t] = r_backtest[t] - cost[t] / equity[t-1]``, and net equity compounds ``r_net``.

Not simulated: holdings still follow the backtest's open fills (the TWAP's partial position during its
horizon is charged through the shortfall, not re-marked bar by bar), and costs are charged as a return
drag, so the next orders are sized on the equity before costs (exact for proportional costs, a second-order
difference for the square-root impact). Children that find no bar or no volume are not filled; they are
counted in ``children_unfilled`` and cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.engine import BacktestResult
from graphwiz_trader.backtest.metrics import compute_metrics
from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.errors import DataError
from graphwiz_trader.execution.engine import ExecutionEngine

COST_METHOD = ("each rebalance order worked as a TWAP by the execution engine on the market-impact simulator "
               "(shortfall vs the backtest's open fill + fee), charged as a return drag")


def price_free_costs(costs: CostModel) -> CostModel:
    """``costs`` without fees, spread, slippage or impact (the minimum order size kept): the backtest half of
    :func:`twap_costed`, whose price costs come from the execution simulator instead."""
    return costs.model_copy(update={"taker_fee_bps": 0.0, "maker_fee_bps": 0.0, "half_spread_bps": 0.0,
                                    "slippage_bps": 0.0, "impact_coef_bps": 0.0})


@dataclass(frozen=True)
class TwapCostedRun:
    """A backtest's returns net of TWAP execution costs.

    Attributes
    ----------
    name : the backtest's name.
    equity : net equity per bar (quote currency), compounding ``returns``.
    returns : net per-bar returns (fractions).
    costs : execution cost per bar in quote currency of the net book: the drag ``cost[t] / equity[t-1]`` of the
        children filled in the bar (shortfall + fee, sized on the backtest's equity) times the net equity at
        the previous close, so ``metrics['annual_cost_drag']`` is the drag per year.
    parents, children, children_unfilled : orders worked, their children, and children without a fill.
    shortfall_bps : notional-weighted mean shortfall of the children vs their parent's arrival price (bps,
        positive = cost), fees excluded.
    fee_bps : fee charged on every child's notional (bps).
    metrics : :func:`~graphwiz_trader.backtest.metrics.compute_metrics` of the net equity (Sharpe with its
        95% circular block-bootstrap interval).
    """

    name: str
    equity: pd.Series
    returns: pd.Series
    costs: pd.Series
    parents: int
    children: int
    children_unfilled: int
    shortfall_bps: float
    fee_bps: float
    metrics: dict[str, float] = field(default_factory=dict)


def twap_costed(result: BacktestResult, engine: ExecutionEngine, horizon_bars: int, fee_bps: float,
                seed: int = 0) -> TwapCostedRun:
    """Charge every fill of ``result`` the cost of working it as a TWAP (see the module docstring).

    Parameters
    ----------
    result : a backtest run with zero price costs (:func:`price_free_costs`); its fills are the parents.
    engine : execution engine over the same bars (plans are calibrated on bars closed by the decision).
    horizon_bars : bars the TWAP spreads each parent over (>= 1), starting at the backtest's fill bar.
    fee_bps : fee on each child's notional (bps).
    seed : seed of the simulator's impact noise.

    Raises
    ------
    DataError
        when ``result`` already charged price costs (they would be counted twice), or a parent lacks the
        history the engine's calibrations need.
    """
    if horizon_bars < 1:
        raise DataError(f"TWAP horizon must be >= 1 bar, got {horizon_bars}")
    paid = result.costs[["fees", "spread_slippage", "impact"]].to_numpy().sum()
    if paid > 0:
        raise DataError(f"{result.name}: the backtest already charged {paid:.6g} of price costs; run it with "
                        "price_free_costs(...) so the TWAP costs are not counted twice")
    sim = engine.simulator(seed)
    index = result.equity.index
    times_ns = index.asi8
    cost = np.zeros(len(index))
    trades = result.trades()
    children = unfilled = 0
    shortfall_quote = notional = 0.0
    for row in trades.itertuples(index=False):
        plan = engine.create_execution_plan(row.symbol, row.side, abs(float(row.units)), "twap", row.datetime,
                                            horizon_bars)
        done = sim.run(plan)
        arrival = done.metrics.arrival_price_quote
        sign = plan.side.sign
        for f in done.fills:
            children += 1
            if f.quantity_base <= 0 or not np.isfinite(f.price_quote):
                unfilled += 1
                continue
            k = min(int(np.searchsorted(times_ns, pd.Timestamp(f.time_utc).value)), len(index) - 1)
            if times_ns[k] != pd.Timestamp(f.time_utc).value:  # after the backtest's last bar: charged there
                k = len(index) - 1
            slip = sign * f.quantity_base * (f.price_quote - arrival)
            cost[k] += slip + fee_bps * 1e-4 * f.quantity_base * f.price_quote
            shortfall_quote += slip
            notional += f.quantity_base * f.price_quote
    prev = np.concatenate([[result.initial_capital], result.equity.to_numpy()[:-1]])
    gross = result.equity.to_numpy() / prev - 1.0
    drag = cost / prev
    net = gross - drag
    equity = result.initial_capital * np.cumprod(1.0 + net)
    eq = pd.Series(equity, index=index, name="equity")
    prev_net = np.concatenate([[result.initial_capital], equity[:-1]])
    costs = pd.Series(drag * prev_net, index=index, name="execution_cost")
    metrics = compute_metrics(eq, result.periods_per_year, result.initial_capital,
                              gross_exposure=result.gross_exposure, turnover=result.turnover, costs=costs)
    return TwapCostedRun(result.name, eq, pd.Series(net, index=index, name="return"), costs, len(trades), children,
                         unfilled, 1e4 * shortfall_quote / notional if notional > 0 else float("nan"), fee_bps,
                         metrics)
