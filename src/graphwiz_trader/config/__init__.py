"""Configuration: ``config/*.yaml`` with ``${ENV}`` substitution, validated into frozen models."""

from graphwiz_trader.config.loader import load_config, substitute_env
from graphwiz_trader.config.settings import (
    ExchangeSettings,
    ExecutionSettings,
    GraphSettings,
    QlibSettings,
    RiskSettings,
    StrategySettings,
    TradingSettings,
)

__all__ = [
    "ExchangeSettings",
    "ExecutionSettings",
    "GraphSettings",
    "QlibSettings",
    "RiskSettings",
    "StrategySettings",
    "TradingSettings",
    "load_config",
    "substitute_env",
]
