"""Bar sources: freqtrade's Feather layout, CSV, Qlib binary data, the store and the synthetic market.

Every import goes through the validator, on the source's trading calendar
(:mod:`graphwiz_trader.data.calendars`; ``24/7`` for crypto, an exchange such as ``XNYS`` for equities).

freqtrade writes ``<BASE>_<QUOTE>-<timeframe>.feather`` (columns ``date, open, high, low, close, volume``),
either directly in the folder or in a ``<timeframe>/`` sub-folder; both are accepted. CSV sources are a
folder of files named by a pattern (``BTC_USDT-1h.csv``, ``AAPL.csv``, ``--symbol-pattern``), files with a
symbol column, or one long CSV (:mod:`graphwiz_trader.data.csv_source`); their time column is
``date``/``timestamp``/``datetime`` (ISO text or epoch seconds/milliseconds/microseconds/nanoseconds, the
unit detected from the magnitude). Qlib data is read by :mod:`graphwiz_trader.data.qlib_source`.

:func:`load_bars` cuts to ``[start, end]`` and never drops a symbol silently: an explicitly requested
symbol without bars in the range is an error; a default universe (every file) reports which symbols it
dropped and why (``PEPE/USDT: first bar 2023-05-05, after --end 2023-01-31``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from graphwiz_trader.core.symbols import file_stem, parse_symbols
from graphwiz_trader.core.timeframes import timeframe_minutes
from graphwiz_trader.data.bars import normalize_bars
from graphwiz_trader.data.ranges import cut_to_range
from graphwiz_trader.data.validate import ValidationReport, validate_bars
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)
FileFormat = Literal["freqtrade", "csv"]
_EXT = {"freqtrade": "feather", "csv": "csv"}


def _folder(source: Path, timeframe: str, fmt: FileFormat = "freqtrade") -> Path:
    """The folder holding the files: ``source/<timeframe>`` when it exists, else ``source``.

    Raises
    ------
    DataError
        when ``source`` does not exist or is a file (naming it and the folder layout expected).
    """
    expected = (f"expected a folder holding <BASE>_<QUOTE>-{timeframe}.{_EXT.get(fmt, fmt)} files "
                f"(or a {timeframe}/ sub-folder of them)")
    if not source.exists():
        raise DataError(f"source folder {source} does not exist; {expected}")
    if not source.is_dir():
        raise DataError(f"source {source} is a file, not a folder; {expected}")
    sub = source / timeframe
    return sub if sub.is_dir() else source


def available_symbols(source: str | Path, timeframe: str, fmt: FileFormat = "freqtrade") -> list[str]:
    """Symbols with a ``<SYMBOL>-<timeframe>.<ext>`` file in ``source`` (or ``source/<timeframe>``).

    CSV folders also accept the other default name, ``<SYMBOL>.csv`` (see :mod:`graphwiz_trader.data.csv_source`).
    """
    from graphwiz_trader.data.csv_source import files_by_symbol

    folder = _folder(Path(source), timeframe, fmt)
    pattern = None if fmt == "csv" else f"{{symbol}}-{{timeframe}}.{_EXT[fmt]}"
    return sorted(files_by_symbol(folder, timeframe, pattern)[0])


def _read_one(path: Path, fmt: FileFormat) -> pd.DataFrame:
    try:
        if fmt == "freqtrade":
            raw = pd.read_feather(path)
        else:
            raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        kind = "Feather" if fmt == "freqtrade" else "CSV"
        raise DataError(f"cannot read {path}: the file is truncated or not a valid {kind} file ({exc})") from None
    except Exception as exc:  # pyarrow.lib.ArrowInvalid and friends
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"cannot read {path}: the file is truncated or not a valid Feather file ({exc})") from None
        raise
    if raw.empty:
        raise DataError(f"{path} holds no rows")
    return normalize_bars(raw, where=str(path))


def resolve_calendar(calendar: str | None, fmt: str, symbols: list[str], region: str | None = None) -> str:
    """``calendar`` checked, or the source's default (logged with the reason)."""
    from graphwiz_trader.data.calendars import check_calendar, infer_calendar

    if calendar:
        return check_calendar(calendar)
    name, why = infer_calendar(fmt, symbols, region)
    log.info("trading calendar %s (inferred: %s)", name, why)
    return name


