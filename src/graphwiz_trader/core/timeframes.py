"""Timeframe names: ccxt/freqtrade (``1h``, ``1d``, ``15m``) and Qlib (``60min``, ``day``)."""

from __future__ import annotations

import re

import pandas as pd

from graphwiz_trader.errors import TimeframeError

_TF_RE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MIN = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def _timeframe_hint(text: object) -> str:
    """``; did you mean '1h'?`` for ``1H`` (ccxt names are lower-case) or ``60min`` (a Qlib name)."""
    if not isinstance(text, str):
        return ""
    t = text.strip()
    if t.endswith("M"):  # ccxt's month candles ('1M'), not minutes
        return "; monthly bars ('1M') are not supported"
    if _TF_RE.match(t.lower()) and int(t[:-1] or 0) > 0:
        return f"; did you mean {t.lower()!r}? (timeframes are lower-case)"
    m = re.match(r"^(\d+)min$", t) if t != "day" else None
    if t == "day" or (m and int(m.group(1)) > 0):
        return f"; did you mean {from_qlib_freq(t)!r}? ({t!r} is a Qlib frequency name)"
    return ""


def timeframe_minutes(timeframe: str) -> int:
    """Minutes per bar of a ccxt-style timeframe (``1h`` -> 60).

    Raises
    ------
    TimeframeError
        for anything else (``1H``, ``60min``, ``0h``), with the accepted forms and a suggestion when one fits.
    """
    m = _TF_RE.match(timeframe) if isinstance(timeframe, str) else None
    if not m or int(m.group(1)) == 0:
        raise TimeframeError(f"unknown timeframe {timeframe!r}; expected e.g. '1m', '15m', '1h', '4h', '1d'"
                             + _timeframe_hint(timeframe))
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
    m = re.match(r"^(\d+)min$", freq) if isinstance(freq, str) else None
    if not m or int(m.group(1)) == 0:
        hint = ""
        if isinstance(freq, str) and _TF_RE.match(freq.lower()) and not freq.lower().endswith("w"):
            try:
                hint = f"; did you mean {to_qlib_freq(freq.lower())!r}?"
            except TimeframeError:
                hint = ""
        raise TimeframeError(f"unknown qlib freq {freq!r}; expected 'day' or '<N>min' (hourly is '60min'){hint}")
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
