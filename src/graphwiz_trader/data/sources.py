"""File importers: freqtrade's Feather layout and CSV. Every import goes through the validator.

freqtrade writes ``<BASE>_<QUOTE>-<timeframe>.feather`` (columns ``date, open, high, low, close, volume``),
either directly in the folder or in a ``<timeframe>/`` sub-folder; both are accepted. CSV files follow
the same naming (``BTC_USDT-1h.csv``) with a time column ``date``/``timestamp``/``datetime`` (ISO text
or epoch seconds/milliseconds/microseconds/nanoseconds, the unit detected from the magnitude).

:func:`load_bars` cuts to ``[start, end]`` and never drops a symbol silently: an explicitly requested
symbol without bars in the range is an error; a default universe (every file) reports which symbols it
dropped and why (``PEPE/USDT: first bar 2023-05-05, after --end 2023-01-31``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from graphwiz_trader.core.symbols import file_stem, parse_symbols, symbol_from_stem
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
    """Symbols with a ``<BASE>_<QUOTE>-<timeframe>.<ext>`` file in ``source`` (or ``source/<timeframe>``)."""
    folder = _folder(Path(source), timeframe, fmt)
    pat = re.compile(rf"^([A-Za-z0-9]+_[A-Za-z0-9]+)-{re.escape(timeframe)}\.{_EXT[fmt]}$")
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError as exc:
        raise DataError(f"cannot list source folder {folder}: {exc.strerror or exc}") from None
    return [symbol_from_stem(m.group(1)) for m in map(pat.match, names) if m]


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


def read_bars(
    source: str | Path,
    timeframe: str,
    symbols: list[str] | str | None = None,
    fmt: FileFormat = "freqtrade",
    strict: bool = True,
) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Read and validate bars for ``symbols`` (all files when ``None``).

    Returns
    -------
    (bars, report): bars keyed by symbol as read (never reordered or de-duplicated here), and the
    validation report.

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
    src = Path(source)
    have = available_symbols(src, timeframe, fmt)
    wanted = parse_symbols(symbols) or have
    folder = _folder(src, timeframe, fmt)
    if not wanted:
        raise DataError(f"no {fmt} files for timeframe {timeframe} in {folder} "
                        f"(expected <BASE>_<QUOTE>-{timeframe}.{_EXT[fmt]})")
    missing = [s for s in wanted if s not in have]
    if missing:
        raise UnknownSymbolError(missing, f"{folder} ({fmt}, {timeframe})", have)
    bars = {s: _read_one(folder / f"{file_stem(s)}-{timeframe}.{_EXT[fmt]}", fmt) for s in wanted}
    report = validate_bars(bars, timeframe, strict=strict)
    log.info("read %d symbols (%s) from %s", len(bars), fmt, folder)
    return bars, report


@dataclass(frozen=True)
class LoadedBars:
    """What :func:`load_universe` returns: the bars, where they came from, and the symbols left out (and why)."""

    bars: dict[str, pd.DataFrame]
    label: str
    dropped: dict[str, str] = field(default_factory=dict)


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
) -> LoadedBars:
    """Bars from ``freqtrade``/``csv`` files, the ``store``, or ``synthetic``, cut to [start, end] (UTC).

    Files are validated strictly on the way in. Named ``symbols`` must all have bars in the range (else
    :class:`NoBarsInRangeError`); with ``symbols=None`` (every symbol of the source) the ones without bars
    in the range are dropped, logged at WARNING, named in the label and listed in ``dropped`` with why.
    ``warmup_bars``: also up to that many bars before ``start`` per symbol (see :func:`cut_to_range`).
    """
    from graphwiz_trader.data.store import ParquetStore
    from graphwiz_trader.data.synthetic import generate_synthetic_market

    timeframe_minutes(timeframe)
    wanted = parse_symbols(symbols)
    if fmt == "synthetic":
        market = generate_synthetic_market(**{"timeframe": timeframe, **(synthetic or {})})
        bars = market.bars
        if wanted:
            missing = [s for s in wanted if s not in bars]
            if missing:
                raise UnknownSymbolError(missing, "the synthetic market", list(bars))
            bars = {s: bars[s] for s in wanted}
        label = market.label
    elif fmt == "store":
        bars = ParquetStore(store_dir or source or "data/store").read_many(wanted, timeframe)
        label = f"store {store_dir or source}"
    elif fmt in _EXT:
        if source is None:
            raise DataError(f"--source is required for format {fmt}")
        bars, _ = read_bars(source, timeframe, wanted, fmt=fmt, strict=True)  # type: ignore[arg-type]
        label = f"{fmt} files in {source}"
    else:
        raise DataError(f"unknown data format {fmt!r}; expected one of freqtrade, csv, store, synthetic")
    total = len(bars)
    bars, dropped = cut_to_range(bars, start, end, explicit=bool(wanted), warmup_bars=warmup_bars)
    if dropped:
        label += f" (dropped {len(dropped)} of {total} symbols without bars in the range: {', '.join(dropped)})"
    return LoadedBars(bars, label, dropped)


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
) -> tuple[dict[str, pd.DataFrame], str]:
    """One entry point for commands: :func:`load_universe` as ``(bars, label)``.

    The label names the data's origin (SYNTHETIC for the synthetic market) and any symbols of a default
    universe dropped for having no bars in [start, end].
    """
    loaded = load_universe(source, fmt, timeframe, symbols, start, end, store_dir, synthetic, warmup_bars)
    return loaded.bars, loaded.label
