"""File importers: freqtrade's Feather layout and CSV. Every import goes through the validator.

freqtrade writes ``<BASE>_<QUOTE>-<timeframe>.feather`` (columns ``date, open, high, low, close, volume``),
either directly in the folder or in a ``<timeframe>/`` sub-folder; both are accepted. CSV files follow
the same naming (``BTC_USDT-1h.csv``) with a time column ``date``/``timestamp``/``datetime`` (ISO text
or epoch milliseconds).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import pandas as pd

from graphwiz_trader.data.bars import normalize_bars
from graphwiz_trader.core.symbols import file_stem, parse_symbols, symbol_from_stem
from graphwiz_trader.data.validate import ValidationReport, validate_bars
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)
FileFormat = Literal["freqtrade", "csv"]
_EXT = {"freqtrade": "feather", "csv": "csv"}


def _folder(source: Path, timeframe: str) -> Path:
    if not source.exists():
        raise DataError(f"source folder {source} does not exist")
    sub = source / timeframe
    return sub if sub.is_dir() else source


def available_symbols(source: str | Path, timeframe: str, fmt: FileFormat = "freqtrade") -> list[str]:
    """Symbols with a ``<BASE>_<QUOTE>-<timeframe>.<ext>`` file in ``source`` (or ``source/<timeframe>``)."""
    folder = _folder(Path(source), timeframe)
    pat = re.compile(rf"^([A-Za-z0-9]+_[A-Za-z0-9]+)-{re.escape(timeframe)}\.{_EXT[fmt]}$")
    out = []
    for p in sorted(folder.iterdir()):
        m = pat.match(p.name)
        if m:
            out.append(symbol_from_stem(m.group(1)))
    return out


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
    src = Path(source)
    have = available_symbols(src, timeframe, fmt)
    wanted = parse_symbols(symbols) or have
    if not wanted:
        raise DataError(f"no {fmt} files for timeframe {timeframe} in {_folder(src, timeframe)}")
    missing = [s for s in wanted if s not in have]
    if missing:
        raise UnknownSymbolError(missing, f"{_folder(src, timeframe)} ({fmt}, {timeframe})", have)
    folder = _folder(src, timeframe)
    bars = {s: _read_one(folder / f"{file_stem(s)}-{timeframe}.{_EXT[fmt]}", fmt) for s in wanted}
    report = validate_bars(bars, timeframe, strict=strict)
    log.info("read %d symbols (%s) from %s", len(bars), fmt, folder)
    return bars, report


def load_bars(
    source: str | Path | None,
    fmt: str,
    timeframe: str,
    symbols: list[str] | str | None = None,
    start: str | None = None,
    end: str | None = None,
    store_dir: str | Path | None = None,
    synthetic: dict | None = None,
) -> tuple[dict[str, pd.DataFrame], str]:
    """One entry point for commands: bars from ``freqtrade``/``csv`` files, the ``store``, or ``synthetic``.

    Returns (bars, label). The label names the data's origin; for the synthetic market it says SYNTHETIC.
    Files are validated strictly on the way in; ``start``/``end`` (UTC) cut the validated bars.
    """
    from graphwiz_trader.core.utc import to_utc
    from graphwiz_trader.data.store import ParquetStore
    from graphwiz_trader.data.synthetic import generate_synthetic_market

    if fmt == "synthetic":
        market = generate_synthetic_market(**{"timeframe": timeframe, **(synthetic or {})})
        bars = market.bars
        wanted = parse_symbols(symbols)
        if wanted:
            missing = [s for s in wanted if s not in bars]
            if missing:
                raise UnknownSymbolError(missing, "the synthetic market", list(bars))
            bars = {s: bars[s] for s in wanted}
        label = market.label
    elif fmt == "store":
        bars = ParquetStore(store_dir or source or "data/store").read_many(parse_symbols(symbols), timeframe)
        label = f"store {store_dir or source}"
    else:
        if source is None:
            raise DataError(f"--source is required for format {fmt}")
        bars, _ = read_bars(source, timeframe, symbols, fmt=fmt, strict=True)  # type: ignore[arg-type]
        label = f"{fmt} files in {source}"
    if start is not None or end is not None:
        lo = to_utc(start) if start is not None else None
        hi = to_utc(end) if end is not None else None
        cut = {}
        for s, df in bars.items():
            m = pd.Series(True, index=df.index)
            if lo is not None:
                m &= df.index >= lo
            if hi is not None:
                m &= df.index <= hi
            if m.any():
                cut[s] = df[m.to_numpy()]
        if not cut:
            raise DataError(f"no bars in [{start}, {end}] for {', '.join(bars)}")
        bars = cut
    return bars, label
