"""The one data-sanity validator every path goes through.

Checks, per symbol: duplicate timestamps, out-of-order timestamps, NaNs, non-finite values (``inf``),
non-positive prices, negative volume, OHLC inconsistency, and bars that do not match the declared
timeframe (the most common spacing differs from the bar length, or open times off the timeframe's
UTC grid) are errors; gaps and extreme jumps are warnings. It returns a report; in strict mode it
raises :class:`DataValidationError` naming the symbol and the first offending timestamps. It never
changes data. Filling is explicit: :func:`fill_gaps`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.data.calendars import ALWAYS_OPEN, calendar_issues
from graphwiz_trader.core.timeframes import timeframe_delta
from graphwiz_trader.errors import DataValidationError

log = logging.getLogger(__name__)
Severity = Literal["error", "warning"]
_SHOW = 5


@dataclass(frozen=True)
class Issue:
    """One kind of problem in one symbol's bars."""

    kind: str
    severity: Severity
    count: int
    first: tuple[str, ...]
    detail: str = ""

    def __str__(self) -> str:
        at = f" first at {', '.join(self.first)}" if self.first else ""
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}: {self.count}{extra}{at}"


@dataclass(frozen=True)
class SymbolReport:
    symbol: str
    rows: int
    start: str | None
    end: str | None
    issues: tuple[Issue, ...] = ()
    missing_bars: int = 0
    largest_gap: str | None = None

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ValidationReport:
    """Per-symbol findings. ``ok`` is True when no symbol has an error (warnings allowed)."""

    timeframe: str
    symbols: tuple[SymbolReport, ...] = field(default_factory=tuple)
    calendar: str = ALWAYS_OPEN

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.symbols)

    def __getitem__(self, symbol: str) -> SymbolReport:
        for s in self.symbols:
            if s.symbol == symbol:
                return s
        raise KeyError(symbol)

    def to_dict(self) -> dict:
        return {
            "timeframe": self.timeframe,
            "calendar": self.calendar,
            "ok": self.ok,
            "symbols": [
                {**asdict(s), "ok": s.ok, "issues": [asdict(i) for i in s.issues]} for s in self.symbols
            ],
        }

    def summary(self) -> str:
        lines = []
        for s in self.symbols:
            state = "OK" if s.ok else "ERROR"
            gap = f", {s.missing_bars} missing bars (largest gap {s.largest_gap})" if s.missing_bars else ""
            lines.append(f"{s.symbol}: {state} {s.rows} rows {s.start} .. {s.end}{gap}")
            lines.extend(f"    [{i.severity}] {i}" for i in s.issues)
        return "\n".join(lines)


def _stamps(index: pd.DatetimeIndex, mask: np.ndarray) -> tuple[str, ...]:
    return tuple(str(t) for t in index[mask][:_SHOW])


_DAY_NS = 86_400 * 10**9
_MONDAY_NS = 4 * _DAY_NS  # 1970-01-05 00:00 UTC, the first Monday after the epoch (weekly candles open Mondays)


def _grid_offset(step: int) -> int | None:
    """Where the timeframe's grid starts (ns since the epoch), or None when exchanges disagree on it.

    Bars that divide a day (``15m``, ``1h``, ``4h``, ``1d``) open on multiples of the bar length from
    00:00 UTC; weekly bars open on Mondays 00:00 UTC. Other multi-day bars (``3d``) have no common grid.
    """
    if _DAY_NS % step == 0:
        return 0
    if step == 7 * _DAY_NS:
        return _MONDAY_NS
    return None


