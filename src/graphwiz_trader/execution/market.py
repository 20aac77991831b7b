"""Per-symbol market arrays for execution: prices, volumes and past-only calibrations.

Everything here is precomputed once per symbol as numpy arrays so that the simulator and the RL
environment never touch pandas in their inner loops.

Point-in-time convention: every calibrated array at index ``j`` is a function of bars ``0..j`` only,
i.e. it is known at the *close* of bar ``j`` (= the open of bar ``j + 1``). A decision taken at the open
of bar ``i`` therefore reads index ``i - 1``.

Calibrations (all trailing windows over the symbol's own bars):

``sigma_bar``      std of bar log returns (close to close) over ``vol_window_bars`` (a fraction per bar).
``mean_volume``    mean bar volume over ``volume_window_bars`` (base units).
``half_spread``    half the Abdi-Ranaldo (2017) high/low/close spread estimate over ``spread_window_bars``:
                   ``s^2 = 4 mean[(c_t - eta_t)(c_t - eta_{t+1})]``, ``eta = (log high + log low) / 2``,
                   ``c = log close``; negative estimates become 0, then the half-spread is clipped to
                   ``[min_half_spread_bps, max_half_spread_bps]``. On hourly bars this is a coarse proxy
                   (it includes intrabar noise): near the floor for BTC/ETH, 5-15 bps for small alts.
``profile``        hour-of-day volume profile: for each hour h of the day, the mean volume of the last
                   ``profile_days`` bars opening at hour h, divided by the mean over the 24 hours
                   (1.0 = an average hour). Needs ``min_profile_days`` observations of every hour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.core.timeframes import timeframe_minutes
from graphwiz_trader.errors import DataError

log = logging.getLogger(__name__)

N_MARKET_FEATURES = 6
MARKET_FEATURE_NAMES = (
    "ret_lag1_over_sigma", "ret_lag2_over_sigma", "ret_lag3_over_sigma",
    "log_volume_over_mean", "log_next_hour_profile", "half_spread_bps_over_10",
)


@dataclass(frozen=True)
class MarketFeatureSettings:
    """Trailing windows (in bars / days) of the past-only calibrations described in the module docstring."""

    vol_window_bars: int = 168
    volume_window_bars: int = 168
    spread_window_bars: int = 336
    profile_days: int = 30
    min_profile_days: int = 14
    min_half_spread_bps: float = 0.5
    max_half_spread_bps: float = 25.0

    def __post_init__(self) -> None:
        for name in ("vol_window_bars", "volume_window_bars", "spread_window_bars", "profile_days",
                     "min_profile_days"):
            if getattr(self, name) < 2:
                raise ValueError(f"MarketFeatureSettings.{name} must be >= 2, got {getattr(self, name)}")
        if self.min_profile_days > self.profile_days:
            raise ValueError("MarketFeatureSettings.min_profile_days must be <= profile_days")
        if not 0 <= self.min_half_spread_bps <= self.max_half_spread_bps:
            raise ValueError("MarketFeatureSettings needs 0 <= min_half_spread_bps <= max_half_spread_bps")


@dataclass(frozen=True, eq=False)
class MarketArrays:
    """One symbol's bars and calibrations as arrays (see the module docstring for definitions).

    Attributes
    ----------
    times_ns : int64 array, bar open times (UTC epoch nanoseconds), strictly increasing.
    typical : (open + high + low + close) / 4, the unaffected average price of a trade worked
        through the bar (quote currency).
    logret : log(close_j / close_{j-1}); NaN at 0.
    profile : (n, 24) float32; row j is the hour-of-day volume profile known at the close of bar j.
    features : (n, 6) float32 observation features known at the close of bar j (``MARKET_FEATURE_NAMES``),
        clipped to +-10; NaN during warm-up.
    valid : bool array; True where every calibration at j is finite.
    """

    symbol: str
    timeframe: str
    bar_minutes: int
    times_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    typical: np.ndarray
    hour: np.ndarray
    logret: np.ndarray
    sigma_bar: np.ndarray
    mean_volume: np.ndarray
    half_spread: np.ndarray
    profile: np.ndarray
    features: np.ndarray
    valid: np.ndarray
    config: MarketFeatureSettings

    @property
    def n(self) -> int:
        return len(self.times_ns)

    @property
    def bar_ns(self) -> int:
        return self.bar_minutes * 60 * 1_000_000_000

    @property
    def bars_per_day(self) -> float:
        return 1440.0 / self.bar_minutes

    def time(self, i: int) -> pd.Timestamp:
        return pd.Timestamp(int(self.times_ns[i]), tz="UTC")

    def index_of(self, ts: pd.Timestamp) -> int:
        """Index of the bar opening exactly at ``ts``, or -1 when there is no such bar."""
        v = _ts_ns(ts)
        i = int(np.searchsorted(self.times_ns, v))
        return i if i < self.n and self.times_ns[i] == v else -1

    def last_closed_index(self, ts: pd.Timestamp) -> int:
        """Index of the last bar that has closed by ``ts`` (open + bar <= ts), or -1."""
        return int(np.searchsorted(self.times_ns, _ts_ns(ts) - self.bar_ns, side="right")) - 1

    def contiguous(self, i: int, n_bars: int) -> bool:
        """True when bars ``i .. i + n_bars - 1`` exist and have no gap."""
        last = i + n_bars - 1
        return 0 <= i and last < self.n and self.times_ns[last] - self.times_ns[i] == (n_bars - 1) * self.bar_ns

    def hour_of(self, ts: pd.Timestamp) -> int:
        return int(pd.Timestamp(ts).tz_convert("UTC").hour)


def _ts_ns(ts: pd.Timestamp | str) -> int:
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        raise DataError(f"timestamp {t} must be tz-aware UTC")
    return int(t.tz_convert("UTC").value)


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over exactly ``window`` values ending at j (NaN before); NaN inputs propagate."""
    return pd.Series(x).rolling(window, min_periods=window).mean().to_numpy()


