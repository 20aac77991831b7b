"""The canonical bar frame (symbol names live in :mod:`graphwiz_trader.core.symbols`).

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

