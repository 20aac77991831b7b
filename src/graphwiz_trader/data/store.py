"""Local bar store: one Parquet file per symbol and timeframe, upserted without duplicates.

Layout: ``<root>/<timeframe>/<BASE>_<QUOTE>.parquet``. An upsert merges new rows with stored ones;
where a timestamp exists in both, the new row wins (the exchange may revise the last candle). Writes
are atomic (temporary file, then rename).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.core.symbols import file_stem, symbol_from_stem
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)


class ParquetStore:
    """Parquet store of validated bars rooted at ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, symbol: str, timeframe: str) -> Path:
        return self.root / timeframe / f"{file_stem(symbol)}.parquet"

    def symbols(self, timeframe: str) -> list[str]:
        folder = self.root / timeframe
        if not folder.is_dir():
            return []
        return sorted(symbol_from_stem(p.stem) for p in folder.glob("*.parquet"))

    def timeframes(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest stored bar, or None when nothing is stored."""
        p = self.path(symbol, timeframe)
        if not p.exists():
            return None
        idx = pd.read_parquet(p, columns=[]).index
        return idx.max() if len(idx) else None

    def upsert(self, symbol: str, timeframe: str, bars: pd.DataFrame) -> tuple[int, int]:
        """Merge ``bars`` into the stored file. Returns (rows added, rows replaced).

        The incoming frame must itself be valid (sorted, unique timestamps, no NaNs): it is validated
        strictly first, so nothing malformed reaches the store.
        """
        validate_bars({symbol: bars}, timeframe, strict=True)
        new = bars[OHLCV].astype("float64")
        p = self.path(symbol, timeframe)
        if p.exists():
            old = self.read(symbol, timeframe)
            replaced = int(old.index.isin(new.index).sum())
            merged = pd.concat([old[~old.index.isin(new.index)], new]).sort_index()
            added = len(merged) - len(old)
        else:
            merged, added, replaced = new.sort_index(), len(new), 0
        merged.index.name = "datetime"
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".parquet.tmp")
        merged.to_parquet(tmp)
        os.replace(tmp, p)
        log.debug("%s %s: +%d rows, %d replaced, %d stored", symbol, timeframe, added, replaced, len(merged))
        return added, replaced

    def read(self, symbol: str, timeframe: str, start: pd.Timestamp | str | None = None,
             end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        """Stored bars of one symbol in [start, end] (UTC; both optional)."""
        p = self.path(symbol, timeframe)
        if not p.exists():
            raise UnknownSymbolError([symbol], f"store {self.root} ({timeframe})", self.symbols(timeframe))
        try:
            df = pd.read_parquet(p)
        except Exception as exc:
            raise DataError(f"cannot read {p}: {exc}") from None
        if start is not None:
            df = df[df.index >= to_utc(start)]
        if end is not None:
            df = df[df.index <= to_utc(end)]
        return df

    def read_many(self, symbols: list[str] | None, timeframe: str, start: str | None = None,
                  end: str | None = None) -> dict[str, pd.DataFrame]:
        """Bars for several symbols (all stored ones when ``symbols`` is None); unknown ones raise, named."""
        have = self.symbols(timeframe)
        wanted = symbols or have
        missing = [s for s in wanted if s not in have]
        if missing:
            raise UnknownSymbolError(missing, f"store {self.root} ({timeframe})", have)
        if not wanted:
            raise DataError(f"store {self.root} holds no {timeframe} bars; run `graphwiz data import` or `download`")
        return {s: self.read(s, timeframe, start, end) for s in wanted}