def _hour_profile(volume: np.ndarray, hour: np.ndarray, days: int, min_days: int) -> np.ndarray:
    """(n, 24) matrix: row j = mean volume of the last ``days`` bars at each hour among bars 0..j, / row mean."""
    n = len(volume)
    h_mean = np.full((n, 24), np.nan)
    for h in range(24):
        idx = np.flatnonzero(hour == h)
        if len(idx) == 0:
            continue
        m = pd.Series(volume[idx]).rolling(days, min_periods=min_days).mean().to_numpy()
        col = np.full(n, np.nan)
        col[idx] = m
        h_mean[:, h] = pd.Series(col).ffill().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        row_mean = h_mean.mean(axis=1, keepdims=True)  # NaN until every hour is known
        prof = h_mean / row_mean
    return prof.astype(np.float32)


def build_market_arrays(bars: pd.DataFrame, symbol: str, timeframe: str = "1h",
                        config: MarketFeatureSettings | None = None) -> MarketArrays:
    """Precompute a symbol's arrays. ``bars`` is a canonical bar frame (sorted, unique UTC index).

    Raises
    ------
    DataError
        when the frame is not canonical (missing columns, unsorted or repeated times, non-positive prices).
    """
    cfg = config or MarketFeatureSettings()
    minutes = timeframe_minutes(timeframe)
    if minutes > 60 or 60 % minutes:
        raise DataError(f"{symbol}: execution needs intraday bars dividing an hour (e.g. 1h, 15m); got {timeframe}")
    missing = [c for c in OHLCV if c not in bars.columns]
    if missing:
        raise DataError(f"{symbol}: bars miss column(s) {', '.join(missing)}")
    idx = pd.DatetimeIndex(bars.index)
    if idx.tz is None:
        raise DataError(f"{symbol}: bar index must be tz-aware UTC")
    t = idx.tz_convert("UTC").asi8
    if len(t) < 2:
        raise DataError(f"{symbol}: need at least 2 bars, got {len(t)}")
    if np.any(np.diff(t) <= 0):
        raise DataError(f"{symbol}: bar times must be strictly increasing (sort and de-duplicate first)")
    o, h, l, c, v = (bars[k].to_numpy(dtype=np.float64) for k in OHLCV)
    if not (np.all(np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c) & np.isfinite(v))):
        raise DataError(f"{symbol}: bars hold NaN/inf values")
    if np.any((o <= 0) | (h <= 0) | (l <= 0) | (c <= 0)) or np.any(v < 0):
        raise DataError(f"{symbol}: bars hold non-positive prices or negative volume")
    hour = idx.tz_convert("UTC").hour.to_numpy().astype(np.int8)
    logc = np.log(c)
    logret = np.r_[np.nan, np.diff(logc)]
    sigma = pd.Series(logret).rolling(cfg.vol_window_bars, min_periods=cfg.vol_window_bars).std().to_numpy()
    mean_vol = _rolling_mean(v, cfg.volume_window_bars)
    eta = 0.5 * (np.log(h) + np.log(l))
    prod = np.r_[np.nan, (logc[:-1] - eta[:-1]) * (logc[:-1] - eta[1:])]  # pair (t-1, t), known at t
    s2 = 4.0 * _rolling_mean(prod, cfg.spread_window_bars)
    half = 0.5 * np.sqrt(np.clip(s2, 0.0, None))
    half = np.where(np.isfinite(s2), np.clip(half, cfg.min_half_spread_bps * 1e-4, cfg.max_half_spread_bps * 1e-4),
                    np.nan)
    prof = _hour_profile(v, hour, cfg.profile_days, cfg.min_profile_days)
    next_hour = ((t + minutes * 60_000_000_000) // 3_600_000_000_000 % 24).astype(np.int64)
    prof_next = prof[np.arange(len(t)), next_hour].astype(np.float64)

    feats = np.full((len(t), N_MARKET_FEATURES), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        feats[:, 0] = logret / sigma
        feats[1:, 1] = logret[:-1] / sigma[1:]
        feats[2:, 2] = logret[:-2] / sigma[2:]
        feats[:, 3] = np.log((v + 1e-6 * mean_vol) / mean_vol)
        feats[:, 4] = np.log(prof_next)
        feats[:, 5] = half * 1e4 / 10.0
    feats = np.clip(feats, -10.0, 10.0)
    valid = np.all(np.isfinite(feats), axis=1) & np.isfinite(sigma) & (sigma > 0) & (mean_vol > 0)
    return MarketArrays(
        symbol=symbol, timeframe=timeframe, bar_minutes=minutes, times_ns=t,
        open=o, high=h, low=l, close=c, volume=v, typical=(o + h + l + c) / 4.0, hour=hour,
        logret=logret, sigma_bar=sigma, mean_volume=mean_vol, half_spread=half, profile=prof,
        features=feats.astype(np.float32), valid=valid, config=cfg,
    )


def load_bars_dir(directory: str | Path, symbols: list[str] | None = None, timeframe: str = "1h") -> dict[str, pd.DataFrame]:
    """Read freqtrade-layout ``<BASE>_<QUOTE>-<timeframe>.feather`` files (``directory`` or ``directory/<tf>``).

    Delegates to :func:`graphwiz_trader.data.sources.read_bars` with strict validation: errors raise, gaps are
    kept and only logged (the simulator rejects a child order that falls in a missing bar).

    Raises
    ------
    DataError
        when the folder does not exist, holds no file for the timeframe, or a file is unreadable.
    UnknownSymbolError
        when a requested symbol has no file, listing the available ones.
    """
    from graphwiz_trader.data.sources import read_bars

    bars, _ = read_bars(Path(directory), timeframe, symbols, strict=True)
    return bars


# --------------------------------------------------------------------------------------------------
# Observation shared by the RL environment, the simulator and the exchange path (one definition).
# --------------------------------------------------------------------------------------------------
OBSERVATION_NAMES = ("remaining_fraction", "time_left_fraction", "log10_size_over_bar_volume_plus_2",
                     *MARKET_FEATURE_NAMES)
OBSERVATION_SIZE = len(OBSERVATION_NAMES)
OBSERVATION_BOUND = 10.0


def size_feature(quantity_base: float, mean_bar_volume_base: float) -> float:
    """log10(parent quantity / mean bar volume) + 2, clipped to +-10 (0 = an order of 1% of a bar)."""
    return float(np.clip(np.log10(quantity_base / mean_bar_volume_base) + 2.0, -OBSERVATION_BOUND, OBSERVATION_BOUND))


def observation(m: MarketArrays, j: int, side_sign: int, remaining_fraction: float, time_left_fraction: float,
                size: float) -> np.ndarray:
    """The policy's observation at the open of bar ``j + 1`` (market features known at the close of ``j``).

    Returns are side-signed (a rise is positive for a buy, negative for a sell) so one policy serves both.
    """
    obs = np.empty(OBSERVATION_SIZE, dtype=np.float32)
    obs[0] = remaining_fraction
    obs[1] = time_left_fraction
    obs[2] = size
    obs[3:] = m.features[j]
    if side_sign < 0:
        obs[3:6] = -obs[3:6]
    return obs