def _timeframe_issues(uniq: np.ndarray, step: int, timeframe: str) -> list[Issue]:
    """Errors when sorted unique open times ``uniq`` (ns) do not belong to ``timeframe`` (bar length ``step`` ns).

    - ``timeframe_mismatch``: the most common spacing between bars is not the bar length (hourly candles
      declared ``4h`` are 1h apart; daily candles in a ``-1h`` file are 1 day apart). Gaps alone do not
      trigger it: they make some spacings longer, not the most common one (with three bars or more).
    - ``misaligned``: open times off the timeframe's UTC grid (a ``4h`` bar at 01:00).
    """
    out: list[Issue] = []
    if len(uniq) > 1:
        d = np.diff(uniq)
        values, counts = np.unique(d, return_counts=True)
        mode = int(values[np.argmax(counts)])  # ties resolve to the shorter spacing
        # a longer spacing needs two bar-to-bar steps to tell "another timeframe" from one gap
        if mode < step or (mode > step and len(d) >= 2):
            wrong = np.r_[d != step]
            where = pd.DatetimeIndex(uniq[1:][wrong], tz="UTC")
            out.append(Issue(
                "timeframe_mismatch", "error", int(wrong.sum()), tuple(str(t) for t in where[:_SHOW]),
                f"declared timeframe {timeframe}: expected {pd.Timedelta(step)} between bars, found "
                f"{pd.Timedelta(mode)} ({int(counts.max())} of {len(d)} spacings); "
                f"the bars belong to another timeframe"))
    offset = _grid_offset(step)
    if offset is not None:
        off = (uniq - offset) % step != 0
        if off.any():
            where = pd.DatetimeIndex(uniq[off], tz="UTC")
            out.append(Issue("misaligned", "error", int(off.sum()), tuple(str(t) for t in where[:_SHOW]),
                             f"open times not on the {timeframe} grid (multiples of {pd.Timedelta(step)} "
                             f"from {'Monday ' if offset else ''}00:00 UTC)"))
    return out


