"""Portfolio construction: PyPortfolioOpt optimisers under caps, walk-forward targets, position sizing.

Weights are fractions of equity; expected returns and volatilities are annualised fractions.
"""

from graphwiz_trader.portfolio.estimates import (
    expected_returns_from_scores,
    historical_expected_returns,
    ledoit_wolf_covariance,
)
from graphwiz_trader.portfolio.optimiser import OptimisationResult, optimise_weights
from graphwiz_trader.portfolio.rolling import RollingResult, per_bar_returns, rolling_optimise
from graphwiz_trader.portfolio.settings import OptimiserSettings, PortfolioConstraints, SizingSettings
from graphwiz_trader.portfolio.sizing import (
    drawdown_probability_scale,
    drawdown_risk_scale,
    expected_max_drawdown,
    exposure_scale,
    fractional_kelly_weights,
    hedge_ratio,
    kelly_scale,
    portfolio_hedge_weight,
    vol_target_scale,
)

__all__ = [
    "OptimisationResult",
    "OptimiserSettings",
    "PortfolioConstraints",
    "RollingResult",
    "SizingSettings",
    "drawdown_probability_scale",
    "drawdown_risk_scale",
    "expected_max_drawdown",
    "expected_returns_from_scores",
    "exposure_scale",
    "fractional_kelly_weights",
    "hedge_ratio",
    "historical_expected_returns",
    "kelly_scale",
    "ledoit_wolf_covariance",
    "optimise_weights",
    "per_bar_returns",
    "portfolio_hedge_weight",
    "rolling_optimise",
    "vol_target_scale",
]
