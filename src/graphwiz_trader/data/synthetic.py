"""A deterministic synthetic market: the offline default, always labelled SYNTHETIC.

Model (per bar t, asset i in sector c(i), hidden regime k_t in {calm, trending, crash}):

    r[i,t] = beta_i * m_t + gamma_i * s[c(i),t] + e[i,t] + kappa * sigma_e[k_t] * signal[i,t-1]
    m_t    = mu[k_t] + sigma_m[k_t] * z          (market factor)
    s[c,t] = sigma_s[k_t] * z                    (sector factor; drives the planted clusters)
    e[i,t] = sigma_e[k_t] * z                    (idiosyncratic)
    signal[i,t] = -(r[i,t] - mean_j r[j,t]) / std_j r[j,t]   (planted short-term reversal, known at t's close)

Regimes follow a Markov chain with mean durations (bars) calm 300, trending 200, crash 50; crash has
3x volatility, stronger co-movement and a negative drift. Volatilities are per hour and scaled by
sqrt(bar minutes / 60). Volume (base units) = notional_i * hour-of-day seasonality (peak 15:00 UTC)
* regime multiplier * (1 + 3 |z-return|) * lognormal noise / close. OHLC is consistent by
construction: open_t = close_{t-1}, high/low extend beyond open/close by half-normal excursions.

The ground truth (regime path, cluster labels, planted signal) is exposed for recovery tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graphwiz_trader.core.timeframes import timeframe_delta, timeframe_minutes
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import ConfigError

REGIMES: tuple[str, ...] = ("calm", "trending", "crash")
SYNTHETIC_LABEL = "SYNTHETIC MARKET (simulated data, not real prices)"

# per-hour parameters by regime: market drift, market vol, sector vol, idio vol, volume multiplier
_MU = np.array([0.00002, 0.0006, -0.0020])
_SIG_M = np.array([0.0040, 0.0060, 0.0130])
_SIG_S = np.array([0.0040, 0.0045, 0.0070])
_SIG_E = np.array([0.0030, 0.0035, 0.0060])
_VOL_MULT = np.array([1.0, 1.4, 2.5])
_DURATION = np.array([300.0, 200.0, 50.0])
_EXIT_TO = np.array([[0.0, 0.7, 0.3], [0.6, 0.0, 0.4], [0.7, 0.3, 0.0]])


@dataclass(frozen=True)
class SyntheticMarketSettings:
    """Knobs of the synthetic market. Everything is a pure function of these (and ``seed``)."""

    n_assets: int = 12
    n_clusters: int = 3
    n_bars: int = 24 * 240
    timeframe: str = "1h"
    start: str = "2022-01-01"
    seed: int = 7
    signal_strength: float = 0.2
    quote: str = "USDT"

    def __post_init__(self) -> None:
        if self.n_assets < 2 or self.n_clusters < 1 or self.n_clusters > self.n_assets:
            raise ConfigError(f"synthetic market: need n_assets >= 2 and 1 <= n_clusters <= n_assets, "
                              f"got n_assets={self.n_assets}, n_clusters={self.n_clusters}")
        if self.n_bars < 2:
            raise ConfigError(f"synthetic market: need n_bars >= 2, got {self.n_bars}")
        timeframe_minutes(self.timeframe)
        to_utc(self.start, "synthetic market start")


@dataclass(frozen=True)
class SyntheticMarket:
    """Bars plus ground truth. ``label`` says, everywhere it is shown, that this data is simulated."""

    bars: dict[str, pd.DataFrame]
    regimes: pd.Series
    clusters: dict[str, int]
    signal: pd.DataFrame
    config: SyntheticMarketSettings
    label: str = field(default=SYNTHETIC_LABEL)

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def close_panel(self) -> pd.DataFrame:
        """Closes as a datetime x symbol frame."""
        return pd.DataFrame({s: df["close"] for s, df in self.bars.items()})


def synthetic_symbols(n_assets: int, quote: str = "USDT") -> list[str]:
    return [f"SYN{i:02d}/{quote}" for i in range(n_assets)]


def _regime_path(rng: np.random.Generator, n: int) -> np.ndarray:
    stay = 1.0 - 1.0 / _DURATION
    path = np.empty(n, dtype=np.int8)
    k = 0
    u = rng.random(n)
    v = rng.random(n)
    for t in range(n):
        path[t] = k
        if u[t] > stay[k]:
            k = int(np.searchsorted(np.cumsum(_EXIT_TO[k]), v[t], side="right"))
            k = min(k, len(REGIMES) - 1)
    return path


def generate_synthetic_market(config: SyntheticMarketSettings | None = None, **overrides: object) -> SyntheticMarket:
    """Simulate the market described in the module docstring. Same config, same numbers, always."""
    cfg = config or SyntheticMarketSettings()
    if overrides:
        unknown = sorted(set(overrides) - set(cfg.__dict__))
        if unknown:
            raise ConfigError(f"synthetic market: unknown setting(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(cfg.__dict__)}")
        cfg = SyntheticMarketSettings(**{**cfg.__dict__, **overrides})  # type: ignore[arg-type]
    rng = np.random.default_rng(cfg.seed)
    n, a = cfg.n_bars, cfg.n_assets
    scale = np.sqrt(timeframe_minutes(cfg.timeframe) / 60.0)
    symbols = synthetic_symbols(a, cfg.quote)
    cluster = np.arange(a) % cfg.n_clusters
    beta = rng.uniform(0.8, 1.2, a)
    gamma = rng.uniform(0.8, 1.2, a)
    start_price = np.exp(rng.uniform(np.log(0.5), np.log(50_000.0), a))
    notional = np.exp(rng.uniform(np.log(2e6), np.log(5e7), a)) * scale**2

    reg = _regime_path(rng, n)
    z_m = rng.standard_normal(n)
    z_s = rng.standard_normal((n, cfg.n_clusters))
    z_e = rng.standard_normal((n, a))
    m = (_MU[reg] * scale**2) + _SIG_M[reg] * scale * z_m
    s = (_SIG_S[reg] * scale)[:, None] * z_s
    sig_e = _SIG_E[reg] * scale
    base = beta[None, :] * m[:, None] + gamma[None, :] * s[:, cluster] + sig_e[:, None] * z_e

    kappa = cfg.signal_strength
    r = np.empty((n, a))
    signal = np.empty((n, a))
    prev = np.zeros(a)
    for t in range(n):
        rt = base[t] + kappa * sig_e[t] * prev
        r[t] = rt
        dev = rt - rt.mean()
        sd = dev.std()
        prev = -dev / sd if sd > 0 else np.zeros(a)
        signal[t] = prev

    close = start_price[None, :] * np.exp(np.cumsum(r, axis=0))
    open_ = np.vstack([start_price[None, :], close[:-1]])
    total_sig = np.sqrt((beta[None, :] * _SIG_M[reg][:, None]) ** 2 + (_SIG_S[reg] ** 2 + _SIG_E[reg] ** 2)[:, None]) * scale
    up = np.abs(rng.standard_normal((n, a))) * 0.5 * total_sig
    dn = np.abs(rng.standard_normal((n, a))) * 0.5 * total_sig
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-dn)

    index = pd.date_range(to_utc(cfg.start, "synthetic market start"), periods=n, freq=timeframe_delta(cfg.timeframe),
                          name="datetime")
    if timeframe_minutes(cfg.timeframe) < 1440:
        hours = index.hour.to_numpy() + index.minute.to_numpy() / 60.0
        season = 1.0 + 0.5 * np.cos(2 * np.pi * (hours - 15.0) / 24.0)
    else:
        season = np.ones(n)
    shock = 1.0 + 3.0 * np.abs(r) / total_sig
    noise = np.exp(rng.normal(-0.045, 0.3, (n, a)))
    volume = notional[None, :] * season[:, None] * _VOL_MULT[reg][:, None] * shock * noise / close

    bars: dict[str, pd.DataFrame] = {}
    for j, sym in enumerate(symbols):
        df = pd.DataFrame({"open": open_[:, j], "high": high[:, j], "low": low[:, j], "close": close[:, j],
                           "volume": volume[:, j]}, index=index)
        df.attrs["synthetic"] = True
        bars[sym] = df
    regimes = pd.Series(pd.Categorical.from_codes(reg, REGIMES), index=index, name="regime")
    return SyntheticMarket(
        bars=bars,
        regimes=regimes,
        clusters={sym: int(c) for sym, c in zip(symbols, cluster)},
        signal=pd.DataFrame(signal, index=index, columns=symbols),
        config=cfg,
    )
