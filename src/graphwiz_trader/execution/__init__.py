"""Order execution: MARKET, TWAP, VWAP, Almgren-Chriss and PPO engines on a market-impact simulator.

Quick use::

    from graphwiz_trader.execution import create_optimal_execution_engine, ExecutionStrategy
    engine = create_optimal_execution_engine(bars)            # bars: {symbol: canonical DataFrame}
    plan = engine.create_execution_plan("BTC/USDT", "buy", 2.5, ExecutionStrategy.TWAP,
                                        start="2023-03-01 10:00Z", horizon=6)
    result = engine.execute(plan, engine.simulator(seed=0))   # or a ccxt exchange connection
    result.metrics.implementation_shortfall_bps
"""

from graphwiz_trader.execution.engine import ExecutionEngine, create_optimal_execution_engine
from graphwiz_trader.execution.env import ExecutionEnvironment
from graphwiz_trader.execution.exchange import ExchangeVenue
from graphwiz_trader.execution.market import MarketArrays, MarketFeatureSettings, build_market_arrays, load_bars_dir
from graphwiz_trader.execution.simulator import ImpactModelSettings, MarketImpactSimulator
from graphwiz_trader.execution.types import (
    ChildOrder,
    ExecutionInputError,
    ExecutionMetrics,
    ExecutionPlan,
    ExecutionResult,
    ExecutionStrategy,
    Fill,
    OrderType,
    Side,
)

__all__ = [
    "ChildOrder", "ExchangeVenue", "ExecutionEngine", "ExecutionEnvironment", "ExecutionInputError",
    "ExecutionMetrics", "ExecutionPlan", "ExecutionResult", "ExecutionStrategy", "Fill", "ImpactModelSettings",
    "MarketArrays", "MarketFeatureSettings", "MarketImpactSimulator", "OrderType", "Side", "build_market_arrays",
    "create_optimal_execution_engine", "load_bars_dir",
]
