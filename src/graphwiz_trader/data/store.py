"""Local bar store: one Parquet file per symbol and timeframe, upserted without duplicates.

Layout: ``<root>/<timeframe>/<BASE>_<QUOTE>.parquet``. An upsert merges new rows with stored ones;
where a timestamp exists in both, the new row wins (the exchange may revise the last candle).

Crash safety and concurrency:

- the read-modify-write of an upsert holds an exclusive ``fcntl`` lock on
  ``<root>/<timeframe>/.<BASE>_<QUOTE>.lock``, so concurrent imports of one symbol take turns and none
  loses the other's rows (other symbols are not blocked);
- the merged file is written to a temporary file with a unique name in the same folder
  (``.<BASE>_<QUOTE>.parquet.<random>.tmp``), fsynced, renamed over the old file (atomic), and the
  folder is fsynced; a reader sees the old file or the new one, never a partial one;
- a temporary file exists only while its writer holds the lock, so one whose lock is free belongs to a
  killed writer: opening the store (and every upsert) deletes those, and leaves a live writer's alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from graphwiz_trader.core.symbols import file_stem, symbol_from_stem
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.data.bars import OHLCV
from graphwiz_trader.data.ranges import cut_to_range
from graphwiz_trader.data.calendars import ALWAYS_OPEN
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError, UnknownSymbolError

log = logging.getLogger(__name__)
LOCK_TIMEOUT_S = 300.0
_POLL_S = 0.05


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class ParquetStore:
    """Parquet store of validated bars rooted at ``root``.

    Parameters
    ----------
    root : the store folder (created on the first write).
    lock_timeout_s : seconds an upsert waits for another process's write lock on the same file before
        giving up with a :class:`DataError`.

    Opening a store deletes temporary files left by killed writers (see the module docstring).
    """

    def __init__(self, root: str | Path, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.root = Path(root)
        self.lock_timeout_s = lock_timeout_s
        self._check_root()
        self.clean_stale_temps()

    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"store {self.root} is a file, not a folder; expected a folder laid out as "
                            "<store>/<timeframe>/<BASE>_<QUOTE>.parquet")

    def path(self, symbol: str, timeframe: str) -> Path:
        return self.root / timeframe / f"{file_stem(symbol)}.parquet"

    def _lock_path(self, data_path: Path) -> Path:
        return data_path.parent / f".{data_path.stem}.lock"

    def symbols(self, timeframe: str) -> list[str]:
        folder = self.root / timeframe
        if not folder.is_dir():
            return []
        return sorted(symbol_from_stem(p.stem) for p in folder.glob("*.parquet"))

    def timeframes(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and any(p.glob("*.parquet")))

    # -- locking and temporary files ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, data_path: Path) -> Iterator[None]:
        """Hold the exclusive write lock of ``data_path`` (waiting up to ``lock_timeout_s``)."""
        lock = self._lock_path(data_path)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataError(f"cannot open the write lock {lock}: {exc.strerror or exc}") from None
        try:
            deadline = time.monotonic() + self.lock_timeout_s
            waited = False
            while not _try_lock(fd):
                if not waited:
                    log.info("%s: waiting for another writer's lock %s", data_path, lock)
                    waited = True
                if time.monotonic() > deadline:
                    raise DataError(f"another process has held the write lock on {data_path} for over "
                                    f"{self.lock_timeout_s:.0f}s (lock file {lock}); let it finish, or stop it")
                time.sleep(_POLL_S)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @staticmethod
    def _temps_of(data_path: Path) -> list[Path]:
        """Temporary files of ``data_path``: ours (``.X.parquet.*.tmp``) and the old fixed name (``X.parquet.tmp``)."""
        folder = data_path.parent
        out = list(folder.glob(f".{data_path.name}.*.tmp"))
        legacy = folder / f"{data_path.name}.tmp"
        return out + ([legacy] if legacy.exists() else [])

    def _remove_temps_locked(self, data_path: Path) -> int:
        """Delete ``data_path``'s temporary files; the caller holds its lock, so none has a live writer."""
        n = 0
        for tmp in self._temps_of(data_path):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                n += 1
                log.warning("removed %s, left by a writer that was killed before it finished", tmp)
        return n

    def clean_stale_temps(self) -> int:
        """Delete temporary files whose writer is gone (their lock is free). Returns how many were deleted.

        A temporary file whose lock is held belongs to a running writer and is left alone.
        """
        if not self.root.is_dir():
            return 0
        data_paths: set[Path] = set()
        for folder in (p for p in self.root.iterdir() if p.is_dir()):
            for tmp in folder.glob("*.tmp"):
                name = tmp.name[1:] if tmp.name.startswith(".") else tmp.name
                stem = name.split(".parquet", 1)[0]
                if stem and ".parquet" in name:
                    data_paths.add(folder / f"{stem}.parquet")
        removed = 0
        for data_path in sorted(data_paths):
            try:
                fd = os.open(self._lock_path(data_path), os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # a read-only store: nothing can be cleaned, and nothing written
                log.debug("cannot open the lock of %s (%s); its temporary files are kept", data_path, exc)
                continue
            try:
                if _try_lock(fd):
                    removed += self._remove_temps_locked(data_path)
                else:
                    log.debug("%s: a writer holds the lock; its temporary file is kept", data_path)
            finally:
                os.close(fd)
        return removed

    def _write_atomic(self, frame: pd.DataFrame, data_path: Path) -> None:
        """Write ``frame`` to a unique temporary file beside ``data_path``, fsync, rename, fsync the folder."""
        fd, tmp_name = tempfile.mkstemp(prefix=f".{data_path.name}.", suffix=".tmp", dir=data_path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                frame.to_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, data_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(data_path.parent)

    # -- reads and writes --------------------------------------------------------------------------

    def last_timestamp(self, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest stored bar, or None when nothing is stored."""
        p = self.path(symbol, timeframe)
        if not p.exists():
            return None
        idx = self._read_file(p, columns=[]).index
        return idx.max() if len(idx) else None

    def calendar(self, symbol: str, timeframe: str) -> str | None:
        """The trading calendar the symbol's stored bars were validated on (None when nothing is stored)."""
        p = self.path(symbol, timeframe)
        if not p.exists():
            return None
        return str(self._read_file(p, columns=[]).attrs.get("calendar", ALWAYS_OPEN))

    def calendars(self, symbols: list[str], timeframe: str) -> str:
        """The one calendar of ``symbols``' stored bars.

        Raises
        ------
        DataError
            when the symbols are stored on different calendars (naming two of them).
        """
        cals = {s: self.calendar(s, timeframe) or ALWAYS_OPEN for s in symbols}
        kinds = sorted(set(cals.values()))
        if len(kinds) > 1:
            eg = {k: next(s for s, c in cals.items() if c == k) for k in kinds}
            raise DataError(f"store {self.root} holds {timeframe} bars on several calendars ("
                            + ", ".join(f"{k}: {s}" for k, s in eg.items()) + "); pick symbols of one market")
        return kinds[0] if kinds else ALWAYS_OPEN

    def upsert(self, symbol: str, timeframe: str, bars: pd.DataFrame, calendar: str = ALWAYS_OPEN) -> tuple[int, int]:
        """Merge ``bars`` into the stored file. Returns (rows added, rows replaced).

        The incoming frame must itself be valid (sorted, unique timestamps, finite values, the declared
        timeframe, on ``calendar``'s sessions): it is validated strictly first, so nothing malformed reaches
        the store. The calendar is stored with the bars (Parquet metadata), and a symbol keeps one calendar:
        merging bars of another calendar is refused. The merge holds the file's write lock; see the module
        docstring for the crash-safety rules.
        """
        validate_bars({symbol: bars}, timeframe, strict=True, calendar=calendar)
        new = bars[OHLCV].astype("float64")
        self._check_root()
        p = self.path(symbol, timeframe)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create store folder {p.parent}: {exc.strerror or exc}") from None
        with self._locked(p):
            self._remove_temps_locked(p)
            if p.exists():
                old = self._read_file(p)
                had = old.attrs.get("calendar", ALWAYS_OPEN)
                if had != calendar:
                    raise DataError(f"{symbol} {timeframe} is stored on the {had} calendar in {self.root}; "
                                    f"bars on the {calendar} calendar cannot be merged into it")
                replaced = int(old.index.isin(new.index).sum())
                merged = pd.concat([old[~old.index.isin(new.index)], new]).sort_index()
                added = len(merged) - len(old)
            else:
                merged, added, replaced = new.sort_index(), len(new), 0
            merged.index.name = "datetime"
            merged.attrs = {"calendar": calendar}
            self._write_atomic(merged, p)
        log.debug("%s %s: +%d rows, %d replaced, %d stored", symbol, timeframe, added, replaced, len(merged))
        return added, replaced

    @staticmethod
    def _read_file(p: Path, columns: list[str] | None = None) -> pd.DataFrame:
        try:
            return pd.read_parquet(p, columns=columns)
        except Exception as exc:  # pyarrow raises its own types for truncated or foreign files
            raise DataError(f"cannot read {p}: the file is truncated or not a Parquet file ({exc})") from None

    def read(self, symbol: str, timeframe: str, start: pd.Timestamp | str | None = None,
             end: pd.Timestamp | str | None = None) -> pd.DataFrame:
        """Stored bars of one symbol in [start, end] (UTC; both optional). May be empty."""
        p = self.path(symbol, timeframe)
        if not p.exists():
            raise UnknownSymbolError([symbol], f"store {self.root} ({timeframe})", self.symbols(timeframe))
        df = self._read_file(p)
        if start is not None:
            df = df[df.index >= to_utc(start, "start")]
        if end is not None:
            df = df[df.index <= to_utc(end, "end")]
        return df

    def read_many(self, symbols: list[str] | None, timeframe: str, start: pd.Timestamp | str | None = None,
                  end: pd.Timestamp | str | None = None) -> dict[str, pd.DataFrame]:
        """Bars for several symbols (all stored ones when ``symbols`` is None) in [start, end] (UTC).

        Unknown symbols raise, named. A named symbol with no bar in the range raises
        :class:`~graphwiz_trader.errors.NoBarsInRangeError`; with ``symbols=None`` such symbols are dropped
        and logged with why.
        """
        self._check_root()
        have = self.symbols(timeframe)
        wanted = symbols or have
        missing = [s for s in wanted if s not in have]
        if missing:
            raise UnknownSymbolError(missing, f"store {self.root} ({timeframe})", have)
        if not wanted:
            raise DataError(f"store {self.root} holds no {timeframe} bars; run `graphwiz data import` or `download`")
        bars = {s: self.read(s, timeframe) for s in wanted}
        for df in bars.values():
            df.attrs = {}  # the calendar is read by :meth:`calendars`; attrs would not survive concat anyway
        return cut_to_range(bars, start, end, explicit=bool(symbols))[0]
