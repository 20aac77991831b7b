"""Cost-aware backtesting: decide at bar t's close, fill at bar t+1's open; metrics, benchmarks, report.

Money in quote currency, costs in bps, weights/returns/drawdowns as fractions. The Qlib bridge
(:func:`run_qlib_topk_backtest`) lives in :mod:`graphwiz_trader.backtest.qlib_bridge` and imports Qlib lazily.
"""

from graphwiz_trader.backtest.benchmarks import buy_and_hold_targets, equal_weight_targets, inverse_vol_targets
from graphwiz_trader.backtest.engine import (
    BacktestResult,
    MarketPanel,
    TargetWeightError,
    rebalance_times,
    run_backtest,
)
from graphwiz_trader.backtest.metrics import compute_metrics
from graphwiz_trader.backtest.qlib_bridge import (
    CRYPTO_SETTINGS,
    CSI300_SETTINGS,
    QlibExchangeSettings,
    run_qlib_topk_backtest,
)
from graphwiz_trader.backtest.report import write_report
from graphwiz_trader.backtest.settings import BacktestSettings, CostModel

__all__ = [
    "CRYPTO_SETTINGS",
    "CSI300_SETTINGS",
    "BacktestResult",
    "BacktestSettings",
    "CostModel",
    "MarketPanel",
    "QlibExchangeSettings",
    "TargetWeightError",
    "buy_and_hold_targets",
    "compute_metrics",
    "equal_weight_targets",
    "inverse_vol_targets",
    "rebalance_times",
    "run_backtest",
    "run_qlib_topk_backtest",
    "write_report",
]
