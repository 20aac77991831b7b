"""Position sizing: exposure scales (vol target, drawdown risk, fractional Kelly) and hedge ratios.

Scales multiply a portfolio's weights; every scale is floored at 0 and capped so that the gross
exposure ``sum |w_i| * scale`` stays within ``max_leverage`` (fraction of equity). Volatilities and
expected returns are annualised fractions; the covariance is annualised.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graphwiz_trader.portfolio.settings import SizingSettings

SQRT_HALF_PI = math.sqrt(math.pi / 2.0)


def _cap(scale: float, weights: pd.Series, max_leverage: float) -> float:
    gross = float(weights.abs().sum())
    if not np.isfinite(scale) or scale <= 0 or gross <= 0:
        return 0.0
    return float(min(scale, max_leverage / gross))


def portfolio_volatility(weights: pd.Series, covariance: pd.DataFrame) -> float:
    """Annualised volatility ``sqrt(w' S w)`` over the symbols of ``weights`` (missing in S count as 0)."""
    w = weights.reindex(covariance.index).fillna(0.0).to_numpy(dtype="float64")
    return float(np.sqrt(max(w @ covariance.to_numpy() @ w, 0.0)))


def vol_target_scale(weights: pd.Series, covariance: pd.DataFrame, target_volatility: float,
                     max_leverage: float = 1.0) -> float:
    """Scale so the predicted annualised volatility equals ``target_volatility`` (capped by leverage)."""
    vol = portfolio_volatility(weights, covariance)
    return _cap(target_volatility / vol if vol > 0 else 0.0, weights, max_leverage)


def expected_max_drawdown(volatility: float, horizon_bars: int, periods_per_year: float) -> float:
    """Expected maximum drawdown of a driftless Brownian motion over ``horizon_bars``.

    ``E[MDD] = sqrt(pi / 2) * sigma * sqrt(T)`` (Magdon-Ismail et al. 2004, zero drift), with
    ``sigma`` annualised and ``T = horizon_bars / periods_per_year`` years. Returns a fraction.
    """
    return SQRT_HALF_PI * volatility * math.sqrt(horizon_bars / periods_per_year)


def drawdown_risk_scale(predicted_drawdown: float, drawdown_budget: float, weights: pd.Series,
                        max_leverage: float = 1.0) -> float:
    """Scale exposure so the predicted drawdown fits ``drawdown_budget`` (both fractions)."""
    if predicted_drawdown <= 0:
        return _cap(max_leverage / max(float(weights.abs().sum()), 1e-300), weights, max_leverage)
    return _cap(drawdown_budget / predicted_drawdown, weights, max_leverage)


def drawdown_probability_scale(weights: pd.Series, probability: pd.Series, probability_budget: float,
                               max_leverage: float = 1.0) -> float:
    """Scale exposure by a model's predicted drawdown probability (e.g. ``p_dd_24`` of
    :class:`~graphwiz_trader.models.risk.DrawdownRiskModel`).

    The portfolio's probability is the gross-weighted mean ``sum |w_i| p_i / sum |w_i|`` (missing
    p_i count as 1, the cautious choice); scale = ``probability_budget / p`` capped by leverage.
    """
    a = weights.abs()
    gross = float(a.sum())
    if gross <= 0:
        return 0.0
    p = float((a * probability.reindex(weights.index).fillna(1.0).clip(0.0, 1.0)).sum() / gross)
    if p <= 0:
        return _cap(max_leverage / gross, weights, max_leverage)
    return _cap(probability_budget / p, weights, max_leverage)


def kelly_scale(weights: pd.Series, expected_returns: pd.Series, covariance: pd.DataFrame, fraction: float,
                max_leverage: float = 1.0, risk_free_rate: float = 0.0) -> float:
    """Fractional Kelly leverage of a fixed portfolio: ``fraction * (w'mu - rf) / (w' S w)``, capped."""
    w = weights.reindex(covariance.index).fillna(0.0)
    mu = float(w @ expected_returns.reindex(covariance.index).fillna(0.0)) - risk_free_rate
    var = portfolio_volatility(w, covariance) ** 2
    return _cap(fraction * mu / var if var > 0 else 0.0, weights, max_leverage)


def fractional_kelly_weights(expected_returns: pd.Series, covariance: pd.DataFrame, fraction: float = 0.5,
                             max_position_weight: float = 1.0, max_gross_leverage: float = 1.0,
                             long_only: bool = True) -> pd.Series:
    """Per-asset fractional Kelly weights ``fraction * S^-1 mu`` with caps.

    Negative weights are set to 0 when ``long_only``; each weight is clipped to
    ``+-max_position_weight``; then the whole vector is scaled down (never up) so that
    ``sum |w_i| <= max_gross_leverage``. Uses a least-squares solve, so a singular ``S`` is tolerated.
    """
    mu = expected_returns.reindex(covariance.index).fillna(0.0).to_numpy(dtype="float64")
    raw = np.linalg.lstsq(covariance.to_numpy(dtype="float64"), mu, rcond=None)[0] * fraction
    if long_only:
        raw = np.clip(raw, 0.0, None)
    raw = np.clip(raw, -max_position_weight, max_position_weight)
    gross = np.abs(raw).sum()
    if gross > max_gross_leverage:
        raw = raw * (max_gross_leverage / gross)
    return pd.Series(raw, index=covariance.index, name="kelly_weight")


def exposure_scale(weights: pd.Series, covariance: pd.DataFrame | None, expected_returns: pd.Series | None,
                   sizing: SizingSettings, periods_per_year: float,
                   drawdown_probability: pd.Series | None = None) -> float:
    """The scale ``sizing.mode`` asks for (1.0 for ``none``; 0.0 when the inputs it needs are missing).
    In ``drawdown`` mode a ``drawdown_probability`` (symbol -> P(drawdown), known at t) replaces the
    volatility-based drawdown prediction."""
    if sizing.mode == "none":
        return 1.0
    if sizing.mode == "drawdown" and drawdown_probability is not None:
        return drawdown_probability_scale(weights, drawdown_probability, sizing.drawdown_probability_budget,
                                          sizing.max_leverage)
    if covariance is None:
        return 0.0
    if sizing.mode == "vol_target":
        return vol_target_scale(weights, covariance, sizing.target_volatility, sizing.max_leverage)
    if sizing.mode == "drawdown":
        dd = expected_max_drawdown(portfolio_volatility(weights, covariance), sizing.drawdown_horizon_bars,
                                   periods_per_year)
        return drawdown_risk_scale(dd, sizing.drawdown_budget, weights, sizing.max_leverage)
    if expected_returns is None:
        return 0.0
    return kelly_scale(weights, expected_returns, covariance, sizing.kelly_fraction, sizing.max_leverage)


def hedge_ratio(asset_returns: pd.Series, hedge_returns: pd.Series, window: int) -> pd.Series:
    """Rolling OLS hedge ratio ``beta_t = cov(r_a, r_h) / var(r_h)`` over the ``window`` bars ending at t.

    Point-in-time: the value at t uses returns at bars <= t only. Holding ``-beta_t`` units of hedge
    notional per unit of asset notional removes the asset's linear exposure to the hedge instrument.
    """
    df = pd.concat([asset_returns.rename("a"), hedge_returns.rename("h")], axis=1)
    cov = df["a"].rolling(window, min_periods=window).cov(df["h"])
    var = df["h"].rolling(window, min_periods=window).var()
    return (cov / var.where(var > 0)).rename("hedge_ratio")


def portfolio_hedge_weight(weights: pd.Series, betas: pd.Series) -> float:
    """Weight in the hedge instrument that neutralises the portfolio's beta: ``-sum_i w_i beta_i``."""
    return -float((weights * betas.reindex(weights.index).fillna(0.0)).sum())
