"""The canonical bar frame (symbol names live in :mod:`graphwiz_trader.core.symbols`).

Bars are ``dict[str, DataFrame]`` keyed by symbol (``BTC/USDT``); each frame has a tz-aware UTC
``DatetimeIndex`` named ``datetime`` (the bar's open time) and float64 columns
``open high low close volume`` (volume in base-asset units).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError

log = logging.getLogger(__name__)
OHLCV = ["open", "high", "low", "close", "volume"]
_TIME_COLUMNS = ("datetime", "date", "timestamp", "time", "open_time")
# Epoch units by magnitude: |t| below the bound reads as that unit. Any date from 1973 to 5138 has one
# reading only (1e11 s is the year 5138; 1e11 ms is March 1973), and likewise one step up each time.
_EPOCH_UNITS: tuple[tuple[float, str, str], ...] = (
    (1e11, "s", "seconds"), (1e14, "ms", "milliseconds"), (1e17, "us", "microseconds"), (np.inf, "ns", "nanoseconds"),
)


def epoch_unit(values: np.ndarray, where: str) -> str:
    """The unit (``s``, ``ms``, ``us``, ``ns``) of epoch timestamps ``values``, detected from their magnitude.

    Raises
    ------
    DataError
        naming ``where`` when values are missing, or when rows disagree on the unit (a file mixing
        seconds and milliseconds), with the first row of each.
    """
    v = np.abs(np.asarray(values, dtype="float64"))
    if np.isnan(v).any():
        raise DataError(f"{where}: {int(np.isnan(v).sum())} missing epoch timestamp(s), first at row "
                        f"{int(np.flatnonzero(np.isnan(v))[0])}")
    bounds = np.array([b for b, _, _ in _EPOCH_UNITS])
    which = np.searchsorted(bounds, v, side="right")
    kinds = np.unique(which)
    if len(kinds) > 1:
        firsts = ", ".join(f"{_EPOCH_UNITS[k][2]} at row {int(np.flatnonzero(which == k)[0])}" for k in kinds)
        raise DataError(f"{where}: epoch timestamps mix units ({firsts}); use one unit for the whole column")
    return _EPOCH_UNITS[int(kinds[0])][1] if len(kinds) else "ms"


def normalize_bars(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Coerce a raw OHLCV table to the canonical frame without reordering or dropping rows.

    The time column may be ``date``/``timestamp``/... (datetimes, ISO strings, or epoch numbers in
    seconds, milliseconds, microseconds or nanoseconds: the unit is detected from their magnitude and
    logged at DEBUG) or the index. Naive times are taken as UTC. Rows are kept as they are (order, duplicates, NaNs)
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
        if pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_bool_dtype(times):
            numbers = np.asarray(times)
            unit = epoch_unit(numbers, where)
            names = {u: name for _, u, name in _EPOCH_UNITS}
            log.debug("%s: epoch timestamps in column %s read as %s (from their magnitude)", where,
                      time_col or "index", names[unit])
            if np.issubdtype(numbers.dtype, np.integer) or np.all(numbers == np.floor(numbers)):
                idx = pd.to_datetime(numbers.astype("int64"), unit=unit, utc=True)
            else:
                idx = pd.to_datetime(numbers.astype("float64"), unit=unit, utc=True)
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

