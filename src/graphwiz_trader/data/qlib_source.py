"""Qlib binary data as a bar source (``--format qlib --provider DIR --market csi300``).

Reads ``$open $high $low $close $volume`` of a market's instruments (every instrument that is a member at
some point of [start, end], by Qlib's ``instruments/<market>.txt``) or of named instruments, through Qlib's
own reader. Prices are as Qlib stores them (Qlib's CN data: adjusted by ``$factor``).

Qlib keeps one calendar for all instruments, so a suspended or not-yet-listed instrument has rows of NaN.
A row whose five fields are all NaN is a day without a bar: it is left out here and the validator reports it
as a gap on the market's calendar. A row with some fields NaN is kept, so the validator reports it.
The membership spans travel with the bars (:class:`QlibBars`), so that every stage can ask who is a member at t
(:func:`graphwiz_trader.data.universe.membership_mask`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.timeframes import to_qlib_freq
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)
FIELDS = ("$open", "$high", "$low", "$close", "$volume")
Spans = dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]


@dataclass(frozen=True)
class QlibBars:
    """Bars keyed by Qlib instrument code, the membership spans (UTC, inclusive), and per code the all-NaN rows
    left out between its first and last bar (suspended days; the validator reports them as gaps)."""

    bars: dict[str, pd.DataFrame]
    spans: Spans
    empty_rows: dict[str, int] = field(default_factory=dict)
    no_volume_days: dict[str, list[str]] = field(default_factory=dict)   # flat bars read as volume 0 (see below)


def _day(value: Any) -> str | None:
    return None if value is None else to_utc(value, "qlib range").strftime("%Y-%m-%d %H:%M:%S")


def read_qlib_bars(provider: str | Path, timeframe: str, market: str | None = None, symbols: list[str] | None = None,
                   start: Any = None, end: Any = None, region: str = "cn", warmup_bars: int = 0) -> QlibBars:
    """Bars of ``market``'s members (or of ``symbols``) from the Qlib data in ``provider``.

    Parameters
    ----------
    provider : Qlib data folder (``calendars/ instruments/ features/``).
    timeframe : ``1d`` (Qlib ``day``) or an intraday size (``1h`` -> ``60min``).
    market : an ``instruments/<market>.txt`` name (``csi300``); default ``all`` when no ``symbols``.
    symbols : Qlib codes (``SH600000``); with ``market`` too, they must be members at some point.
    start, end : UTC, inclusive; default: the calendar's ends. Members are those of [start, end].
    warmup_bars : also read up to this many calendar bars before ``start`` (history for the longest window).

    Raises
    ------
    DataError
        when the folder is not Qlib data, the market file does not exist, or nothing is in the range.
    UnknownSymbolError
        for codes that the data (or the market) does not hold.
    """
    from graphwiz_trader.data.qlib_runtime import init_qlib

    root = Path(provider).expanduser()
    for sub in ("calendars", "instruments", "features"):
        if not (root / sub).is_dir():
            raise DataError(f"{root} is not Qlib data: no {sub}/ folder (expected calendars/, instruments/, features/)")
    name = market or "all"
    if not (root / "instruments" / f"{name}.txt").is_file():
        have = sorted(p.stem for p in (root / "instruments").glob("*.txt"))
        raise DataError(f"no market {name!r} in {root / 'instruments'}; markets: {', '.join(have) or 'none'}")
    freq = to_qlib_freq(timeframe)
    init_qlib(root, region=region)
    from qlib.data import D

    try:
        cal = D.calendar(start_time=_day(start), end_time=_day(end), freq=freq)
    except (ValueError, KeyError, IndexError, FileNotFoundError) as exc:
        raise DataError(f"{root}: no {freq} calendar covering {start}..{end} ({exc})") from None
    if len(cal) == 0:
        raise DataError(f"{root}: the {freq} calendar has no bar in {start}..{end}")
    lo, hi = str(cal[0]), str(cal[-1])
    read_from = lo
    if warmup_bars > 0:
        before = D.calendar(end_time=lo, freq=freq)
        read_from = str(before[max(0, len(before) - 1 - warmup_bars)])
    spans_raw = D.list_instruments(D.instruments(name), start_time=lo, end_time=hi, freq=freq)
    spans: Spans = {c: [(to_utc(a, "span"), to_utc(b, "span")) for a, b in sp] for c, sp in spans_raw.items()}
    codes = sorted(spans)
    if symbols:
        wanted = [s.upper() for s in symbols]
        missing = [s for s in wanted if s not in spans]
        if missing:
            raise UnknownSymbolError(missing, f"Qlib market {name} in {root} ({lo[:10]}..{hi[:10]})", codes)
        codes = wanted
    if not codes:
        raise DataError(f"Qlib market {name} in {root} has no member in {lo[:10]}..{hi[:10]}")
    df = D.features(codes, list(FIELDS), start_time=read_from, end_time=hi, freq=freq)
    bars: dict[str, pd.DataFrame] = {}
    empty: dict[str, int] = {}
    no_volume: dict[str, list[str]] = {}
    for code, rows in df.groupby(level="instrument", sort=True):
        frame = rows.droplevel("instrument").rename(columns=lambda c: c.lstrip("$")).astype("float64")
        frame.index = pd.DatetimeIndex(frame.index, name="datetime").tz_localize("UTC")
        none = frame.isna().all(axis=1).to_numpy()
        if none.all():
            continue
        # leading/trailing all-NaN rows are days before listing or after delisting; inside ones are suspensions
        have = np.flatnonzero(~none)
        empty[str(code)] = int(none[have[0]:have[-1] + 1].sum())
        frame = frame[~none]
        flat = _flat_without_volume(frame)
        if flat.any():
            frame.loc[flat, "volume"] = 0.0
            no_volume[str(code)] = [str(t.date()) for t in frame.index[flat]]
        bars[str(code)] = frame
    lost = [c for c in codes if c not in bars]
    if symbols and lost:
        raise DataError(f"Qlib data in {root} holds no bar of {', '.join(lost)} in {lo[:10]}..{hi[:10]}")
    if lost:
        log.warning("%d of %d members of %s have no bar in %s..%s: %s", len(lost), len(codes), name, lo[:10],
                    hi[:10], ", ".join(lost[:8]) + (" ..." if len(lost) > 8 else ""))
    if no_volume:
        log.warning("Qlib data in %s: %d flat bar(s) (open = high = low = close) with no volume, read as suspended "
                    "days (volume 0, no order fills): %s", root, sum(map(len, no_volume.values())),
                    "; ".join(f"{c} {', '.join(d[:3])}{' ...' if len(d) > 3 else ''}" for c, d in no_volume.items()))
    log.info("read %d instruments of Qlib market %s (%s, %s..%s) from %s", len(bars), name, freq, lo[:10], hi[:10], root)
    return QlibBars(bars, {c: spans[c] for c in bars}, empty, no_volume)


def _flat_without_volume(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose volume is NaN while open, high, low and close are one finite price.

    Qlib's CN data marks a suspended day with an unchanged price and volume 0; a few of those days carry NaN
    instead of 0 (SZ000629 on 2017-05-19, between days of volume 0). Such a row is a day without trades, and is
    read as volume 0. A NaN volume on a bar that moved is left as it is, and the validator refuses it."""
    o, h, lo, c = (frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close"))
    v = frame["volume"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isnan(v) & np.isfinite(c) & (o == c) & (h == c) & (lo == c)
