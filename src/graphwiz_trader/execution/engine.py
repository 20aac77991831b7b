"""The execution engine: turns a parent order into child orders and works them on a venue.

Strategies (see :class:`ExecutionStrategy`); every schedule uses only bars closed by ``start``:

MARKET          one immediate child for the whole quantity at ``start``.
TWAP            ``horizon`` equal children, one per bar, evenly spaced.
VWAP            children proportional to the hour-of-day volume profile known at ``start``
                (``MarketArrays.profile`` row of the last closed bar: mean volume of each hour over
                the previous ``profile_days`` days).
ALMGREN_CHRISS  the closed-form discrete trajectory x_k = X sinh(kappa (N - k)) / sinh(kappa N) with the
                simulator's impact linearised at the TWAP rate:
                eta = eta_sim * sigma_day * (X / V)^alpha * (1 / N)^(alpha - 1)  (fraction of price per
                fraction of X per bar), gamma = gamma_sim * sigma_day * X / V_day, and risk aversion
                ``risk_aversion_per_bps`` (objective E[IS bps] + lambda Var[IS bps]) = 1e4 lambda per
                fraction of notional. sigma, V = trailing per-bar volatility and mean bar volume at start.
PPO             an adaptive plan: a trained :class:`PPOExecutionPolicy` decides each bar's fraction of the
                remainder from the observation known at that bar's open; ``children`` is the open-loop
                preview made with the market state at ``start``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import ExecutionSettings
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError
from graphwiz_trader.execution.env import DEFAULT_RISK_AVERSION_PER_BPS
from graphwiz_trader.execution.exchange import ExchangeVenue
from graphwiz_trader.execution.market import (
    MarketArrays,
    MarketFeatureSettings,
    build_market_arrays,
    observation,
    size_feature,
)
from graphwiz_trader.execution.schedules import almgren_chriss_fractions, almgren_chriss_kappa, twap_fractions, vwap_fractions
from graphwiz_trader.execution.simulator import ImpactModelSettings, MarketImpactSimulator
from graphwiz_trader.execution.types import (
    ChildOrder,
    ExecutionInputError,
    ExecutionPlan,
    ExecutionResult,
    ExecutionStrategy,
    OrderType,
    Side,
    horizon_to_bars,
)

log = logging.getLogger(__name__)


class ExecutionEngine:
    """Plans and executes parent orders (see the module docstring).

    Parameters
    ----------
    markets
        ``{symbol: bars DataFrame}`` or ``{symbol: MarketArrays}``: the history plans are calibrated on.
    impact
        Impact model shared with the simulator (Almgren-Chriss linearises it).
    ppo_policy
        A loaded :class:`PPOExecutionPolicy` (needed for ``PPO`` plans).
    default_horizon_bars
        Horizon used when ``create_execution_plan`` gets ``horizon=None``.
    """

    def __init__(self, markets: dict[str, pd.DataFrame] | dict[str, MarketArrays], *, timeframe: str = "1h",
                 impact: ImpactModelSettings | None = None, features: MarketFeatureSettings | None = None,
                 risk_aversion_per_bps: float = DEFAULT_RISK_AVERSION_PER_BPS, ppo_policy: Any = None,
                 default_horizon_bars: int = 6, data_label: str | None = None) -> None:
        if not markets:
            raise DataError("the execution engine needs bars for at least one symbol")
        self.timeframe = timeframe
        self.features = features or MarketFeatureSettings()
        self.impact = impact or ImpactModelSettings()
        self.risk_aversion_per_bps = float(risk_aversion_per_bps)
        if self.risk_aversion_per_bps < 0:
            raise ExecutionInputError("risk_aversion_per_bps must be >= 0")
        self.ppo_policy = ppo_policy
        self.default_horizon_bars = int(default_horizon_bars)
        self.data_label = data_label
        self._markets: dict[str, MarketArrays] = {
            s: m if isinstance(m, MarketArrays) else build_market_arrays(m, s, timeframe, self.features)
            for s, m in markets.items()
        }

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    @property
    def markets(self) -> dict[str, MarketArrays]:
        return dict(self._markets)

    def market(self, symbol: str) -> MarketArrays:
        try:
            return self._markets[symbol]
        except KeyError:
            raise UnknownSymbolError([symbol], where="the execution engine's bars", available=self.symbols) from None

    def simulator(self, seed: int = 0) -> MarketImpactSimulator:
        """A simulator replaying this engine's bars with its impact model."""
        return MarketImpactSimulator(self._markets, impact=self.impact, seed=seed, label=self.data_label)

    # ----------------------------------------------------------------------------------------------
    def create_execution_plan(self, symbol: str, side: str | Side, quantity: float,
                              strategy: str | ExecutionStrategy, start: pd.Timestamp | str,
                              horizon: int | str | pd.Timedelta | None = None, *,
                              risk_aversion_per_bps: float | None = None) -> ExecutionPlan:
        """Plan the children of a parent order.

        Parameters
        ----------
        symbol
            ``BASE/QUOTE``; must be in the engine's bars.
        side
            ``buy`` or ``sell``.
        quantity
            Parent quantity in base units (> 0).
        strategy
            An :class:`ExecutionStrategy` or its name.
        start
            UTC time on the bar grid (naive times are read as UTC); only bars closed by then are used.
        horizon
            Bars (int) or a duration (``"6h"``), at least one bar; ``None`` = ``default_horizon_bars``.

        Raises
        ------
        ExecutionInputError
            non-positive/non-finite quantity, unknown side/strategy, horizon shorter than one step, start off
            the bar grid.
        UnknownSymbolError
            symbol not in the engine's bars.
        DataError
            not enough history before ``start`` for the calibrations.
        ConfigError
            ``PPO`` without a loaded policy.
        """
        if isinstance(quantity, bool) or not isinstance(quantity, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(quantity)) or float(quantity) <= 0:
            raise ExecutionInputError(f"quantity must be a positive number of base units, got {quantity!r}")
        qty = float(quantity)
        side_ = Side.parse(side)
        strat = ExecutionStrategy.parse(strategy)
        m = self.market(symbol)
        n = horizon_to_bars(self.default_horizon_bars if horizon is None else horizon, m.bar_minutes, self.timeframe)
        t0 = pd.Timestamp(start)
        t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
        if t0.value % m.bar_ns:
            raise ExecutionInputError(f"start {t0} is not on the {self.timeframe} bar grid; "
                                      f"use e.g. {t0.ceil(pd.Timedelta(minutes=m.bar_minutes))}")
        j = m.last_closed_index(t0)
        if j < 0 or not m.valid[j]:
            first = np.flatnonzero(m.valid)
            hint = f"; the first usable start is {m.time(int(first[0]) + 1)}" if len(first) else ""
            raise DataError(f"{symbol}: not enough history before {t0} to calibrate volatility, volume, spread and "
                            f"the volume profile{hint}")
        bar = pd.Timedelta(minutes=m.bar_minutes)
        times = [t0 + k * bar for k in range(n)]
        mean_v = float(m.mean_volume[j])
        details: dict[str, Any] = {"volume_fraction": qty / mean_v, "calibrated_at_utc": m.time(j) + bar}
        adaptive = False
        otype = OrderType.PARTICIPATE
        if strat is ExecutionStrategy.MARKET:
            fr = np.array([1.0])
            times = times[:1]
            otype = OrderType.MARKET
        elif strat is ExecutionStrategy.TWAP:
            fr = twap_fractions(n)
        elif strat is ExecutionStrategy.VWAP:
            profile = m.profile[j].astype(float)
            hours = np.array([t.hour for t in times])
            fr = vwap_fractions(profile, hours)
            details["profile"] = profile.tolist()
        elif strat is ExecutionStrategy.ALMGREN_CHRISS:
            lam = self.risk_aversion_per_bps if risk_aversion_per_bps is None else float(risk_aversion_per_bps)
            kappa, eta_lin, gamma_lin = self.almgren_chriss_parameters(m, j, qty, n, lam)
            fr = almgren_chriss_fractions(n, kappa)
            details.update(kappa_per_bar=kappa, eta_linear=eta_lin, gamma_linear=gamma_lin,
                           risk_aversion_per_bps=lam)
        else:  # PPO
            if self.ppo_policy is None:
                raise ConfigError("the PPO strategy needs a trained model: "
                                  "create_optimal_execution_engine(..., ppo_model='models/<name>.zip')")
            adaptive = True
            size = size_feature(qty, mean_v)
            rem, fr_list = 1.0, []
            for k in range(n):
                f = 1.0 if k == n - 1 else float(np.clip(self.ppo_policy.fraction(
                    observation(m, j, side_.sign, rem, (n - k) / n, size)), 0.0, 1.0))
                fr_list.append(rem * f)
                rem -= rem * f
            fr = np.array(fr_list)
        q = qty * fr
        q[-1] = qty - q[:-1].sum()
        children = tuple(ChildOrder(t, float(x), otype) for t, x in zip(times, q) if x > 0)
        return ExecutionPlan(symbol=symbol, side=side_, quantity_base=qty, strategy=strat, start_utc=t0,
                             horizon_bars=n, bar_minutes=m.bar_minutes, children=children,
                             arrival_price_quote=float(m.close[j]), expected_bar_volume_base=mean_v,
                             adaptive=adaptive, details=details)

    def almgren_chriss_parameters(self, m: MarketArrays, j: int, quantity_base: float, n_bars: int,
                                  risk_aversion_per_bps: float) -> tuple[float, float, float]:
        """(kappa per bar, linear temporary eta, linear permanent gamma) at calibration index ``j``."""
        cfg = self.impact
        sigma_bar = float(m.sigma_bar[j])
        sigma_day = sigma_bar * math.sqrt(m.bars_per_day)
        v = float(m.mean_volume[j])
        eta_lin = cfg.eta * sigma_day * (quantity_base / v) ** cfg.alpha * (1.0 / n_bars) ** (cfg.alpha - 1.0)
        gamma_lin = cfg.gamma * sigma_day * quantity_base / (v * m.bars_per_day)
        kappa = almgren_chriss_kappa(sigma_bar, eta_lin, gamma_lin, risk_aversion_per_bps * 1e4)
        return kappa, eta_lin, gamma_lin

    # ----------------------------------------------------------------------------------------------
    def execute(self, plan: ExecutionPlan, venue: Any) -> ExecutionResult:
        """Run ``plan`` on ``venue``: a :class:`MarketImpactSimulator`, an :class:`ExchangeVenue`, or a
        ccxt-like connection object with ``create_order`` (wrapped in an ``ExchangeVenue``).

        Returns fills and metrics (average price, implementation shortfall vs arrival in bps, slippage vs
        interval VWAP in bps, fill rate).
        """
        policy = self.ppo_policy if plan.adaptive else None
        if plan.adaptive and policy is None:
            raise ConfigError("this plan is adaptive (PPO) but the engine has no PPO policy loaded")
        if isinstance(venue, MarketImpactSimulator):
            return venue.run(plan, policy=policy)
        if isinstance(venue, ExchangeVenue):
            return venue.run(plan, policy=policy)
        if hasattr(venue, "create_order"):
            return ExchangeVenue(venue, timeframe=self.timeframe, features=self.features).run(plan, policy=policy)
        raise ExecutionInputError(f"venue must be a MarketImpactSimulator, an ExchangeVenue or an exchange connection "
                                  f"with create_order; got {type(venue).__name__}")