def read_bars(
    source: str | Path,
    timeframe: str,
    symbols: list[str] | str | None = None,
    fmt: FileFormat = "freqtrade",
    strict: bool = True,
    *,
    calendar: str | None = None,
    symbol_pattern: str | None = None,
    symbol_column: str | None = None,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Read and validate bars for ``symbols`` (all of the source when ``None``).

    Parameters
    ----------
    calendar : ``24/7`` or an exchange (``XNYS``); default inferred from the source and symbols, and logged.
    symbol_pattern, symbol_column : CSV only (see :mod:`graphwiz_trader.data.csv_source`).

    Returns
    -------
    (bars, report): bars keyed by symbol as read (never reordered or de-duplicated here), and the
    validation report (``report.calendar`` names the calendar used).

    Raises
    ------
    UnknownSymbolError
        naming the symbols that have no file, and the folder.
    DataError
        for unreadable/truncated files, missing columns or bad timestamps (naming the file).
    DataValidationError
        (``strict``) when validation finds errors, naming the symbol and first offending timestamps.
    """
    if fmt not in _EXT:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(_EXT)}")
    timeframe_minutes(timeframe)  # a clear TimeframeError ('1H' -> did you mean '1h'?) before any file lookup
    if fmt != "csv" and (symbol_pattern or symbol_column):
        raise DataError("--symbol-pattern and --symbol-column apply to --format csv only")
    src = Path(source)
    wanted = parse_symbols(symbols)
    if fmt == "csv":
        from graphwiz_trader.data.csv_source import read_csv_source

        bars, where = read_csv_source(src, timeframe, wanted, symbol_pattern, symbol_column)
    else:
        have = available_symbols(src, timeframe, fmt)
        wanted = wanted or have
        folder = _folder(src, timeframe, fmt)
        if not wanted:
            raise DataError(f"no {fmt} files for timeframe {timeframe} in {folder} "
                            f"(expected <BASE>_<QUOTE>-{timeframe}.{_EXT[fmt]})")
        missing = [s for s in wanted if s not in have]
        if missing:
            raise UnknownSymbolError(missing, f"{folder} ({fmt}, {timeframe})", have)
        bars = {s: _read_one(folder / f"{file_stem(s)}-{timeframe}.{_EXT[fmt]}", fmt) for s in wanted}
        where = str(folder)
    cal = resolve_calendar(calendar, fmt, list(bars))
    report = validate_bars(bars, timeframe, strict=strict, calendar=cal)
    log.info("read %d symbols (%s) from %s", len(bars), fmt, where)
    return bars, report


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source beyond its folder and format (the CLI's ``--calendar --symbol-pattern
    --symbol-column --provider --market``).

    Attributes
    ----------
    calendar : ``24/7`` or an exchange MIC (``XNYS``); None: inferred from the source and stated.
    symbol_pattern : CSV file names with ``{symbol}`` (``{symbol}.csv``); None: the defaults.
    symbol_column : CSV column holding the symbol (long files).
    provider : Qlib data folder (``--format qlib``; ``--source`` is taken when this is None).
    market : Qlib market (``csi300``): its members, point in time.
    region : Qlib region (``cn``, ``us``), for Qlib's reader and the default calendar.
    """

    calendar: str | None = None
    symbol_pattern: str | None = None
    symbol_column: str | None = None
    provider: str | Path | None = None
    market: str | None = None
    region: str = "cn"

    @classmethod
    def from_args(cls, args: Any) -> "SourceOptions":
        """The options of a parsed command line (``graphwiz_trader.core.commandline.add_source_options``).

        The Qlib region follows the calendar: ``XNYS``/``XNAS`` read US data, anything else CN data.
        """
        cal = getattr(args, "calendar", None)
        region = "us" if cal and cal.upper() in ("XNYS", "XNAS") else "cn"
        return cls(cal, getattr(args, "symbol_pattern", None), getattr(args, "symbol_column", None),
                   getattr(args, "provider", None), getattr(args, "market", None), region)


@dataclass(frozen=True)
class LoadedBars:
    """What :func:`load_universe` returns.

    Attributes
    ----------
    bars : bars keyed by symbol, cut to the range.
    label : where they came from (SYNTHETIC for the synthetic market), the calendar, and any symbols left out.
    dropped : symbols of a default universe left out, and why.
    calendar : the trading calendar the bars were validated on.
    membership : per symbol, its index-membership spans (UTC, inclusive) for a Qlib market; None otherwise.
    """

    bars: dict[str, pd.DataFrame]
    label: str
    dropped: dict[str, str] = field(default_factory=dict)
    calendar: str = "24/7"
    membership: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] | None = None


