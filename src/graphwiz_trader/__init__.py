"""graphwiz_trader: graph-augmented quantitative trading research and execution.

The flow is one way: data -> graph -> features -> models -> portfolio -> execution -> backtest/trading.
User-facing names live in :mod:`graphwiz_trader.qlib`.
"""

__version__ = "0.1.0"
