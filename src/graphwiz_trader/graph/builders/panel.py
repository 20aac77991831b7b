"""Inputs of the graph builders: a close panel and its log returns, checked.

The builders accept either canonical bars (``dict[str, DataFrame]`` keyed by ``BTC/USDT``, see
:mod:`graphwiz_trader.data.bars`) or a ready close panel (UTC ``DatetimeIndex`` x symbol columns).
Both become one panel whose index is the sorted union of all bar times and whose columns are the
symbols in sorted order; an asset that has no bar at a time is NaN there (late listings, gaps).

Log return at row t: ``r[t] = log(close[t] / close[t-1])`` between consecutive rows of the panel;
NaN when either close is missing. The first row has no return and is dropped, so the return frame's
row t is labelled with the time of the bar whose close ends it. A window "in bars" is a number of
consecutive rows of this frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.data.universe import mask_values
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError

BarsOrPanel = Mapping[str, pd.DataFrame] | pd.DataFrame


def close_panel(data: BarsOrPanel, symbols: Sequence[str] | None = None, where: str = "bars") -> pd.DataFrame:
    """Closes as a ``datetime x symbol`` frame (sorted union index, sorted symbol columns).

    Parameters
    ----------
    data
        Canonical bars (``dict[symbol, DataFrame]`` with a ``close`` column) or a close panel.
    symbols
        Keep only these symbols (``None``: all). Unknown symbols raise :class:`UnknownSymbolError`.
    where
        Named in error messages.

    Raises
    ------
    UnknownSymbolError
        naming the requested symbols that ``data`` does not hold.
    DataError
        on a non-UTC or non-datetime index, duplicate or unsorted times, or non-positive closes.
    """
    if isinstance(data, pd.DataFrame):
        available = [str(c) for c in data.columns]
    elif isinstance(data, Mapping):
        available = [str(s) for s in data]
    else:
        raise DataError(f"{where}: expected bars (dict of symbol -> DataFrame) or a close panel DataFrame, "
                        f"got {type(data).__name__}")
    if symbols is not None:
        wanted = list(dict.fromkeys(symbols))
        missing = [s for s in wanted if s not in available]
        if missing:
            raise UnknownSymbolError(missing, where, sorted(available))
    else:
        wanted = available
    if not wanted:
        raise DataError(f"{where}: no symbols to build from")
    if isinstance(data, pd.DataFrame):
        panel = data[wanted].astype("float64")
        _check_index(panel.index, where)
    else:
        cols = {}
        for s in wanted:
            df = data[s]
            if "close" not in df.columns:
                raise DataError(f"{where}[{s}]: no 'close' column; found {', '.join(map(str, df.columns))}")
            _check_index(df.index, f"{where}[{s}]")
            cols[s] = df["close"].astype("float64")
        panel = pd.DataFrame(cols)
    panel = panel.reindex(columns=sorted(panel.columns))
    panel.index = pd.DatetimeIndex(panel.index).as_unit("ns")
    panel.index.name = "datetime"
    values = panel.to_numpy()
    bad = ~np.isnan(values) & (values <= 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{where}[{panel.columns[c]}]: non-positive close {values[r, c]!r} at {panel.index[r]}")
    return panel


def _check_index(index: pd.Index, where: str) -> None:
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"{where}: index must be a DatetimeIndex (bar open times), got {type(index).__name__}")
    if index.tz is None or str(index.tz) != "UTC":
        raise DataError(f"{where}: index must be tz-aware UTC, got tz={index.tz}")
    if index.has_duplicates:
        raise DataError(f"{where}: duplicate timestamps, first at {index[index.duplicated()][0]}")
    if not index.is_monotonic_increasing:
        raise DataError(f"{where}: timestamps are not sorted ascending")


def log_returns(panel: pd.DataFrame) -> pd.DataFrame:
    """Row-to-row log returns of a close panel, without its first row (see the module docstring)."""
    logp = np.log(panel.to_numpy())
    r = logp[1:] - logp[:-1]
    return pd.DataFrame(r, index=panel.index[1:], columns=panel.columns)


def window_ends(n_returns: int, window: int, stride: int, n_bars: int | None = None) -> np.ndarray:
    """Row positions (in the return frame) of the last return of each window.

    The first window ends at row ``window - 1``; the next ones every ``stride`` rows. Anchoring at the
    start keeps the schedule unchanged when data is appended (or truncated at the end).

    Raises
    ------
    DataError
        when ``window`` is longer than the data, naming both lengths.
    """
    if window > n_returns:
        bars = f" from {n_bars} bars" if n_bars is not None else ""
        raise DataError(f"window of {window} bars is longer than the data: {n_returns} returns{bars} "
                        f"(a window needs {window} returns, i.e. {window + 1} bars)")
    return np.arange(window - 1, n_returns, stride, dtype=np.int64)


def check_window_params(window: int, stride: int, min_periods: int) -> None:
    """Raise :class:`ConfigError` on a window, stride or min_periods that cannot work."""
    if int(window) != window or window < 3:
        raise ConfigError(f"window must be an integer >= 3 bars, got {window!r}")
    if int(stride) != stride or stride < 1:
        raise ConfigError(f"stride must be an integer >= 1 bar, got {stride!r}")
    if int(min_periods) != min_periods or not 3 <= min_periods <= window:
        raise ConfigError(f"min_periods must be an integer in [3, window={window}], got {min_periods!r}")


def members_at(members: pd.DataFrame, times: pd.DatetimeIndex, symbols: Sequence[str],
               where: str = "members") -> np.ndarray:
    """The membership mask (UTC bar times x symbols, booleans) as a ``(len(times), len(symbols))`` array.

    See :func:`graphwiz_trader.data.universe.mask_values` (a mask that does not cover the data is refused).

    Raises
    ------
    DataError
        on a non-UTC index, a missing time or symbol, or non-boolean values.
    """
    if isinstance(members, pd.DataFrame):
        tz = pd.DatetimeIndex(members.index).tz
        if tz is None or str(tz) != "UTC":
            raise DataError(f"{where}: index must be tz-aware UTC, got tz={tz}")
    return mask_values(members, times, symbols, where)