def load_universe(
    source: str | Path | None,
    fmt: str,
    timeframe: str,
    symbols: list[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    store_dir: str | Path | None = None,
    synthetic: dict | None = None,
    warmup_bars: int = 0,
    options: SourceOptions | None = None,
) -> LoadedBars:
    """Bars from ``freqtrade``/``csv`` files, ``qlib`` data, the ``store``, or ``synthetic``, cut to [start, end] (UTC).

    Files are validated strictly on the way in, on the source's calendar (``options.calendar``, else inferred
    and stated in the label). Named ``symbols`` must all have bars in the range (else
    :class:`NoBarsInRangeError`); with ``symbols=None`` (every symbol of the source) the ones without bars
    in the range are dropped, logged at WARNING, named in the label and listed in ``dropped`` with why.
    ``warmup_bars``: also up to that many bars before ``start`` per symbol (see :func:`cut_to_range`).
    """
    from graphwiz_trader.data.store import ParquetStore
    from graphwiz_trader.data.synthetic import generate_synthetic_market

    opts = options or SourceOptions()
    timeframe_minutes(timeframe)
    wanted = parse_symbols(symbols)
    membership = None
    if fmt != "csv" and (opts.symbol_pattern or opts.symbol_column):
        raise DataError("--symbol-pattern and --symbol-column apply to --format csv only")
    if fmt != "qlib" and opts.market:
        raise DataError("--market applies to --format qlib only (index membership from Qlib's instruments files)")
    if fmt == "synthetic":
        market = generate_synthetic_market(**{"timeframe": timeframe, **(synthetic or {})})
        bars = market.bars
        if wanted:
            missing = [s for s in wanted if s not in bars]
            if missing:
                raise UnknownSymbolError(missing, "the synthetic market", list(bars))
            bars = {s: bars[s] for s in wanted}
        label = market.label
        cal = resolve_calendar(opts.calendar, fmt, list(bars))
    elif fmt == "store":
        root = store_dir or source or "data/store"
        store = ParquetStore(root)
        bars = store.read_many(wanted, timeframe)
        stored = store.calendars(list(bars), timeframe)
        cal = resolve_calendar(opts.calendar or stored, fmt, list(bars))
        if cal != stored:
            raise DataError(f"--calendar {cal}: the store holds these bars on the {stored} calendar")
        label = f"store {root}"
    elif fmt == "qlib":
        from graphwiz_trader.data.qlib_source import read_qlib_bars

        provider = opts.provider or source
        if provider is None:
            raise DataError("--provider (or --source) is required for --format qlib: the Qlib data folder")
        got = read_qlib_bars(provider, timeframe, opts.market, wanted, start, end, opts.region, warmup_bars)
        bars, membership = got.bars, got.spans
        cal = resolve_calendar(opts.calendar, fmt, list(bars), opts.region)
        validate_bars(bars, timeframe, strict=True, calendar=cal)
        label = f"Qlib {opts.market or 'all'} in {provider}"
    elif fmt in _EXT:
        if source is None:
            raise DataError(f"--source is required for format {fmt}")
        bars, report = read_bars(source, timeframe, wanted, fmt=fmt, strict=True,  # type: ignore[arg-type]
                                 calendar=opts.calendar, symbol_pattern=opts.symbol_pattern,
                                 symbol_column=opts.symbol_column)
        cal = report.calendar
        label = f"{fmt} files in {source}"
    else:
        raise DataError(f"unknown data format {fmt!r}; expected one of freqtrade, csv, qlib, store, synthetic")
    if cal != "24/7":
        label += f", {cal} calendar"
    total = len(bars)
    bars, dropped = cut_to_range(bars, start, end, explicit=bool(wanted), warmup_bars=warmup_bars)
    if dropped:
        label += f" (dropped {len(dropped)} of {total} symbols without bars in the range: {', '.join(dropped)})"
    if membership is not None:
        membership = {s: membership[s] for s in bars}
    return LoadedBars(bars, label, dropped, cal, membership)


def load_bars(
    source: str | Path | None,
    fmt: str,
    timeframe: str,
    symbols: list[str] | str | None = None,
    start: Any = None,
    end: Any = None,
    store_dir: str | Path | None = None,
    synthetic: dict | None = None,
    warmup_bars: int = 0,
    options: SourceOptions | None = None,
) -> tuple[dict[str, pd.DataFrame], str]:
    """One entry point for commands: :func:`load_universe` as ``(bars, label)``.

    The label names the data's origin (SYNTHETIC for the synthetic market), a calendar other than 24/7, and
    any symbols of a default universe dropped for having no bars in [start, end].
    """
    loaded = load_universe(source, fmt, timeframe, symbols, start, end, store_dir, synthetic, warmup_bars, options)
    return loaded.bars, loaded.label
