"""Timeframe names: ccxt/freqtrade (``1h``, ``1d``, ``15m``) and Qlib (``60min``, ``day``)."""

from __future__ import annotations

import re

import pandas as pd

from graphwiz_trader.errors import TimeframeError

_TF_RE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MIN = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def timeframe_minutes(timeframe: str) -> int:
    """Minutes per bar of a ccxt-style timeframe (``1h`` -> 60)."""
    m = _TF_RE.match(timeframe)
    if not m:
        raise TimeframeError(f"unknown timeframe {timeframe!r}; expected e.g. '1m', '15m', '1h', '4h', '1d'")
    return int(m.group(1)) * _UNIT_MIN[m.group(2)]


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """Bar length as a Timedelta."""
    return pd.Timedelta(minutes=timeframe_minutes(timeframe))


def to_qlib_freq(timeframe: str) -> str:
    """ccxt timeframe -> Qlib freq: ``1d`` -> ``day``, ``1h`` -> ``60min``, ``15m`` -> ``15min``."""
    minutes = timeframe_minutes(timeframe)
    if minutes == 1440:
        return "day"
    if minutes < 1440:
        return f"{minutes}min"
    raise TimeframeError(f"timeframe {timeframe!r} has no Qlib frequency (only intraday and daily bars)")


def from_qlib_freq(freq: str) -> str:
    """Qlib freq -> ccxt timeframe: ``day`` -> ``1d``, ``60min`` -> ``1h``."""
    if freq == "day":
        return "1d"
    m = re.match(r"^(\d+)min$", freq)
    if not m:
        raise TimeframeError(f"unknown qlib freq {freq!r}; expected 'day' or '<N>min' (hourly is '60min')")
    minutes = int(m.group(1))
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def qlib_freq_is_valid(freq: str) -> bool:
    return freq == "day" or re.match(r"^\d+min$", freq) is not None


def infer_timeframe(index: pd.DatetimeIndex) -> str:
    """The bar size of a bar index as a ccxt timeframe (the most common spacing)."""
    if len(index) < 2:
        raise TimeframeError("need at least two bars to infer the timeframe")
    d = pd.Series(index.asi8).diff().dropna()
    minutes = int(d.mode().iloc[0] // 60_000_000_000)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"
