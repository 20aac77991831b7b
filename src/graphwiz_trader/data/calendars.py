"""Trading calendars: which bar open times a market has, so that closed sessions are not gaps.

A calendar is named ``24/7`` (crypto: every bar of the timeframe's UTC grid exists) or by an
exchange's ISO MIC as ``exchange_calendars`` knows it (``XNYS`` New York, ``XSHG`` Shanghai, ``XLON``...).

For an exchange calendar the expected bars are:

- daily bars (``1d``): one per session, stamped at the session's date, 00:00 UTC;
- intraday bars (``1h``, ``15m``...): the bars of each session counted from its open
  (``exchange_calendars``' ``trading_index``: XNYS hourly bars open 14:30, 15:30 ... 20:30 UTC in winter);
  a lunch break (XSHG) starts a new run of bars at the afternoon open.

A bar whose open time is not an expected one is ``off_calendar`` (an error: the data belongs to another
market or timezone). An expected bar with none in the data, between a symbol's first and last bar, is a gap.

The default calendar is inferred from the source and stated (see :func:`infer_calendar`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import quote_of
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.errors import DataError

log = logging.getLogger(__name__)
ALWAYS_OPEN = "24/7"
# Qlib's regions -> the exchange whose sessions Qlib's day calendar holds
REGION_CALENDARS = {"cn": "XSHG", "us": "XNYS"}
DEFAULT_EQUITY_CALENDAR = "XNYS"


def calendar_names() -> list[str]:
    """Every name :func:`expected_opens` accepts: ``24/7`` and the exchange calendars' MIC codes."""
    import exchange_calendars as xc

    return sorted({ALWAYS_OPEN, *(n for n in xc.get_calendar_names() if n.isupper() and "/" not in n)})


def check_calendar(name: str) -> str:
    """``name`` upper-cased when it is a known calendar, else a :class:`DataError` listing a few.

    Raises
    ------
    DataError
        for an unknown name (``XNSY`` -> did you mean ``XNYS``?).
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"calendar must be a name such as 'XNYS', 'XSHG' or '24/7', got {name!r}")
    key = name.strip().upper()
    if key == ALWAYS_OPEN:
        return key
    names = calendar_names()
    if key not in names:
        import difflib

        close = difflib.get_close_matches(key, names, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DataError(f"unknown trading calendar {name!r}{hint} (known: '24/7', 'XNYS', 'XSHG', 'XLON', ... "
                        f"{len(names)} in all; see exchange_calendars.get_calendar_names())")
    return key


@functools.lru_cache(maxsize=16)
def _exchange_calendar(name: str, first_year: int, last_year: int):  # type: ignore[no-untyped-def]
    import exchange_calendars as xc

    try:
        return xc.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    except (ValueError, KeyError) as exc:  # dates before the calendar's earliest, or an unknown name
        raise DataError(f"trading calendar {name} cannot cover {first_year}..{last_year}: {exc}") from None


def expected_opens(calendar: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The bar open times (UTC) that ``calendar`` has for ``timeframe`` in ``[start, end]``.

    Parameters
    ----------
    calendar : ``24/7`` or an exchange MIC (``XNYS``).
    timeframe : ccxt-style bar size (``1h``, ``1d``).
    start, end : UTC timestamps, inclusive.

    Raises
    ------
    DataError
        for an unknown calendar, a range the calendar cannot cover, or a bar size that sessions cannot hold
        (weekly bars and other multi-day sizes on an exchange calendar).
    """
    name = check_calendar(calendar)
    step = timeframe_delta(timeframe)
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    if name == ALWAYS_OPEN:
        first = start.floor(step) if step <= pd.Timedelta(days=1) else start
        if first < start:
            first += step
        return pd.date_range(first, end, freq=step, name="datetime")
    cal = _exchange_calendar(name, start.year - 1, end.year + 1)
    if step == pd.Timedelta(days=1):
        sessions = cal.sessions_in_range(start.tz_localize(None).normalize(), end.tz_localize(None).normalize())
        return pd.DatetimeIndex(sessions.tz_localize("UTC"), name="datetime")
    if step > pd.Timedelta(days=1):
        raise DataError(f"timeframe {timeframe} has no bars on the {name} calendar (daily or shorter only)")
    first_day, last_day = start.tz_localize(None).normalize(), end.tz_localize(None).normalize()
    sessions = cal.sessions_in_range(first_day - pd.Timedelta(days=1), last_day)
    if len(sessions) == 0:
        return pd.DatetimeIndex([], tz="UTC", name="datetime")
    idx = cal.trading_index(sessions[0], sessions[-1], period=step, intervals=False, force=True)
    idx = pd.DatetimeIndex(idx).tz_convert("UTC")
    return pd.DatetimeIndex(idx[(idx >= start) & (idx <= end)], name="datetime")


def bars_per_year(calendar: str, timeframe: str) -> float:
    """Bars in a year of ``calendar`` (for annualising): 8,760 hourly bars on ``24/7``; the bars of a year of
    sessions on an exchange (XNYS 2023: 250 daily bars, 1,744 hourly ones)."""
    name = check_calendar(calendar)
    step = timeframe_delta(timeframe)
    if name == ALWAYS_OPEN:
        return float(pd.Timedelta(days=365) / step)
    year = expected_opens(name, timeframe, pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-12-31 23:59", tz="UTC"))
    return float(len(year))


def calendar_issues(index: pd.DatetimeIndex, calendar: str, timeframe: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Where sorted unique bar open times ``index`` (UTC) disagree with ``calendar``.

    Returns
    -------
    (off, missing): a boolean mask over ``index`` of bars that are not expected opens, and the expected
    opens between the first and last bar that have no bar (the gaps).
    """
    if len(index) == 0:
        return np.zeros(0, dtype=bool), pd.DatetimeIndex([], tz="UTC")
    want = expected_opens(calendar, timeframe, index[0], index[-1])
    off = ~index.isin(want)
    missing = want[~want.isin(index)]
    return np.asarray(off), missing


def infer_calendar(fmt: str, symbols: Iterable[str], region: str | None = None) -> tuple[str, str]:
    """The default calendar of a source and why, e.g. ``("24/7", "crypto pairs (BASE/QUOTE)")``.

    - ``synthetic``, ``freqtrade`` (crypto exchanges) and any universe of ``BASE/QUOTE`` pairs: ``24/7``;
    - ``qlib``: the region's exchange (``cn`` -> XSHG, ``us`` -> XNYS);
    - codes without a quote currency (``AAPL``) from CSV or the store: XNYS, stated, since the files do not say.
    """
    syms = list(symbols)
    if fmt == "qlib":
        reg = (region or "cn").lower()
        if reg not in REGION_CALENDARS:
            raise DataError(f"no trading calendar known for Qlib region {region!r}; pass --calendar")
        return REGION_CALENDARS[reg], f"Qlib region {reg}"
    if fmt in ("synthetic", "freqtrade") or not syms or all(quote_of(s) is not None for s in syms):
        return ALWAYS_OPEN, "crypto pairs (BASE/QUOTE) trade around the clock" if syms else "no symbols"
    if all(quote_of(s) is None for s in syms):
        return DEFAULT_EQUITY_CALENDAR, "instrument codes without a quote currency; pass --calendar for another exchange"
    mixed = sorted(s for s in syms if quote_of(s) is None)[:3]
    raise DataError(f"the universe mixes crypto pairs and codes without a quote currency ({', '.join(mixed)} ...); "
                    "pass --calendar to say which market's sessions apply")
