"""``ExecutionEnvironment``: a gymnasium environment for working one parent order through hourly bars.

Episode: a parent order of ``X`` base units (side buy or sell) must be completed within ``time_horizon``
bars starting at a random bar of the history (random symbol when several). Each step is one bar.

Observation (float32, 9 values, see ``market.OBSERVATION_NAMES``): remaining fraction of the parent,
fraction of the horizon left, log10(X / mean bar volume) + 2, the last three bar returns over trailing
volatility (side-signed: positive = adverse move), log(last bar volume / mean), log of the next hour's
learned volume profile, half-spread proxy in bps / 10. Market values are those known at the bar's open.

Action: Box([0, 1]) = fraction of the remaining quantity to trade in this bar (the last bar trades all
that is left). Trades are PARTICIPATE children filled by the simulator's impact model
(:mod:`graphwiz_trader.execution.simulator`; same formulas, same calibrations).

Reward (per step, in bps of the parent notional / ``reward_scale_bps``)::

    -[ side * x_before * (m_k - m_{k-1}) / P0          (market move on what was still held)
       + q_k * m_k * (D + half_spread + temporary) / P0 (cost of this bar's trade vs the unaffected m_k)
     ] * 1e4 - risk_aversion_per_bps * x_after^2 * sigma_bar_bps^2

with ``m_k`` the bar's typical price, ``m_{-1} = P0`` the arrival price (bar open), quantities in
fractions of the parent. The first two terms telescope: their sum over an episode is exactly minus the
implementation shortfall in bps; the last is the Almgren-Chriss variance penalty (risk aversion per bps,
same as the ALMGREN_CHRISS engine). ``info["shortfall_bps"]`` holds the episode's shortfall at the end.

The step uses plain Python floats from per-episode lists prepared at reset (no pandas, no allocation
but the returned observation row), for speed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.execution.market import (
    OBSERVATION_BOUND,
    OBSERVATION_SIZE,
    MarketArrays,
    MarketFeatureSettings,
    build_market_arrays,
)
from graphwiz_trader.execution.simulator import ImpactModelSettings
from graphwiz_trader.execution.types import ExecutionInputError, Side, horizon_to_bars

DEFAULT_RISK_AVERSION_PER_BPS = 1e-5
DEFAULT_VOLUME_FRACTION_RANGE = (0.001, 0.05)


def _as_markets(history: Any, timeframe: str, features: MarketFeatureSettings | None) -> dict[str, MarketArrays]:
    if hasattr(history, "bars") and isinstance(getattr(history, "bars"), Mapping):  # SyntheticMarket
        history = history.bars
    if isinstance(history, pd.DataFrame):
        history = {str(history.attrs.get("symbol", "SERIES/QUOTE")): history}
    if isinstance(history, MarketArrays):
        history = {history.symbol: history}
    if not isinstance(history, Mapping) or not history:
        raise DataError("order_book_history must be bars: a DataFrame or a non-empty {symbol: DataFrame} mapping")
    out: dict[str, MarketArrays] = {}
    for sym, v in history.items():
        out[sym] = v if isinstance(v, MarketArrays) else build_market_arrays(v, sym, timeframe, features)
    return out


def _utc(ts: str | pd.Timestamp | None) -> pd.Timestamp | None:
    """None stays None; naive times are read as UTC."""
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class ExecutionEnvironment(gym.Env):
    """Optimal-execution environment over replayed bars (see the module docstring).

    Parameters
    ----------
    order_book_history
        Bars standing in for order-book history (no level-2 data is used): a canonical bar DataFrame, a
        ``{symbol: DataFrame}`` mapping, a ``SyntheticMarket`` or ``{symbol: MarketArrays}``.
    target_quantity
        Parent quantity in base units (one symbol). Give this or ``volume_fraction_range``.
    time_horizon
        Bars (int) or a duration (``"6h"``); at least one bar.
    volume_fraction_range
        (low, high): parent quantity drawn log-uniformly as this fraction of the trailing mean bar volume.
    side
        ``"buy"``, ``"sell"`` or ``"random"`` (drawn per episode).
    start, end
        Episodes use only bars opening in [start, end) (UTC); calibrations may read earlier bars.
    risk_aversion_per_bps
        Weight of the variance penalty (per bps: objective = E[shortfall bps] + lambda Var[shortfall bps^2]).
    reward_scale_bps
        Rewards are divided by this (bps).
    """

    metadata = {"render_modes": []}

    def __init__(self, order_book_history: Any, target_quantity: float | None = None,
                 time_horizon: int | str | pd.Timedelta = 6, *,
                 volume_fraction_range: tuple[float, float] | None = None, side: str = "random",
                 impact: ImpactModelSettings | None = None, features: MarketFeatureSettings | None = None,
                 risk_aversion_per_bps: float = DEFAULT_RISK_AVERSION_PER_BPS, reward_scale_bps: float = 10.0,
                 start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                 timeframe: str = "1h", symbols: list[str] | None = None) -> None:
        super().__init__()
        markets = _as_markets(order_book_history, timeframe, features)
        if symbols is not None:
            missing = [s for s in symbols if s not in markets]
            if missing:
                raise UnknownSymbolError(missing, where="order_book_history", available=sorted(markets))
            markets = {s: markets[s] for s in symbols}
        self.markets = markets
        self._mlist = list(markets.values())
        bar_minutes = self._mlist[0].bar_minutes
        self.time_horizon_bars = horizon_to_bars(time_horizon, bar_minutes, timeframe)
        if (target_quantity is None) == (volume_fraction_range is None):
            raise ExecutionInputError("give exactly one of target_quantity (base units) or volume_fraction_range")
        if target_quantity is not None:
            if not (isinstance(target_quantity, (int, float)) and math.isfinite(target_quantity) and target_quantity > 0):
                raise ExecutionInputError(f"target_quantity must be a positive number of base units, got {target_quantity!r}")
            if len(markets) > 1:
                raise ExecutionInputError("target_quantity in base units needs one symbol; use volume_fraction_range "
                                          "for several symbols")
        if volume_fraction_range is not None:
            lo, hi = (float(x) for x in volume_fraction_range)
            if not 0 < lo <= hi:
                raise ExecutionInputError(f"volume_fraction_range must satisfy 0 < low <= high, got {volume_fraction_range}")
            self._log_lo, self._log_hi = math.log(lo), math.log(hi)
        self.target_quantity = None if target_quantity is None else float(target_quantity)
        self.volume_fraction_range = volume_fraction_range
        self.side_mode = side if side == "random" else Side.parse(side).value
        self.impact = impact or ImpactModelSettings()
        self.risk_aversion_per_bps = float(risk_aversion_per_bps)
        self.reward_scale_bps = float(reward_scale_bps)
        if self.reward_scale_bps <= 0:
            raise ExecutionInputError("reward_scale_bps must be > 0")
        self.start = _utc(start)
        self.end = _utc(end)

        n = self.time_horizon_bars
        sym_ids, starts = [], []
        for s_id, m in enumerate(self._mlist):
            idx = self.episode_starts(m, n, self.start, self.end)
            sym_ids.append(np.full(len(idx), s_id, dtype=np.int64))
            starts.append(idx)
        self._ep_sym = np.concatenate(sym_ids)
        self._ep_start = np.concatenate(starts)
        if len(self._ep_start) == 0:
            raise DataError(f"no episode fits: need {n} contiguous bars with non-zero volume after the calibration "
                            f"warm-up within [{self.start}, {self.end}) for {', '.join(markets)}")

        self.observation_space = spaces.Box(-OBSERVATION_BOUND, OBSERVATION_BOUND, shape=(OBSERVATION_SIZE,),
                                            dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._k = n
        self._obs_mat = np.zeros((n + 1, OBSERVATION_SIZE), dtype=np.float32)

    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def episode_starts(m: MarketArrays, n_bars: int, start: pd.Timestamp | None = None,
                       end: pd.Timestamp | None = None) -> np.ndarray:
        """Bar indices ``i`` where an episode of ``n_bars`` fits: calibrations valid at ``i - 1``, bars
        ``i..i+n-1`` contiguous with volume > 0, all opening in [start, end)."""
        if m.n < n_bars + 1:
            return np.zeros(0, dtype=np.int64)
        i = np.arange(1, m.n - n_bars + 1)
        ok = m.valid[i - 1] & (m.times_ns[i + n_bars - 1] - m.times_ns[i] == (n_bars - 1) * m.bar_ns)
        zero = np.r_[0, np.cumsum(m.volume <= 0)]
        ok &= (zero[i + n_bars] - zero[i]) == 0
        if start is not None:
            ok &= m.times_ns[i] >= start.value
        if end is not None:
            ok &= m.times_ns[i + n_bars - 1] < end.value
        return i[ok]

    @property
    def n_episode_starts(self) -> int:
        return int(len(self._ep_start))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode. ``options`` may fix ``symbol``, ``start_utc``, ``side`` and ``quantity_base``."""
        super().reset(seed=seed)
        rng = self.np_random
        opts = options or {}
        if "symbol" in opts or "start_utc" in opts:
            sym = opts.get("symbol", self._mlist[0].symbol)
            if sym not in self.markets:
                raise UnknownSymbolError([sym], where="the environment's history", available=sorted(self.markets))
            m = self.markets[sym]
            starts = self.episode_starts(m, self.time_horizon_bars, self.start, self.end)
            if len(starts) == 0:
                raise DataError(f"{sym}: no episode fits within [{self.start}, {self.end})")
            i0 = m.index_of(pd.Timestamp(opts["start_utc"])) if "start_utc" in opts else int(starts[0])
            pos = int(np.searchsorted(starts, i0))
            if i0 < 0 or pos >= len(starts) or starts[pos] != i0:
                raise DataError(f"{sym}: no valid episode starts at {opts.get('start_utc')} (needs calibrated "
                                f"history and {self.time_horizon_bars} contiguous bars within [{self.start}, {self.end}))")
        else:
            e = int(rng.integers(len(self._ep_start)))
            m = self._mlist[int(self._ep_sym[e])]
            i0 = int(self._ep_start[e])
        side_opt = opts.get("side", self.side_mode)
        side = (1 if rng.random() < 0.5 else -1) if side_opt == "random" else Side.parse(side_opt).sign
        j0 = i0 - 1
        mean_v = float(m.mean_volume[j0])
        if "quantity_base" in opts:
            qty = float(opts["quantity_base"])
        elif self.target_quantity is not None:
            qty = self.target_quantity
        else:
            qty = math.exp(self._log_lo + (self._log_hi - self._log_lo) * rng.random()) * mean_v
        n = self.time_horizon_bars
        sl = slice(i0, i0 + n)
        bpd = m.bars_per_day
        cfg = self.impact
        self._m, self._i0, self._side, self._qty = m, i0, side, qty
        self._p0 = float(m.open[i0])
        self._ref = m.typical[sl].tolist()
        self._vol = m.volume[sl].tolist()
        sig = m.sigma_bar[i0 - 1: i0 - 1 + n]
        self._sd_day = (sig * math.sqrt(bpd)).tolist()
        self._sig_bps2 = ((sig * 1e4) ** 2).tolist()
        self._half = m.half_spread[i0 - 1: i0 - 1 + n].tolist()
        self._vday = (m.mean_volume[i0 - 1: i0 - 1 + n] * bpd).tolist()
        sd = cfg.impact_noise_sd
        self._noise = np.exp(sd * rng.standard_normal(n) - 0.5 * sd * sd).tolist()
        obs = np.empty((n + 1, OBSERVATION_SIZE), dtype=np.float32)
        obs[:, 3:] = m.features[j0: j0 + n + 1]
        if side < 0:
            obs[:, 3:6] *= -1.0
        obs[:, 2] = np.clip(np.log10(qty / mean_v) + 2.0, -OBSERVATION_BOUND, OBSERVATION_BOUND)
        obs[:, 0] = 0.0
        obs[:, 1] = (n - np.arange(n + 1)) / n
        obs[0, 0] = 1.0
        self._obs_mat = obs
        self._k = 0
        self._rem = 1.0
        self._prev_ref = self._p0
        self._perm = 0.0
        self._is_bps = 0.0
        self._penalty = 0.0
        return obs[0], {"symbol": m.symbol, "start_utc": m.time(i0), "side": "buy" if side > 0 else "sell",
                        "quantity_base": qty, "arrival_price_quote": self._p0}

    def step(self, action):
        k = self._k
        n = self.time_horizon_bars
        if k >= n:
            raise RuntimeError("episode is over; call reset()")
        a = float(action[0])
        if not a > 0.0:  # also NaN
            a = 0.0
        elif a > 1.0:
            a = 1.0
        rem = self._rem
        q = rem if k == n - 1 else rem * a
        ref = self._ref[k]
        p0 = self._p0
        cost = self._side * rem * (ref - self._prev_ref) / p0
        if q > 0.0:
            cfg = self.impact
            rho = q * self._qty / self._vol[k]
            temp = cfg.eta * self._sd_day[k] * rho ** cfg.alpha * self._noise[k]
            cost += q * ref * (self._perm + self._half[k] + temp) / p0
            self._perm += cfg.gamma * self._sd_day[k] * q * self._qty / self._vday[k]
        rem -= q
        if rem < 1e-12:
            rem = 0.0
        penalty = self.risk_aversion_per_bps * rem * rem * self._sig_bps2[k]
        cost_bps = cost * 1e4
        self._is_bps += cost_bps
        self._penalty += penalty
        self._rem = rem
        self._prev_ref = ref
        self._k = k + 1
        obs = self._obs_mat[k + 1]
        obs[0] = rem
        terminated = k + 1 == n
        info = {"traded_fraction": q}
        if terminated:
            info["shortfall_bps"] = self._is_bps
            info["risk_penalty_bps"] = self._penalty
        return obs, -(cost_bps + penalty) / self.reward_scale_bps, terminated, False, info
