"""Point-in-time universes: which instruments exist at t, from Qlib's ``instruments/<market>.txt``.

A Qlib instruments file has one membership span per line, tab-separated::

    SH600000<TAB>2008-01-02<TAB>2020-09-25

An instrument may have several lines (it left the index and came back). Both dates are trading days and
both are inside the span (the instrument is a member from the first day to the last day, inclusive).

:func:`membership_mask` turns the spans into a boolean ``(datetime x instrument)`` frame on a calendar:
True where the instrument is a member on that bar's date. Features, the graph builders, the portfolio
optimiser and the backtest runner take such a frame (``members`` / ``universe``) so that an instrument
exists at t only while it is a member at t. :func:`mask_values` aligns a mask to other rows and columns,
refusing one that does not cover them (never filled).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Spans = dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]


def instruments_file(source: str | Path, market: str | None = None) -> Path:
    """The instruments file: ``source`` itself, or ``source/instruments/<market>.txt`` for a Qlib provider folder.

    Raises
    ------
    ConfigError
        when the file does not exist (naming the path), or a folder is given without ``market``.
    """
    p = Path(source).expanduser()
    if p.is_dir():
        if not market:
            raise ConfigError(f"{p} is a folder: name the market (e.g. csi300) to read {p}/instruments/<market>.txt")
        p = p / "instruments" / f"{market.lower()}.txt"
        if not p.is_file():
            folder = p.parent
            have = sorted(x.stem for x in folder.glob("*.txt")) if folder.is_dir() else []
            raise ConfigError(f"no instruments file for market {market!r}: {p} does not exist"
                              + (f" (markets there: {', '.join(have)})" if have else ""))
        return p
    if market is not None and p.suffix != ".txt":
        raise ConfigError(f"{p}: expected a Qlib provider folder or an instruments/<market>.txt file")
    if not p.is_file():
        raise ConfigError(f"instruments file {p} does not exist")
    return p


def read_instruments(source: str | Path, market: str | None = None) -> Spans:
    """Membership spans per instrument code (upper case), each ``(first day, last day)`` inclusive.

    Parameters
    ----------
    source
        An instruments file, or a Qlib provider folder (with ``market``).
    market
        The market name (``csi300``) when ``source`` is a folder.

    Raises
    ------
    DataError
        naming the file and line of a malformed line or a span whose end is before its start.
    """
    path = instruments_file(source, market)
    spans: Spans = {}
    for no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 3:
            raise DataError(f"{path}:{no}: expected 'CODE<TAB>START<TAB>END', got {line!r}")
        code = parts[0].strip().upper()
        try:
            a, b = pd.Timestamp(parts[1].strip()), pd.Timestamp(parts[2].strip())
        except ValueError as exc:
            raise DataError(f"{path}:{no}: bad date in {line!r}: {exc}") from None
        if not code or b < a:
            raise DataError(f"{path}:{no}: span ends before it starts (or no code): {line!r}")
        spans.setdefault(code, []).append((a, b))
    if not spans:
        raise DataError(f"{path}: no membership spans")
    return spans


def membership_mask(source: str | Path | Spans, calendar: pd.DatetimeIndex, columns: Sequence[str],
                    market: str | None = None) -> pd.DataFrame:
    """The point-in-time universe on a calendar: True where the instrument is a member on that bar's date.

    Parameters
    ----------
    source
        A Qlib instruments file, a Qlib provider folder (with ``market``), or spans from :func:`read_instruments`.
    calendar
        Bar times (rows of the result). Tz-naive times are taken as dates as they are; tz-aware ones by
        their UTC date (daily Qlib bars are stamped at midnight, so both give the trading day).
    columns
        Instrument codes (``SH600000``), matched to the file's codes case-insensitively. A code the file never
        lists is never a member (an all-False column; logged).
    market
        The market name when ``source`` is a folder.

    Returns
    -------
    DataFrame
        Booleans, index ``calendar``, columns ``columns`` (in the given order).
    """
    spans = source if isinstance(source, dict) else read_instruments(source, market)
    cal = pd.DatetimeIndex(calendar)
    days = (cal.tz_convert("UTC").tz_localize(None) if cal.tz is not None else cal).normalize()
    day_ns = days.as_unit("ns").asi8
    cols = [str(c) for c in columns]
    mask = np.zeros((len(cal), len(cols)), dtype=bool)
    never: list[str] = []
    for k, c in enumerate(cols):
        sp = spans.get(c.upper())
        if not sp:
            never.append(c)
            continue
        for a, b in sp:
            mask[:, k] |= (day_ns >= pd.Timestamp(a).as_unit("ns").value) & (day_ns <= pd.Timestamp(b).as_unit("ns").value)
    if never:
        log.info("universe: %d of %d instruments are never members: %s%s", len(never), len(cols),
                 ", ".join(never[:10]), " ..." if len(never) > 10 else "")
    return pd.DataFrame(mask, index=calendar, columns=pd.Index(cols, name="instrument"))


def mask_values(members: pd.DataFrame, times: pd.DatetimeIndex, symbols: Sequence[str],
                where: str = "members") -> np.ndarray:
    """A membership mask as a ``(len(times), len(symbols))`` boolean array.

    Parameters
    ----------
    members
        Booleans, rows = bar times, columns = symbols; every one of ``times`` and ``symbols`` must be there
        (a mask that does not cover the data is refused, never filled). Its index must have the time zone
        of ``times``.
    times, symbols
        Rows and columns wanted.
    where
        Named in error messages.

    Raises
    ------
    DataError
        naming the first missing time, the missing symbols, a time-zone mismatch or non-boolean values.
    """
    if not isinstance(members, pd.DataFrame):
        raise DataError(f"{where}: expected a DataFrame of booleans (times x symbols), got {type(members).__name__}")
    idx = pd.DatetimeIndex(members.index)
    want = pd.DatetimeIndex(times)
    if (idx.tz is None) != (want.tz is None) or (idx.tz is not None and str(idx.tz) != str(want.tz)):
        raise DataError(f"{where}: index time zone {idx.tz} differs from the data's {want.tz}")
    missing = [s for s in symbols if s not in members.columns]
    if missing:
        raise DataError(f"{where}: no membership column for {', '.join(map(str, missing[:5]))}"
                        f"{' ...' if len(missing) > 5 else ''} ({len(missing)} symbols)")
    pos = idx.as_unit("ns").get_indexer(want.as_unit("ns"))
    if (pos < 0).any():
        raise DataError(f"{where}: no membership row for {want[int(np.flatnonzero(pos < 0)[0])]}")
    block = members.loc[:, list(symbols)]
    if not all(pd.api.types.is_bool_dtype(t) for t in block.dtypes):
        raise DataError(f"{where}: values must be booleans (True = member), got {sorted(map(str, set(block.dtypes)))}")
    return block.to_numpy(dtype=bool)[pos]
