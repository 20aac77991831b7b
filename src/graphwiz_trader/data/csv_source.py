"""CSV sources: a folder of one file per symbol, or long files with a symbol column.

Three layouts, one reader:

- a folder of files named by a pattern with ``{symbol}`` (and optionally ``{timeframe}``) in it:
  ``{symbol}-{timeframe}.csv`` (freqtrade's naming, ``BTC_USDT-1h.csv``, the default) or ``{symbol}.csv``
  (``AAPL.csv``, tried when the default finds no file), or any other such as ``{symbol}_daily.csv``.
  The symbol is the file stem's ``{symbol}`` part: ``BTC_USDT`` -> ``BTC/USDT``, ``aapl`` -> ``AAPL``;
- a folder of files that carry the symbol in a column (``--symbol-column Name``): every ``*.csv`` is read
  and its rows are split by that column (a file may hold one symbol or many);
- one long CSV file (the source is a file): its rows are split by the symbol column (``--symbol-column``,
  default: the first of ``symbol``, ``ticker``, ``name``, ``instrument``, ``code`` that the file has).

Rows are never dropped or reordered here: the validator reports what is wrong with them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from graphwiz_trader.core.symbols import symbol_from_stem
from graphwiz_trader.data.bars import normalize_bars
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)
DEFAULT_PATTERNS = ("{symbol}-{timeframe}.csv", "{symbol}.csv")
SYMBOL_COLUMNS = ("symbol", "ticker", "name", "instrument", "code")


def pattern_regex(pattern: str, timeframe: str) -> re.Pattern[str]:
    """The regular expression of a file-name ``pattern``: ``{symbol}`` captures the stem, ``{timeframe}`` is literal.

    Raises
    ------
    DataError
        when the pattern has no ``{symbol}`` or holds a folder separator.
    """
    if "{symbol}" not in pattern or pattern.count("{symbol}") != 1:
        raise DataError(f"--symbol-pattern {pattern!r} must hold '{{symbol}}' once, e.g. '{{symbol}}.csv'")
    if "/" in pattern or "\\" in pattern:
        raise DataError(f"--symbol-pattern {pattern!r} names files inside --source; it cannot hold a folder")
    head, tail = pattern.split("{symbol}")
    esc = [re.escape(p).replace(re.escape("{timeframe}"), re.escape(timeframe)) for p in (head, tail)]
    return re.compile(rf"^{esc[0]}(?P<symbol>[A-Za-z0-9][A-Za-z0-9.-]*(?:_[A-Za-z0-9][A-Za-z0-9.-]*)?){esc[1]}$")


def _list(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise DataError(f"cannot list source folder {folder}: {exc.strerror or exc}") from None


def files_by_symbol(folder: Path, timeframe: str, pattern: str | None = None) -> tuple[dict[str, Path], str]:
    """``{symbol: file}`` of the files in ``folder`` that match ``pattern``, and the pattern used.

    With ``pattern=None`` the first of :data:`DEFAULT_PATTERNS` that matches any file is used.

    Raises
    ------
    DataError
        when two files name one symbol (``aapl.csv`` and ``AAPL.csv``).
    """
    names = _list(folder)
    for pat in ([pattern] if pattern else list(DEFAULT_PATTERNS)):
        rx = pattern_regex(pat, timeframe)
        found: dict[str, Path] = {}
        for name in names:
            m = rx.match(name)
            if not m:
                continue
            sym = symbol_from_stem(m.group("symbol"))
            if sym in found:
                raise DataError(f"{folder}: files {found[sym].name} and {name} both hold {sym}")
            found[sym] = folder / name
        if found or pattern:
            return found, pat
    return {}, DEFAULT_PATTERNS[0]


def read_csv_file(path: Path) -> pd.DataFrame:
    """The raw table of one CSV file, or a :class:`DataError` naming the file."""
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: the file is truncated or not a valid CSV file ({exc})") from None
    if raw.empty:
        raise DataError(f"{path} holds no rows")
    return raw


def _symbol_column(raw: pd.DataFrame, column: str | None, where: str) -> str:
    cols = {str(c).strip().lower(): c for c in raw.columns}
    if column is not None:
        if column in raw.columns:
            return column
        if column.strip().lower() in cols:
            return cols[column.strip().lower()]
        raise DataError(f"{where}: no symbol column {column!r}; the columns are {', '.join(map(str, raw.columns))}")
    for name in SYMBOL_COLUMNS:
        if name in cols:
            return cols[name]
    raise DataError(f"{where}: a long CSV needs a symbol column; none of {', '.join(SYMBOL_COLUMNS)} found "
                    f"(columns: {', '.join(map(str, raw.columns))}); pass --symbol-column")


def split_long(raw: pd.DataFrame, column: str | None, where: str) -> dict[str, pd.DataFrame]:
    """Rows of a long table split by its symbol column into canonical bar frames, in file order.

    Raises
    ------
    DataError
        for a missing symbol column, empty or malformed symbols (naming the first row), or bad bars.
    """
    col = _symbol_column(raw, column, where)
    codes = raw[col]
    empty = codes.isna() | (codes.astype(str).str.strip() == "")
    if empty.any():
        raise DataError(f"{where}: {int(empty.sum())} row(s) without a symbol in column {col!r}, first at row "
                        f"{int(empty.to_numpy().nonzero()[0][0])}")
    body = raw.drop(columns=[col])
    out: dict[str, pd.DataFrame] = {}
    for code, rows in body.groupby(codes.astype(str).str.strip(), sort=True):
        sym = _symbol_of_code(code, where)
        if sym in out:
            raise DataError(f"{where}: {code!r} and another spelling both name {sym}")
        out[sym] = normalize_bars(rows, where=f"{where} ({col}={code})")
    return out


def _symbol_of_code(code: str, where: str) -> str:
    from graphwiz_trader.core.symbols import split_symbol

    try:
        base, quote = split_symbol(code.replace("_", "/") if "/" not in code else code)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    return base if quote is None else f"{base}/{quote}"


def read_csv_source(source: Path, timeframe: str, wanted: list[str] | None = None, pattern: str | None = None,
                    symbol_column: str | None = None) -> tuple[dict[str, pd.DataFrame], str]:
    """The bars of ``wanted`` (every symbol when None) from a CSV ``source``, and a label of the layout read.

    Named files are read only for the symbols wanted; long files are read whole.

    Raises
    ------
    UnknownSymbolError
        naming the wanted symbols the source does not hold, and the ones it does.
    DataError
        when the source does not exist, has no matching file, or a file is unreadable or malformed.
    """
    if not source.exists():
        raise DataError(f"source {source} does not exist; expected a folder of CSV files or one long CSV file")
    folder = source / timeframe if source.is_dir() and (source / timeframe).is_dir() else source
    if source.is_file():
        bars = split_long(read_csv_file(source), symbol_column, str(source))
        label = f"long CSV {source}"
    elif symbol_column is not None:
        files = [folder / n for n in _list(folder) if n.lower().endswith(".csv")]
        if not files:
            raise DataError(f"no .csv files in {folder}")
        bars, origin = {}, {}
        for f in files:
            for sym, df in split_long(read_csv_file(f), symbol_column, str(f)).items():
                if sym in bars:
                    raise DataError(f"{sym} is in both {origin[sym].name} and {f.name} (in {folder})")
                bars[sym], origin[sym] = df, f
        label = f"CSV files in {folder} (symbol from column {symbol_column!r})"
    else:
        found, pat = files_by_symbol(folder, timeframe, pattern)
        if not found:
            tried = pattern or " or ".join(DEFAULT_PATTERNS)
            raise DataError(f"no CSV files named {tried.replace('{timeframe}', timeframe)} in {folder} "
                            "(pass --symbol-pattern, e.g. '{symbol}_daily.csv', or --symbol-column for files "
                            "that hold the symbol in a column)")
        label = f"CSV files in {folder} named {pat.replace('{timeframe}', timeframe)}"
        missing = [s for s in (wanted or []) if s not in found]
        if missing:
            raise UnknownSymbolError(missing, label, sorted(found))
        return {s: normalize_bars(read_csv_file(found[s]), str(found[s])) for s in (wanted or sorted(found))}, label
    missing = [s for s in (wanted or []) if s not in bars]
    if missing:
        raise UnknownSymbolError(missing, label, sorted(bars))
    return ({s: bars[s] for s in wanted} if wanted else bars), label
