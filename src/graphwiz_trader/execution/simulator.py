"""A market-impact simulator replaying hourly bars (real or synthetic) with a *parametric* impact model.

The impact model is parametric, not fitted to crypto: its functional form and its constants ``eta``,
``gamma`` and ``alpha`` come from equity-market literature (below); only volatility, volume and spread are
measured from the bars. Figures that depend on it (implementation shortfall, strategy rankings) hold for
these constants; ``graphwiz execution evaluate`` prints a sensitivity table over ``eta`` and ``gamma``
(see :mod:`graphwiz_trader.execution.sensitivity`). :data:`IMPACT_MODEL` is the label shown with results.

Impact model (per child order of ``q`` base units in bar ``i``; calibrations read at ``j = i - 1``, i.e.
known before the bar opens; see :mod:`graphwiz_trader.execution.market`):

    sigma_day   = sigma_bar[j] * sqrt(bars per day)                 (trailing volatility, fraction)
    V_day       = mean_volume[j] * bars per day                     (trailing volume, base units)
    window      = volume[i]                        for PARTICIPATE children (worked through the bar)
                = volume[i] * immediate_minutes / bar_minutes   for MARKET children (taken at once)
    rho         = q / window                                        (participation rate)
    temporary   = eta * sigma_day * rho ** alpha * exp(sd * z - sd^2 / 2),  z ~ N(0, 1) seeded
    half_spread = half_spread[j]                                    (Abdi-Ranaldo proxy, fraction)
    D           = sum over earlier children of gamma * sigma_day * q / V_day   (permanent impact)
    reference   = open[i]  for MARKET, typical[i] = (O + H + L + C) / 4  for PARTICIPATE
    fill price  = reference * (1 + side * (D + half_spread + temporary))

The form follows Almgren, Thum, Hauptmann & Li (2005), "Direct estimation of equity market impact"
(temporary impact ~ sigma * participation^0.6, permanent ~ sigma * traded fraction of daily volume), whose
estimates for US equities ``eta = 0.142``, ``gamma = 0.314``, ``alpha = 0.6`` are the defaults, unchanged
(no crypto fit exists here); the data supplies ``sigma`` and volume per symbol and hour. Fees (``fee_bps`` of notional) are reported apart from price.

Replay: the bars are the unaffected market; the simulator's own permanent impact shifts later fills only.
A child in a missing bar (exchange down) or a zero-volume bar is rejected; ``max_participation`` (fraction
of bar volume) caps PARTICIPATE children (the rest is left unfilled and lowers the fill rate).

Deterministic given ``seed``: the impact noise of a parent order is drawn from
``SeedSequence([seed, crc32(symbol), start bar index])``, so every strategy worked on the same parent order
sees the same noise (common random numbers for paired comparisons).
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.execution.market import (
    MarketArrays,
    MarketFeatureSettings,
    build_market_arrays,
    observation,
    size_feature,
)
from graphwiz_trader.execution.types import (
    ExecutionPlan,
    ExecutionResult,
    Fill,
    OrderType,
    execution_metrics_from_fills,
)

log = logging.getLogger(__name__)

IMPACT_MODEL = "parametric (Almgren-Chriss-style; eta, gamma from equity literature, not fitted)"
"""How results of this simulator describe its impact model (printed and written with every evaluation)."""


@dataclass(frozen=True)
class ImpactModelSettings:
    """Parameters of the parametric impact model in the module docstring (dimensionless unless a unit is named).

    Defaults are equity-literature estimates (Almgren et al. 2005), not fitted to crypto.
    """

    eta: float = 0.142
    alpha: float = 0.6
    gamma: float = 0.314
    immediate_minutes: float = 5.0
    impact_noise_sd: float = 0.1
    max_participation: float | None = None
    fee_bps: float = 0.0

    def __post_init__(self) -> None:
        if self.eta < 0 or self.gamma < 0:
            raise ValueError("ImpactModelSettings: eta and gamma must be >= 0")
        if not 0 < self.alpha <= 2:
            raise ValueError(f"ImpactModelSettings.alpha must be in (0, 2], got {self.alpha}")
        if self.immediate_minutes <= 0:
            raise ValueError("ImpactModelSettings.immediate_minutes must be > 0")
        if self.impact_noise_sd < 0 or self.fee_bps < 0:
            raise ValueError("ImpactModelSettings: impact_noise_sd and fee_bps must be >= 0")
        if self.max_participation is not None and not 0 < self.max_participation <= 1e6:
            raise ValueError("ImpactModelSettings.max_participation must be > 0 (a fraction of bar volume)")


class AdaptivePolicy(Protocol):
    """Decides, from an observation (``market.observation``), the fraction of the remainder to trade now."""

    def fraction(self, obs: np.ndarray) -> float: ...


def temporary_impact(cfg: ImpactModelSettings, sigma_day: float, participation: float) -> float:
    """Expected temporary impact (fraction of price, before noise): eta * sigma_day * participation^alpha."""
    return cfg.eta * sigma_day * participation ** cfg.alpha


def noise_for(seed: int, symbol: str, start_index: int, n: int) -> np.ndarray:
    """The standard normals the simulator uses for a parent order (see module docstring)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(symbol.encode()), int(start_index)])
    return np.random.default_rng(ss).standard_normal(n)