def create_optimal_execution_engine(bars: dict[str, pd.DataFrame] | None = None, *, timeframe: str = "1h",
                                    ppo_model: str | Path | None = None, impact: ImpactModelSettings | None = None,
                                    features: MarketFeatureSettings | None = None,
                                    risk_aversion_per_bps: float = DEFAULT_RISK_AVERSION_PER_BPS,
                                    settings: ExecutionSettings | None = None,
                                    data_label: str | None = None) -> ExecutionEngine:
    """Build an :class:`ExecutionEngine`.

    ``bars=None`` uses the deterministic synthetic market (its SYNTHETIC label is logged and kept on the
    engine). ``ppo_model`` loads a saved PPO policy (``models/<name>.zip`` + ``.json``). ``settings``
    (``config.execution``) sets the default horizon, the taker fee and the participation cap.
    """
    if bars is None:
        from graphwiz_trader.data.synthetic import generate_synthetic_market

        market = generate_synthetic_market()
        bars = market.bars
        data_label = market.label
        log.info("execution engine on %s", market.label)
    impact = impact or ImpactModelSettings()
    horizon = 6
    if settings is not None:
        impact = replace(impact, fee_bps=settings.taker_fee_bps, max_participation=settings.max_participation)
        horizon = settings.horizon_bars
    policy = None
    if ppo_model is not None:
        from graphwiz_trader.execution.ppo import PPOExecutionPolicy

        policy = PPOExecutionPolicy.load(ppo_model)
    return ExecutionEngine(bars, timeframe=timeframe, impact=impact, features=features,
                           risk_aversion_per_bps=risk_aversion_per_bps, ppo_policy=policy,
                           default_horizon_bars=horizon, data_label=data_label)
