"""The canonical bar frame and symbol names.

Bars are ``dict[str, DataFrame]`` keyed by symbol (``BTC/USDT``); each frame has a tz-aware UTC
``DatetimeIndex`` named ``datetime`` (the bar's open time) and float64 columns
``open high low close volume`` (volume in base-asset units).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError

OHLCV = ["open", "high", "low", "close", "volume"]
_TIME_COLUMNS = ("datetime", "date", "timestamp", "time", "open_time")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTC/USDT`` -> (``BTC``, ``USDT``). Raises ``DataError`` on a malformed symbol."""
    parts = symbol.split("/")
    if len(parts) != 2 or not all(parts) or not all(p.replace("-", "").isalnum() for p in parts):
        raise DataError(f"malformed symbol {symbol!r}; expected BASE/QUOTE such as 'BTC/USDT'")
    return parts[0].upper(), parts[1].upper()


def file_stem(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT`` (freqtrade's and the store's file stem)."""
    base, quote = split_symbol(symbol)
    return f"{base}_{quote}"


def symbol_from_stem(stem: str) -> str:
    """``BTC_USDT`` -> ``BTC/USDT``."""
    base, _, quote = stem.partition("_")
    if not base or not quote:
        raise DataError(f"cannot read a symbol from file stem {stem!r}; expected BASE_QUOTE")
    return f"{base}/{quote}"


def to_qlib_instrument(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT``: Qlib instrument codes cannot hold a slash."""
    base, quote = split_symbol(symbol)
    return f"{base}{quote}"


def parse_symbols(text: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Comma-separated ``BTC/USDT,ETH/USDT`` (or a list) -> validated list; ``None`` stays ``None``."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [s.strip().upper() for s in items if s.strip()]
    for s in out:
        split_symbol(s)
    return out


def normalize_bars(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Coerce a raw OHLCV table to the canonical frame without reordering or dropping rows.

    The time column may be ``date``/``timestamp``/... (datetimes, ISO strings, or epoch milliseconds)
    or the index. Naive times are taken as UTC. Rows are kept as they are (order, duplicates, NaNs)
    so that the validator can report them.

    Raises
    ------
    DataError
        naming ``where`` when columns are missing or times/values cannot be parsed.
    """
    df = raw.copy()
    df.columns = [str(c).strip().lower() for c in df.columns]
    time_col = next((c for c in _TIME_COLUMNS if c in df.columns), None)
    if time_col is not None:
        times = df.pop(time_col)
    elif isinstance(df.index, pd.DatetimeIndex):
        times = df.index.to_series()
    else:
        raise DataError(f"{where}: no time column (expected one of {', '.join(_TIME_COLUMNS)})")
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    try:
        if pd.api.types.is_numeric_dtype(times):
            idx = pd.to_datetime(np.asarray(times, dtype="int64"), unit="ms", utc=True)
        else:
            idx = pd.to_datetime(times, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: cannot parse timestamps in column {time_col or 'index'}: {exc}") from None
    out = pd.DataFrame(index=pd.DatetimeIndex(idx, name="datetime"))
    for c in OHLCV:
        col = pd.to_numeric(pd.Series(np.asarray(df[c]), index=out.index), errors="coerce")
        bad = col.isna() & pd.Series(np.asarray(df[c]), index=out.index).notna()
        if bad.any():
            first = out.index[bad.to_numpy()][:3]
            raise DataError(f"{where}: non-numeric {c} at {', '.join(map(str, first))}")
        out[c] = col.astype("float64")
    return out


def to_utc(ts: pd.Timestamp | str | int | float) -> pd.Timestamp:
    """A timestamp in UTC: naive values are taken as UTC, aware ones converted."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
