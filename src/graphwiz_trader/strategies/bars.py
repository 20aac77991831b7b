"""The strategy's bounded bar memory: the universe's OHLCV on one bar index, newest last.

Bars arrive as the engines hand them out (``{symbol: frame}``, one or more new rows). They are kept as
``capacity`` rows of ``T x N`` float64 arrays per field (NaN where a symbol has no bar at a time), so memory
stays flat over any number of cycles; older rows are dropped. Everything read from here ends at the newest bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError

FIELDS = ("open", "high", "low", "close", "volume")


class BarBuffer:
    """The last ``capacity`` bars of ``symbols`` on their union bar index.

    Parameters
    ----------
    symbols : the universe (``BASE/QUOTE``), in a fixed order.
    bar : bar length.
    capacity : rows kept (older ones are dropped).
    """

    def __init__(self, symbols: Sequence[str], bar: pd.Timedelta, capacity: int) -> None:
        if capacity < 2:
            raise DataError(f"the bar buffer needs a capacity of at least 2 bars, got {capacity}")
        self.symbols = tuple(symbols)
        self.col = {s: k for k, s in enumerate(self.symbols)}
        self.bar = bar
        self.capacity = int(capacity)
        n = len(self.symbols)
        self._data = np.full((len(FIELDS), 2 * self.capacity, n), np.nan)
        self._times = np.zeros(2 * self.capacity, dtype=np.int64)
        self._len = 0
        self.total_rows = 0
        self.last_bar: dict[str, pd.Timestamp | None] = {s: None for s in self.symbols}

    def __len__(self) -> int:
        return min(self._len, self.capacity)

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self._times[self._tail(None)], tz="UTC", name="datetime")

    @property
    def newest(self) -> pd.Timestamp | None:
        return pd.Timestamp(int(self._times[self._len - 1]), tz="UTC") if self._len else None

    def append(self, bars: Mapping[str, pd.DataFrame]) -> pd.DatetimeIndex:
        """Add the rows of ``bars`` later than the newest kept bar; returns the new bar times (sorted).

        Rows at or before the newest time are ignored (a re-sent bar); unknown symbols raise ``DataError``.
        """
        unknown = [s for s in bars if s not in self.col]
        if unknown:
            raise DataError(f"bars for symbol(s) {', '.join(unknown)} outside the strategy's universe")
        cutoff = int(self._times[self._len - 1]) if self._len else None
        parts = []
        for s, df in bars.items():
            if df is None or not len(df):
                continue
            idx = df.index
            if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
                raise DataError(f"{s}: bars need a tz-aware UTC DatetimeIndex")
            t = idx.asi8
            keep = t > cutoff if cutoff is not None else np.ones(len(t), bool)
            if keep.any():
                if tuple(df.columns[:5]) == FIELDS:      # canonical bars: one block copy
                    vals = df.to_numpy(np.float64)[:, :5]
                else:
                    vals = np.column_stack([df[f].to_numpy(np.float64) for f in FIELDS])
                parts.append((s, t[keep], vals[keep]))
        if not parts:
            return pd.DatetimeIndex([], tz="UTC")
        new_t = np.unique(np.concatenate([p[1] for p in parts]))
        if len(new_t) > self.capacity:  # more than fits (a long warm-up): keep the newest
            lo = new_t[-self.capacity]
            parts = [(s, t[t >= lo], v[t >= lo]) for s, t, v in parts]
            new_t = new_t[-self.capacity:]
        k = len(new_t)
        self._make_room(k)
        rows = slice(self._len, self._len + k)
        self._data[:, rows, :] = np.nan
        self._times[rows] = new_t
        for s, t, vals in parts:
            pos = self._len + np.searchsorted(new_t, t)
            self._data[:, pos, self.col[s]] = vals.T
            self.last_bar[s] = pd.Timestamp(int(t.max()), tz="UTC")
        self._len += k
        self.total_rows += k
        return pd.DatetimeIndex(new_t, tz="UTC")

    def _make_room(self, k: int) -> None:
        """Shift the newest ``capacity - k`` rows to the front when ``k`` more rows would not fit."""
        if self._len + k > self._data.shape[1]:
            keep = max(min(self._len, self.capacity - k), 0)
            self._data[:, :keep, :] = self._data[:, self._len - keep: self._len, :]
            self._times[:keep] = self._times[self._len - keep: self._len]
            self._len = keep

    def _tail(self, rows: int | None) -> slice:
        n = min(self._len, self.capacity if rows is None else int(rows))
        return slice(self._len - n, self._len)

    def field(self, name: str, rows: int | None = None) -> pd.DataFrame:
        """``bars x symbols`` frame of one field over the last ``rows`` bars (default: the capacity)."""
        sl = self._tail(rows)
        k = FIELDS.index(name)
        return pd.DataFrame(self._data[k, sl, :], index=pd.DatetimeIndex(self._times[sl], tz="UTC", name="datetime"),
                            columns=list(self.symbols))

    def fields(self, rows: int | None = None) -> dict[str, pd.DataFrame]:
        return {f: self.field(f, rows) for f in FIELDS}

    def array(self, name: str, rows: int | None = None) -> np.ndarray:
        """The raw ``rows x N`` float64 array of one field (a view: do not modify)."""
        return self._data[FIELDS.index(name), self._tail(rows), :]

    def frames(self, rows: int | None = None, symbols: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
        """Canonical bars ``{symbol: OHLCV frame}`` over the last ``rows`` bars (a symbol's missing bars left out)."""
        sl = self._tail(rows)
        idx = pd.DatetimeIndex(self._times[sl], tz="UTC", name="datetime")
        out = {}
        for s in symbols or self.symbols:
            k = self.col[s]
            vals = self._data[:, sl, k].T
            ok = np.isfinite(vals[:, 3])
            if ok.any():
                out[s] = pd.DataFrame(vals[ok], index=idx[ok], columns=list(FIELDS))
        return out

    def last_close(self) -> dict[str, float]:
        """Each symbol's last known close (carried over its gaps)."""
        c = self.array("close")
        out = {}
        for s, k in self.col.items():
            ok = np.flatnonzero(np.isfinite(c[:, k]))
            if len(ok):
                out[s] = float(c[ok[-1], k])
        return out

    def stale(self, now: pd.Timestamp, max_age_bars: int) -> dict[str, str]:
        """Symbols whose newest bar is more than ``max_age_bars`` bars older than the bar at ``now``, with why."""
        out = {}
        for s, t in self.last_bar.items():
            if t is None:
                out[s] = "no bar yet"
            else:
                age = int((now - t) / self.bar)
                if age > max_age_bars:
                    out[s] = f"newest bar {t} is {age} bars old (limit {max_age_bars})"
        return out
