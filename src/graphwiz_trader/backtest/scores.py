"""Point-in-time cross-sectional scores for real data, until model scores exist.

Both use closes at bars <= t only (the value at t never changes when later bars are added):

- ``xs_reversal_<k>bar``: ``-z_t``, where ``z_t`` is the cross-sectional z-score (mean 0, std 1
  over the symbols with a value at t) of the trailing ``k``-bar return ``close_t / close_{t-k} - 1``.
  Short-term losers are expected to bounce (the planted signal of the synthetic market is this score
  with k = 1).
- ``xs_momentum_<k>bar_skip<s>``: ``+z`` of the return from ``t-k`` to ``t-s`` (skipping the most
  recent ``s`` bars, which tend to reverse).

A symbol needs closes at both ends of the lookback (after forward-filling gaps) to get a score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.errors import ConfigError


def _zscore(x: pd.DataFrame) -> pd.DataFrame:
    mean = x.mean(axis=1)
    sd = x.std(axis=1, ddof=0)
    z = x.sub(mean, axis=0).div(sd.where(sd > 0), axis=0)
    return z


def cross_sectional_reversal(close: pd.DataFrame, lookback_bars: int = 1) -> pd.DataFrame:
    """``-zscore`` of the trailing ``lookback_bars`` return across symbols (see module docstring)."""
    if lookback_bars < 1:
        raise ConfigError(f"reversal lookback_bars must be >= 1, got {lookback_bars}")
    filled = close.ffill()
    ret = filled / filled.shift(lookback_bars) - 1.0
    return -_zscore(ret)


def cross_sectional_momentum(close: pd.DataFrame, lookback_bars: int = 168, skip_bars: int = 1) -> pd.DataFrame:
    """``+zscore`` of the return from ``t - lookback_bars`` to ``t - skip_bars`` across symbols."""
    if not 0 <= skip_bars < lookback_bars:
        raise ConfigError(f"momentum needs 0 <= skip_bars < lookback_bars, got {skip_bars}, {lookback_bars}")
    filled = close.ffill()
    ret = filled.shift(skip_bars) / filled.shift(lookback_bars) - 1.0
    return _zscore(ret)


def score_name(kind: str, lookback_bars: int, skip_bars: int = 0) -> str:
    """The name printed next to results, e.g. ``xs_reversal_24bar``."""
    if kind == "reversal":
        return f"xs_reversal_{lookback_bars}bar"
    if kind == "momentum":
        return f"xs_momentum_{lookback_bars}bar_skip{skip_bars}"
    raise ConfigError(f"unknown score kind {kind!r}; expected reversal or momentum")


def point_in_time_scores(close: pd.DataFrame, kind: str, lookback_bars: int, skip_bars: int = 0) -> pd.DataFrame:
    """Dispatch to :func:`cross_sectional_reversal` or :func:`cross_sectional_momentum`."""
    if kind == "reversal":
        out = cross_sectional_reversal(close, lookback_bars)
    elif kind == "momentum":
        out = cross_sectional_momentum(close, lookback_bars, skip_bars)
    else:
        raise ConfigError(f"unknown score kind {kind!r}; expected reversal or momentum")
    return out.replace([np.inf, -np.inf], np.nan)
