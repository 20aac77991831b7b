"""Write bars into Qlib's binary layout (Qlib's ``dump_bin.py`` is not in the wheel).

Layout under ``out_dir``::

    calendars/<freq>.txt                  one timestamp per line (UTC, naive text), sorted
    instruments/all.txt                   CODE<TAB>first<TAB>last
    features/<code>/<field>.<freq>.bin    little-endian float32: [start index in calendar, v0, v1, ...]

``<freq>`` is Qlib's name: ``day`` or ``<N>min`` (hourly = ``60min``). Codes are ``BTCUSDT`` (no slash);
feature folders are lower-case, as Qlib looks them up. A symbol's series runs contiguously on the
common calendar from its first to its last bar; bars it lacks inside that span are NaN (never filled).

Fields: open, high, low, close, volume, vwap, factor. ``vwap``: when the source has no traded value
(freqtrade candles do not), it is approximated by the typical price (high + low + close) / 3 and this
is recorded in ``meta.json``. ``factor`` is 1.0: crypto spot prices need no split/dividend adjustment.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.core.timeframes import from_qlib_freq, qlib_freq_is_valid
from graphwiz_trader.data.cache import CacheLimits, enforce_cache_limits, mark_used
from graphwiz_trader.data.calendars import infer_calendar
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError

log = logging.getLogger(__name__)
FIELDS = ("open", "high", "low", "close", "volume", "vwap", "factor")
VWAP_APPROXIMATION = "typical price (high + low + close) / 3"


def calendar_format(freq: str) -> str:
    return "%Y-%m-%d" if freq == "day" else "%Y-%m-%d %H:%M:%S"


def write_qlib_bins(bars: dict[str, pd.DataFrame], out_dir: str | Path, freq: str,
                    calendar: str | None = None) -> dict[str, object]:
    """Write ``bars`` (validated strictly first, on ``calendar``) as Qlib bins at ``freq``. Replaces that freq's files.

    ``calendar``: the bars' trading calendar (``24/7``, ``XNYS``...); None: inferred from the symbols
    (:func:`graphwiz_trader.data.calendars.infer_calendar`). Qlib's calendar file holds the union of the bars'
    times, so an exchange's closed sessions never enter it.

    Returns a summary: calendar length, instruments, fields, and the vwap approximation used.

    Raises
    ------
    DataError
        for an unknown freq, no bars, or two symbols with one Qlib code (``BTC/USDT`` and ``BTCUSDT``).
    """
    if not qlib_freq_is_valid(freq):
        raise DataError(f"unknown qlib freq {freq!r}; expected 'day' or '<N>min' (hourly is '60min', not '1h')")
    if not bars:
        raise DataError("no bars to write")
    timeframe = from_qlib_freq(freq)
    codes: dict[str, str] = {}
    for sym in bars:
        code = to_qlib_instrument(sym)
        if code in codes:
            raise DataError(f"{codes[code]} and {sym} would share the Qlib instrument code {code}; keep one of them")
        codes[code] = sym
    cal = calendar or infer_calendar("store", list(bars))[0]
    validate_bars(bars, timeframe, strict=True, calendar=cal)
    out = Path(out_dir)
    (out / "calendars").mkdir(parents=True, exist_ok=True)
    (out / "instruments").mkdir(parents=True, exist_ok=True)
    fmt = calendar_format(freq)

    calendar = pd.DatetimeIndex(np.unique(np.concatenate([df.index.asi8 for df in bars.values()])), tz="UTC")
    if freq == "day" and (calendar.hour.any() or calendar.minute.any()):
        raise DataError("daily bars must be stamped at 00:00 UTC to be written at freq 'day'")
    cal_text = calendar.tz_convert(None).strftime(fmt)
    (out / "calendars" / f"{freq}.txt").write_text("\n".join(cal_text) + "\n")

    inst_lines = []
    for sym, df in bars.items():
        code = to_qlib_instrument(sym)
        pos = calendar.get_indexer(df.index)
        first, last = int(pos.min()), int(pos.max())
        span = last - first + 1
        has_vwap = "vwap" in df.columns
        values = {
            "open": df["open"], "high": df["high"], "low": df["low"], "close": df["close"],
            "volume": df["volume"],
            "vwap": df["vwap"] if has_vwap else (df["high"] + df["low"] + df["close"]) / 3.0,
            "factor": pd.Series(1.0, index=df.index),
        }
        fdir = out / "features" / code.lower()
        fdir.mkdir(parents=True, exist_ok=True)
        for field in FIELDS:
            arr = np.full(span + 1, np.nan, dtype="<f4")
            arr[0] = first
            arr[1 + pos - first] = values[field].to_numpy(dtype="float64")
            arr.tofile(fdir / f"{field}.{freq}.bin")
        inst_lines.append(f"{code}\t{cal_text[first]}\t{cal_text[last]}")

    inst_path = out / "instruments" / "all.txt"
    existing = {}
    if inst_path.exists():  # keep instruments of other freqs written earlier
        for line in inst_path.read_text().splitlines():
            if line.strip():
                existing[line.split("\t")[0]] = line
    for line in inst_lines:
        existing[line.split("\t")[0]] = line
    inst_path.write_text("\n".join(existing[k] for k in sorted(existing)) + "\n")

    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta[freq] = {
        "calendar_length": len(calendar),
        "start": cal_text[0],
        "end": cal_text[-1],
        "instruments": sorted(to_qlib_instrument(s) for s in bars),
        "symbols": {to_qlib_instrument(s): s for s in bars},
        "vwap": VWAP_APPROXIMATION,
        "timezone": "UTC",
        "fingerprint": bars_fingerprint(bars),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    from graphwiz_trader.data.qlib_runtime import invalidate

    invalidate()
    log.info("wrote Qlib bins at %s: %d instruments, %d calendar entries (%s)", out, len(bars), len(calendar), freq)
    return {"out": str(out), "freq": freq, **meta[freq]}


def bars_fingerprint(bars: dict[str, pd.DataFrame]) -> str:
    """A content hash of the bars (symbol, index and OHLCV values)."""
    h = hashlib.sha256()
    for sym in sorted(bars):
        df = bars[sym]
        h.update(sym.encode())
        h.update(df.index.asi8.tobytes())
        h.update(np.ascontiguousarray(df[["open", "high", "low", "close", "volume"]].to_numpy("float64")).tobytes())
    return h.hexdigest()[:16]


def prepare_qlib_dir(bars: dict[str, pd.DataFrame], root: str | Path, freq: str,
                     limits: CacheLimits | None = None, calendar: str | None = None) -> Path:
    """Bins for ``bars`` under ``root/<freq>_<fingerprint>``, written only when not already there.

    Content-addressed, so repeated runs on the same data reuse the bins (and the feature cache in them).
    The folder ``root`` is a bounded cache: after this entry is marked used, entries beyond ``limits``
    (default: the settings' defaults, see :class:`~graphwiz_trader.data.cache.CacheLimits`) are evicted,
    least recently used first; this entry and any used in the last hour are kept. ``calendar``: see
    :func:`write_qlib_bins`.
    """
    fp = bars_fingerprint(bars)
    out = Path(root) / f"{freq}_{fp}"
    meta = out / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get(freq, {}).get("fingerprint") == fp:
        log.info("reusing Qlib bins %s", out)
    else:
        write_qlib_bins(bars, out, freq, calendar)
    mark_used(out)
    enforce_cache_limits(root, limits, protect=[out])
    return out