class MarketImpactSimulator:
    """Replay venue: executes plans against bars with the impact model in the module docstring.

    Parameters
    ----------
    markets
        ``{symbol: MarketArrays}`` or canonical bars ``{symbol: DataFrame}`` (arrays are then built).
    impact
        Impact model parameters.
    seed
        Seed of the impact noise; same seed, same fills.
    """

    def __init__(self, markets: dict[str, MarketArrays] | dict[str, pd.DataFrame], impact: ImpactModelSettings | None = None,
                 seed: int = 0, timeframe: str = "1h", features: MarketFeatureSettings | None = None,
                 label: str | None = None) -> None:
        self.impact = impact or ImpactModelSettings()
        self.seed = int(seed)
        self.label = label
        self._markets: dict[str, MarketArrays] = {}
        for sym, m in markets.items():
            self._markets[sym] = m if isinstance(m, MarketArrays) else build_market_arrays(m, sym, timeframe, features)

    @property
    def symbols(self) -> list[str]:
        return list(self._markets)

    def market(self, symbol: str) -> MarketArrays:
        try:
            return self._markets[symbol]
        except KeyError:
            raise UnknownSymbolError([symbol], where="the simulator's bars", available=self.symbols) from None

    def __repr__(self) -> str:
        return f"MarketImpactSimulator(symbols={len(self._markets)}, seed={self.seed})"

    # ----------------------------------------------------------------------------------------------
    def interval_vwap(self, symbol: str, start: pd.Timestamp, n_bars: int) -> float:
        """Volume-weighted typical price of the bars opening in [start, start + n_bars bars) (quote)."""
        m = self.market(symbol)
        lo = int(np.searchsorted(m.times_ns, pd.Timestamp(start).value))
        hi = int(np.searchsorted(m.times_ns, pd.Timestamp(start).value + n_bars * m.bar_ns))
        v = m.volume[lo:hi]
        if hi <= lo or v.sum() <= 0:
            return float("nan")
        return float((m.typical[lo:hi] * v).sum() / v.sum())

    def run(self, plan: ExecutionPlan, policy: AdaptivePolicy | None = None) -> ExecutionResult:
        """Execute ``plan``. Adaptive (PPO) plans need ``policy``; their children are decided bar by bar.

        Raises
        ------
        UnknownSymbolError
            when the plan's symbol has no bars here.
        DataError
            when the start bar is missing or there is not enough history for the calibrations.
        """
        m = self.market(plan.symbol)
        cfg = self.impact
        side = plan.side.sign
        i0 = m.index_of(plan.start_utc)
        if i0 < 0:
            raise DataError(f"{plan.symbol}: no bar opens at the plan start {plan.start_utc} in the simulator's data")
        j0 = i0 - 1
        if j0 < 0 or not m.valid[j0]:
            raise DataError(f"{plan.symbol}: not enough history before {plan.start_utc} for the impact calibrations "
                            f"(first usable start is {self._first_valid_start(m)})")
        arrival = float(m.open[i0])
        z = noise_for(self.seed, plan.symbol, i0, plan.horizon_bars + 1)
        sd = cfg.impact_noise_sd
        noise_mult = np.exp(sd * z - 0.5 * sd * sd)
        bpd = m.bars_per_day
        size = size_feature(plan.quantity_base, float(m.mean_volume[j0]))

        if plan.adaptive:
            if policy is None:
                raise DataError(f"plan for {plan.symbol} is adaptive ({plan.strategy.value}); pass its policy")
            children = [(plan.start_utc + pd.Timedelta(minutes=plan.bar_minutes * k), float("nan"), OrderType.PARTICIPATE)
                        for k in range(plan.horizon_bars)]
        else:
            children = [(c.time_utc, c.quantity_base, c.order_type) for c in plan.children]

        fills: list[Fill] = []
        perm = 0.0
        remaining = plan.quantity_base
        for k, (t, q_req, otype) in enumerate(children):
            i = m.index_of(t)
            if plan.adaptive:
                if i < 0 or i - 1 < 0 or not m.valid[i - 1]:
                    q_req = 0.0
                elif k == len(children) - 1:
                    q_req = remaining
                else:
                    obs = observation(m, i - 1, side, remaining / plan.quantity_base,
                                      (plan.horizon_bars - k) / plan.horizon_bars, size)
                    q_req = float(np.clip(policy.fraction(obs), 0.0, 1.0)) * remaining
            if q_req <= 0:
                continue
            if i < 0:
                fills.append(Fill(t, q_req, 0.0, float("nan"), 0.0, otype, status=f"rejected: no bar at {t} (missing data)"))
                continue
            if m.volume[i] <= 0:
                fills.append(Fill(t, q_req, 0.0, float("nan"), 0.0, otype, status="rejected: zero bar volume"))
                continue
            j = i - 1
            sigma_day = float(m.sigma_bar[j]) * math.sqrt(bpd)
            if otype is OrderType.MARKET:
                window = float(m.volume[i]) * cfg.immediate_minutes / m.bar_minutes
                ref = float(m.open[i])
            else:
                window = float(m.volume[i])
                ref = float(m.typical[i])
            q = q_req
            status = "filled"
            if otype is OrderType.PARTICIPATE and cfg.max_participation is not None and q > cfg.max_participation * window:
                q = cfg.max_participation * window
                status = "partial: max_participation"
            rho = q / window
            temp = temporary_impact(cfg, sigma_day, rho) * float(noise_mult[min(k, len(noise_mult) - 1)])
            half = float(m.half_spread[j])
            price = ref * (1.0 + side * (perm + half + temp))
            fills.append(Fill(
                time_utc=t, requested_base=q_req, quantity_base=q, price_quote=price,
                fee_quote=cfg.fee_bps * 1e-4 * price * q, order_type=otype, participation=rho,
                reference_price_quote=ref, half_spread_bps=half * 1e4, temporary_impact_bps=temp * 1e4,
                permanent_impact_bps=perm * 1e4, status=status,
            ))
            perm += cfg.gamma * sigma_day * q / (float(m.mean_volume[j]) * bpd)
            remaining -= q
        vwap = self.interval_vwap(plan.symbol, plan.start_utc, plan.horizon_bars)
        metrics = execution_metrics_from_fills(plan.side, plan.quantity_base, arrival, vwap, fills)
        return ExecutionResult(plan=plan, fills=tuple(fills), metrics=metrics, venue=repr(self))

    @staticmethod
    def _first_valid_start(m: MarketArrays) -> str:
        ok = np.flatnonzero(m.valid[:-1])
        return str(m.time(int(ok[0]) + 1)) if len(ok) else "none (series too short)"
