"""Validated settings of the optimiser, its constraints and position sizing.

All weights, caps, buffers and bands are fractions of equity (0.25 = 25%). Volatilities and
expected returns are annualised fractions; windows are counted in bars. Every limit has an allowed range
(leverage up to 10, cash buffer up to 0.5, volatility targets up to 5 = 500%/year, ...); a value outside it
fails at load naming its dotted path and the range.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from graphwiz_trader.config.base import StrictModel

Method = Literal["max_sharpe", "min_volatility", "efficient_risk", "hrp"]
METHODS: tuple[str, ...] = ("max_sharpe", "min_volatility", "efficient_risk", "hrp")



class OptimiserSettings(StrictModel):
    """How target weights are computed at one decision time.

    Parameters
    ----------
    method : ``max_sharpe`` (tangency), ``min_volatility``, ``efficient_risk`` (max return at
        ``target_volatility``) or ``hrp`` (hierarchical risk parity; ignores expected returns).
    expected_returns : ``scores`` (model scores mapped to returns, see
        :func:`graphwiz_trader.portfolio.estimates.expected_returns_from_scores`) or ``historical``
        (trailing mean return shrunk toward zero by ``historical_shrinkage``).
    score_ic : information coefficient in ``alpha = IC * sigma * score / rms(score)``; it is the
        shrinkage toward zero of the score mapping (0.05: a one-RMS score forecasts 5% of a 1-sigma move).
    score_horizon_bars : bars over which the score forecasts returns (alpha per bar is divided by sqrt).
    historical_shrinkage : fraction by which the historical mean is pulled toward zero (0 = raw mean).
    cov_window_bars : trailing bars of returns for the Ledoit-Wolf covariance (and historical mean).
    periods_per_year : bars per year used to annualise (8760 for 24/7 hourly bars, 365 for daily crypto).
    target_volatility : annualised volatility target of ``efficient_risk`` for the final portfolio
        (fraction; the invested sleeve targets ``target_volatility / (1 - cash_buffer)``).
    risk_free_rate : annualised risk-free rate (fraction) for ``max_sharpe``.
    all_negative_fallback : what ``max_sharpe``/``efficient_risk`` do when no asset has an expected
        return above the risk-free rate: hold ``cash`` or switch to ``min_volatility``.
    hrp_linkage : scipy linkage method of HRP.
    solver : cvxpy solver name (None: cvxpy's default).
    skip_dpp : pass ``ignore_dpp=True`` to cvxpy (no parameters are re-used, so DPP compilation is
        pure overhead; about 40% faster per solve).
    reuse_max_sharpe_problem : solve ``max_sharpe`` with one compiled, parameterised cvxpy problem per
        structure, reused across decisions (:mod:`graphwiz_trader.portfolio.fast_sharpe`); False builds
        PyPortfolioOpt's ``EfficientFrontier`` at every decision (same weights within 1e-6, ~5x slower).
    """

    method: Method = "max_sharpe"
    expected_returns: Literal["scores", "historical"] = "scores"
    score_ic: float = Field(default=0.05, gt=0, le=1)
    score_horizon_bars: int = Field(default=1, ge=1, le=10_000)
    historical_shrinkage: float = Field(default=0.5, ge=0, le=1)
    cov_window_bars: int = Field(default=720, ge=3, le=1_000_000)
    periods_per_year: float = Field(default=8760.0, gt=0, le=525_600)
    target_volatility: float = Field(default=0.5, gt=0, le=5)
    risk_free_rate: float = Field(default=0.0, ge=-0.5, le=1)
    all_negative_fallback: Literal["cash", "min_volatility"] = "cash"
    hrp_linkage: Literal["single", "complete", "average", "ward"] = "single"
    solver: str | None = "CLARABEL"
    skip_dpp: bool = True
    reuse_max_sharpe_problem: bool = True


class PortfolioConstraints(StrictModel):
    """Constraints on the final weights (fractions of equity).

    The optimiser works on an invested sleeve whose weights sum to 1 (net) and scales it by
    ``1 - cash_buffer``: final weights sum to ``1 - cash_buffer`` (long-only and long-short net),
    except on the logged fallbacks (cash, infeasible caps) where they sum to less.

    Parameters
    ----------
    max_position_weight : cap on ``|w_i|`` of the final weights.
    long_short : allow negative weights (net exposure stays ``1 - cash_buffer``, a 130/30-style book).
    max_gross_leverage : cap on ``sum |w_i|`` of the final weights (long-short only binds).
    cash_buffer : fraction of equity kept in cash.
    no_trade_band : keep the current weights when ``sum |target - current|`` is below this.
    turnover_penalty : L1 turnover cost in annualised-return units added to the objective
        (``min_volatility``/``efficient_risk`` only; use ``no_trade_band`` with ``max_sharpe``/``hrp``).
    community_cap : cap on the summed final weight of each graph community (needs a
        ``{symbol: community_id}`` mapping at call time).
    """

    max_position_weight: float = Field(default=0.25, gt=0, le=1)
    long_short: bool = False
    max_gross_leverage: float = Field(default=1.0, gt=0, le=10)
    cash_buffer: float = Field(default=0.02, ge=0, le=0.5)
    no_trade_band: float = Field(default=0.0, ge=0, le=2)
    turnover_penalty: float = Field(default=0.0, ge=0, le=10)
    community_cap: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _gross_covers_net(self) -> PortfolioConstraints:
        invested = 1.0 - self.cash_buffer
        if self.max_gross_leverage < invested - 1e-12:
            raise ValueError(
                f"max_gross_leverage {self.max_gross_leverage} is below the invested fraction "
                f"1 - cash_buffer = {invested}; no portfolio satisfies both"
            )
        return self


class SizingSettings(StrictModel):
    """Exposure scaling applied to the optimiser's portfolio (one scalar per decision).

    Parameters
    ----------
    mode : ``none``; ``vol_target`` (scale = target_volatility / predicted portfolio vol);
        ``drawdown`` (scale = drawdown_budget / predicted max drawdown over ``drawdown_horizon_bars``,
        predicted as sqrt(pi/2) * sigma * sqrt(T) for driftless Brownian motion; or, when a
        drawdown-probability frame such as :class:`~graphwiz_trader.models.risk.DrawdownRiskModel`'s
        ``p_dd_<N>`` is given, scale = drawdown_probability_budget / weighted probability); ``kelly``
        (scale = kelly_fraction * mu_p / sigma_p^2, fractional Kelly on the portfolio).
    max_leverage : cap on the gross exposure after scaling (fraction of equity; <= 1 for spot); the
        cash buffer still applies, so the scaled gross stays <= ``max_leverage * (1 - cash_buffer)``.
    """

    mode: Literal["none", "vol_target", "drawdown", "kelly"] = "none"
    target_volatility: float = Field(default=0.3, gt=0, le=5)
    drawdown_budget: float = Field(default=0.1, gt=0, le=1)
    drawdown_horizon_bars: int = Field(default=720, ge=1, le=1_000_000)
    drawdown_probability_budget: float = Field(default=0.2, gt=0, le=1)
    kelly_fraction: float = Field(default=0.5, gt=0, le=1)
    max_leverage: float = Field(default=1.0, gt=0, le=10)


def check_method_constraints(settings: OptimiserSettings, constraints: PortfolioConstraints) -> None:
    """Reject combinations the optimiser cannot honour (raises :class:`ConfigError`)."""
    from graphwiz_trader.errors import ConfigError

    if settings.method == "hrp" and constraints.long_short:
        raise ConfigError("portfolio.method 'hrp' is long-only; set long_short: false or choose another method")
    if constraints.turnover_penalty > 0 and settings.method in ("max_sharpe", "hrp"):
        raise ConfigError(
            f"portfolio.turnover_penalty applies to min_volatility/efficient_risk only (max_sharpe's "
            f"homogenising transform and HRP cannot carry it); use no_trade_band with {settings.method}"
        )
