"""UTC timestamps: one parser for every place that reads a time from a user, a file or the store."""

from __future__ import annotations

from typing import Any

import pandas as pd

from graphwiz_trader.errors import DataError


def to_utc(value: Any, where: str = "timestamp", *, naive: str = "utc") -> pd.Timestamp:
    """A tz-aware ``pd.Timestamp`` in UTC.

    Parameters
    ----------
    value
        a ``Timestamp``, ``datetime``, ISO string (``2024-01-31``, ``2024-01-31T12:00Z``) or epoch
        nanoseconds (pandas' reading of a bare integer).
    where
        what the value is (``--start``, a column name, ...); it is named in the error.
    naive
        ``"utc"`` takes naive values as UTC; ``"error"`` refuses them (stores that must not guess).

    Raises
    ------
    DataError
        when ``value`` cannot be read as a time, is NaT, or is naive while ``naive="error"``.
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{where}: {value!r} is not a valid timestamp ({exc}); "
                        "expected e.g. 2024-01-31 or 2024-01-31T12:00Z") from None
    if ts is pd.NaT:
        raise DataError(f"{where}: timestamp is missing (NaT)")
    if ts.tzinfo is None:
        if naive == "error":
            raise DataError(f"{where}: timestamp {ts} is naive; pass a tz-aware UTC time")
        return ts.tz_localize("UTC")
    return ts.tz_convert("UTC")
