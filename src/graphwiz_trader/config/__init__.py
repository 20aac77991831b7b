"""Configuration: ``config/*.yaml`` with ``${ENV}`` substitution, validated into frozen models."""

from graphwiz_trader.config.loader import load_config, substitute_env
from graphwiz_trader.config.settings import (
    ExchangeSettings,
    ExecutionSettings,
    GraphSettings,
    QlibSettings,
    RiskSettings,
    StrategySettings,
    TradingConfig,
)

__all__ = [
    "ExchangeSettings",
    "ExecutionSettings",
    "GraphSettings",
    "QlibSettings",
    "RiskSettings",
    "StrategySettings",
    "TradingConfig",
    "load_config",
    "substitute_env",
]
