"""Cutting bars to a time range without losing symbols silently.

An explicitly requested symbol with no bar in ``[start, end]`` is an error naming it and why; a default
universe (every symbol of a source) drops such symbols and says which and why.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError, NoBarsInRangeError

log = logging.getLogger(__name__)


def _day_or_time(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def _why_empty(index: pd.DatetimeIndex, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> str:
    """Why a symbol has no bar in [lo, hi]: it starts after the end, ends before the start, or has a gap there."""
    if len(index) == 0:
        return "no bars at all"
    first, last = index.min(), index.max()
    if hi is not None and first > hi:
        return f"first bar {_day_or_time(first)}, after --end {_day_or_time(hi)}"
    if lo is not None and last < lo:
        return f"last bar {_day_or_time(last)}, before --start {_day_or_time(lo)}"
    before = index[index < lo].max() if lo is not None else first
    after = index[index > hi].min() if hi is not None else last
    return f"no bars between {_day_or_time(before)} and {_day_or_time(after)}, a gap covering the whole range"


def cut_to_range(bars: dict[str, pd.DataFrame], start: Any = None, end: Any = None, *,
                 explicit: bool = True, warmup_bars: int = 0) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Bars with open time in [start, end] (UTC, both inclusive and optional), and the symbols dropped.

    Parameters
    ----------
    warmup_bars
        also keep up to this many bars before each symbol's first bar at or after ``start``: the history the
        longest window of a computation needs, so its value at ``start`` is not NaN for want of it (the caller
        drops the rows before ``start`` from its output). Counted in the symbol's own bars, so a closed session
        (a weekend of a stock) is not counted.
    explicit
        the symbols were named by the user: one without bars in the range is an error. Otherwise (a
        default universe) it is dropped, and returned with the reason.

    Returns
    -------
    (bars, dropped): ``dropped`` maps each dropped symbol to why (``first bar 2023-05-05, after --end 2023-01-31``).

    Raises
    ------
    DataError
        for an unreadable ``start``/``end`` (named ``--start``/``--end``) or ``start`` after ``end``.
    NoBarsInRangeError
        when an explicitly requested symbol, or every symbol, has no bar in the range (naming each and why).
    """
    lo = to_utc(start, "--start") if start is not None else None
    hi = to_utc(end, "--end") if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"--start {lo} is after --end {hi}")
    if lo is None and hi is None:
        empty = {s: _why_empty(df.index, None, None) for s, df in bars.items() if len(df) == 0}
        kept = {s: df for s, df in bars.items() if s not in empty}
    else:
        kept, empty = {}, {}
        for s, df in bars.items():
            mask = pd.Series(True, index=df.index)
            if lo is not None:
                mask &= df.index >= lo
            if hi is not None:
                mask &= df.index <= hi
            if mask.any():
                keep = mask.to_numpy().copy()
                if warmup_bars > 0 and lo is not None:
                    first = int(keep.argmax())
                    keep[max(0, first - int(warmup_bars)):first] = True
                kept[s] = df[keep]
            else:
                empty[s] = _why_empty(pd.DatetimeIndex(df.index), lo, hi)
    window = f"[{_day_or_time(lo) if lo is not None else 'start'}, {_day_or_time(hi) if hi is not None else 'end'}]"
    if empty and (explicit or not kept):
        raise NoBarsInRangeError(empty, window)
    if empty:
        log.warning("dropped %d of %d symbols with no bars in %s: %s", len(empty), len(bars), window,
                    "; ".join(f"{s}: {why}" for s, why in empty.items()))
    return kept, empty
