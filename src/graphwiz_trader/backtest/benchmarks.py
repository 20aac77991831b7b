"""Benchmark target weights run through the same engine, costs and schedule as the strategy.

- buy-and-hold: 100% in one symbol (BTC/USDT on real data, the first symbol on synthetic), bought
  at the first decision and never rebalanced;
- equal weight: 1/n over the symbols with a complete trailing window at each decision;
- inverse volatility: weights proportional to 1/sigma over the same trailing window.

Each invests ``invested`` (default 1.0; the runner passes the strategy's ``1 - cash_buffer``) and
uses closes <= t only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError
from graphwiz_trader.portfolio.rolling import per_bar_returns


def pick_buy_and_hold_symbol(symbols: Sequence[str], preferred: str = "BTC/USDT") -> str:
    """``preferred`` when present, else the first symbol."""
    if not symbols:
        raise DataError("no symbols to choose a buy-and-hold benchmark from")
    return preferred if preferred in symbols else symbols[0]


def buy_and_hold_targets(close: pd.DataFrame, symbol: str, start: pd.Timestamp | None = None,
                         invested: float = 1.0) -> pd.DataFrame:
    """One decision row: ``invested`` in ``symbol`` at ``start`` (default: its first bar with a close)."""
    if symbol not in close.columns:
        raise DataError(f"buy-and-hold symbol {symbol} has no closes")
    have = close[symbol].dropna().index
    at = have[0] if start is None else have[have >= start][0]
    row = pd.DataFrame(0.0, index=pd.DatetimeIndex([at], name=close.index.name), columns=close.columns)
    row[symbol] = invested
    return row


def _window_ok(close: pd.DataFrame, window_bars: int) -> pd.DataFrame:
    r = per_bar_returns(close)
    return r.notna().rolling(window_bars, min_periods=window_bars).sum() >= window_bars


def equal_weight_targets(close: pd.DataFrame, decision_times: pd.DatetimeIndex, window_bars: int,
                         invested: float = 1.0) -> pd.DataFrame:
    """``invested / n`` over symbols with ``window_bars`` complete returns ending at each decision time."""
    ok = _window_ok(close, window_bars).reindex(decision_times).fillna(False).to_numpy(dtype=bool)
    n = ok.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ok, invested / np.where(n > 0, n, 1), 0.0)
    return pd.DataFrame(w, index=decision_times, columns=close.columns)


def inverse_vol_targets(close: pd.DataFrame, decision_times: pd.DatetimeIndex, window_bars: int,
                        invested: float = 1.0) -> pd.DataFrame:
    """Weights proportional to 1 / std of the ``window_bars`` returns ending at each decision time,
    summing to ``invested``."""
    r = per_bar_returns(close)
    sd = r.rolling(window_bars, min_periods=window_bars).std().reindex(decision_times).to_numpy()
    inv = np.where(np.isfinite(sd) & (sd > 0), 1.0 / np.where(sd > 0, sd, 1.0), 0.0)
    tot = inv.sum(axis=1, keepdims=True)
    w = np.where(tot > 0, invested * inv / np.where(tot > 0, tot, 1.0), 0.0)
    return pd.DataFrame(w, index=decision_times, columns=close.columns)