def _grid_issues(uniq: np.ndarray, step: int, timeframe: str) -> tuple[list[Issue], int, str | None]:
    """Timeframe, grid and gap findings for a market open around the clock (every grid bar exists)."""
    issues = _timeframe_issues(uniq, step, timeframe)
    missing_bars, largest = 0, None
    mismatch = any(i.kind == "timeframe_mismatch" for i in issues)
    if len(uniq) > 1 and not mismatch:  # bars of another timeframe have no meaningful gaps
        d = np.diff(uniq)
        gaps = d > step
        if gaps.any():
            missing_bars = int(((d[gaps] // step) - 1).sum())
            largest = str(pd.Timedelta(int(d.max()), unit="ns"))
            gap_starts = pd.DatetimeIndex(uniq[:-1][gaps], tz="UTC")
            issues.append(Issue("gaps", "warning", int(gaps.sum()), tuple(str(t) for t in gap_starts[:_SHOW]),
                                f"{missing_bars} missing bars, largest gap {largest}"))
        offgrid = (d % step) != 0
        if offgrid.any() and _grid_offset(step) is None:  # on a fixed grid, "misaligned" already says it
            where = pd.DatetimeIndex(uniq[1:][offgrid], tz="UTC")
            issues.append(Issue("off_grid", "warning", int(offgrid.sum()), tuple(str(t) for t in where[:_SHOW]),
                                f"spacing not a multiple of {timeframe}"))
    return issues, missing_bars, largest


def _session_issues(uniq: np.ndarray, calendar: str, timeframe: str) -> tuple[list[Issue], int, str | None]:
    """Calendar and gap findings on an exchange calendar: closed sessions are not gaps.

    Bars at times the calendar has no bar are ``off_calendar`` errors; expected bars missing between the
    first and last bar are gaps (a warning), counted in bars of the calendar.
    """
    issues: list[Issue] = []
    idx = pd.DatetimeIndex(uniq, tz="UTC")
    off, missing = calendar_issues(idx, calendar, timeframe)
    if off.any():
        issues.append(Issue("off_calendar", "error", int(off.sum()), tuple(str(t) for t in idx[off][:_SHOW]),
                            f"open times that the {calendar} calendar has no {timeframe} bar at (another market, "
                            "timezone or bar size?)"))
    if len(missing) == 0:
        return issues, 0, None
    on = idx[~off]
    # a gap = consecutive bars in the data with expected bars between them
    pos = np.searchsorted(on.asi8, missing.asi8)          # the bar after each missing one
    starts = np.unique(pos)
    prev_bar, next_bar = on[starts - 1], on[starts]
    largest = str((next_bar - prev_bar).max())
    issues.append(Issue("gaps", "warning", len(starts), tuple(str(t) for t in prev_bar[:_SHOW]),
                        f"{len(missing)} missing bars in {calendar} sessions, largest gap {largest}"))
    return issues, len(missing), largest


def validate_symbol(df: pd.DataFrame, symbol: str, timeframe: str, max_abs_log_return: float = 0.5,
                    calendar: str = ALWAYS_OPEN) -> SymbolReport:
    """Check one symbol's bars against ``calendar`` (:mod:`graphwiz_trader.data.calendars`).

    ``max_abs_log_return`` flags bar-to-bar |log(close ratio)| above it. On ``24/7`` every bar of the
    timeframe's UTC grid is expected; on an exchange calendar (``XNYS``) only the bars of its sessions.
    """
    idx = pd.DatetimeIndex(df.index)
    issues: list[Issue] = []
    n = len(df)
    if n == 0:
        return SymbolReport(symbol, 0, None, None, (Issue("empty", "error", 1, (), "no rows"),))
    ns = idx.asi8
    dup = pd.Index(ns).duplicated(keep="first")
    if dup.any():
        issues.append(Issue("duplicate_timestamps", "error", int(dup.sum()), _stamps(idx, dup)))
    back = np.r_[False, np.diff(ns) < 0]
    if back.any():
        issues.append(Issue("out_of_order", "error", int(back.sum()), _stamps(idx, back),
                            "timestamp earlier than the row before"))
    values = df[OHLCV].to_numpy(dtype="float64")
    for j, col in enumerate(OHLCV):
        nan = np.isnan(values[:, j])
        if nan.any():
            issues.append(Issue(f"nan_{col}", "error", int(nan.sum()), _stamps(idx, nan)))
        inf = np.isinf(values[:, j])
        if inf.any():
            issues.append(Issue(f"non_finite_{col}", "error", int(inf.sum()), _stamps(idx, inf),
                                "inf or -inf"))
    o, h, l, c, v = (values[:, j] for j in range(5))
    with np.errstate(invalid="ignore"):
        nonpos = (o <= 0) | (h <= 0) | (l <= 0) | (c <= 0)
        if nonpos.any():
            issues.append(Issue("non_positive_price", "error", int(nonpos.sum()), _stamps(idx, nonpos)))
        negvol = v < 0
        if negvol.any():
            issues.append(Issue("negative_volume", "error", int(negvol.sum()), _stamps(idx, negvol)))
        tol = 1e-9 * np.abs(c)
        bad = (h + tol < np.maximum.reduce([o, c, l])) | (l - tol > np.minimum.reduce([o, c, h]))
        if bad.any():
            issues.append(Issue("ohlc_inconsistent", "error", int(bad.sum()), _stamps(idx, bad),
                                "high below open/close/low or low above open/close/high"))
    step = timeframe_delta(timeframe).value
    uniq = np.unique(ns)
    if calendar == ALWAYS_OPEN:
        more, missing_bars, largest = _grid_issues(uniq, step, timeframe)
    else:
        more, missing_bars, largest = _session_issues(uniq, calendar, timeframe)
    issues.extend(more)
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.abs(np.diff(np.log(c)))
    jumps = np.r_[False, np.nan_to_num(jump, nan=0.0) > max_abs_log_return]
    if jumps.any():
        issues.append(Issue("extreme_jump", "warning", int(jumps.sum()), _stamps(idx, jumps),
                            f"|log return| > {max_abs_log_return}"))
    return SymbolReport(symbol, n, str(idx.min()), str(idx.max()), tuple(issues), missing_bars, largest)


_LOGGED: set[str] = set()


def warning_summary(report: ValidationReport) -> str | None:
    """One line for every warning of ``report`` (None when there is none), e.g.
    ``1h: 12 of 46 symbols have gaps (143 missing bars; largest 5h in BTC/USDT); 2 extreme jumps``."""
    with_gaps = [s for s in report.symbols if s.missing_bars]
    kinds: dict[str, int] = {}
    for s in report.symbols:
        for i in s.warnings:
            if i.kind != "gaps":
                kinds[i.kind] = kinds.get(i.kind, 0) + 1
    if not with_gaps and not kinds:
        return None
    parts = []
    if with_gaps:
        worst = max(with_gaps, key=lambda s: pd.Timedelta(s.largest_gap) if s.largest_gap else pd.Timedelta(0))
        parts.append(f"{len(with_gaps)} of {len(report.symbols)} symbols have gaps "
                     f"({sum(s.missing_bars for s in with_gaps)} missing bars; largest {_short(worst.largest_gap)} "
                     f"in {worst.symbol})")
    parts.extend(f"{n} symbol(s) with {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
    cal = "" if report.calendar == ALWAYS_OPEN else f" ({report.calendar} sessions)"
    return f"{report.timeframe}{cal}: " + "; ".join(parts) + " (details: graphwiz data validate, or the report's JSON)"


def _short(text: str | None) -> str:
    """``0 days 04:00:00`` -> ``4h``; ``2 days 01:30:00`` -> ``2d 1h 30m``."""
    if not text:
        return "?"
    secs = int(pd.Timedelta(text).total_seconds())
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    out = " ".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m")) if v)
    return out or f"{secs}s"


def _log_once(report: ValidationReport) -> None:
    """Each warning at DEBUG; one INFO summary line, printed once per process for the same content."""
    for s in report.symbols:
        for i in s.warnings:
            log.debug("%s: %s", s.symbol, i)
    line = warning_summary(report)
    if line is not None and line not in _LOGGED:
        _LOGGED.add(line)
        log.info("validation %s", line)


def validate_bars(bars: dict[str, pd.DataFrame], timeframe: str, strict: bool = False,
                  max_abs_log_return: float = 0.5, calendar: str = ALWAYS_OPEN) -> ValidationReport:
    """Validate every symbol against ``calendar`` (``24/7`` or an exchange such as ``XNYS``).

    With ``strict=True`` raise on the first symbols with errors.

    Raises
    ------
    DataValidationError
        (strict only) with a message naming each failing symbol and its first offending timestamps;
        the full report is on ``exc.report``.
    """
    report = ValidationReport(timeframe, tuple(
        validate_symbol(df, sym, timeframe, max_abs_log_return, calendar) for sym, df in bars.items()), calendar)
    _log_once(report)
    if strict and not report.ok:
        msgs = [f"{s.symbol}: " + "; ".join(str(i) for i in s.errors) for s in report.symbols if not s.ok]
        raise DataValidationError("data validation failed: " + " | ".join(msgs), report)
    return report


def fill_gaps(df: pd.DataFrame, timeframe: str) -> tuple[pd.DataFrame, int]:
    """Explicitly insert missing bars as flat bars at the previous close with zero volume.

    Returns the filled frame and the number of bars inserted (logged). Requires sorted, unique times.
    """
    full = pd.date_range(df.index.min(), df.index.max(), freq=timeframe_delta(timeframe), name="datetime")
    out = df.reindex(full)
    added = int(out["close"].isna().sum() - df["close"].isna().sum())
    prev_close = out["close"].ffill()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].fillna(prev_close)
    out["volume"] = out["volume"].fillna(0.0)
    if added:
        log.warning("filled %d missing bars (flat at previous close, zero volume)", added)
    return out, added


def sort_and_dedupe(df: pd.DataFrame, keep: Literal["first", "last"] = "last") -> tuple[pd.DataFrame, int]:
    """Explicit repair: sort by time and drop repeated timestamps. Returns (frame, rows dropped), logged."""
    out = df.sort_index(kind="stable")
    dup = out.index.duplicated(keep=keep)
    if dup.any():
        log.warning("dropped %d rows with repeated timestamps (kept %s)", int(dup.sum()), keep)
    return out[~dup], int(dup.sum())
