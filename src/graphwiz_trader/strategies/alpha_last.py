"""Alpha158 (+ the default extras) for the NEWEST bar only, without recomputing history.

Every Alpha158 expression looks back at most :data:`ALPHA_LOOKBACK` = 61 bars (a 60-bar window of a one-bar
return), and Qlib evaluates its rolling operators with ``min_periods=1``, so the value at bar t is a function of
bars ``t-61 .. t`` only. Two ways to get it:

- :func:`alpha_last_qlib`: Qlib's own Alpha158 on the trailing ``window`` bars (``window >= 62``), last row
  (about a second per call for 20 symbols: Qlib's expression engine dominates);
- :func:`alpha_last_numpy`: the same expressions evaluated for the last bar only, vectorised over symbols
  (milliseconds). Each operator follows Qlib's definition (``qlib.data.ops`` and its Cython rolling
  functions): inputs are the float32 values Qlib's bins hold (``vwap`` = typical price (H + L + C) / 3, as
  ``data.qlib_bins`` writes it), rolling windows skip NaN and +-inf (``min_periods=1``, pandas' rule), ``Std`` has ``ddof=1``,
  ``Quantile`` interpolates linearly, ``Rank`` is the average-tie percentile of the last value, ``IdxMax``/
  ``IdxMin`` are numpy's ``argmax + 1`` (a NaN in the window wins, as in Qlib), ``Slope``/``Rsquare``/``Resi``
  regress on positions 1..N of the valid values, ``Corr`` uses pairwise-complete values, and ``Rsquare``/
  ``Corr`` are NaN where an input's rolling std is within 2e-5 of 0. Output is float32 like the Qlib frame.

``tests/strategies/test_alpha_last.py`` checks both against Qlib's full computation at the same bars.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.errors import DataError
from graphwiz_trader.features.alpha158 import ALPHA158_LOOKBACK, DEFAULT_EXTRAS

__all__ = ["ALPHA_LOOKBACK", "alpha158_names", "alpha_last_numpy", "alpha_last_qlib"]

ALPHA_LOOKBACK = ALPHA158_LOOKBACK
"""Bars before t that Alpha158 (and the default extras) can read: a 60-bar window of a one-bar change."""

_EPS = 1e-12
_NAME = re.compile(r"^([A-Z]+?)(\d+)$")


def alpha158_names() -> list[str]:
    """Alpha158's column names in Qlib's order (from Qlib's own feature config)."""
    from qlib.contrib.data.loader import Alpha158DL

    return list(Alpha158DL.get_feature_config()[1])


# --------------------------------------------------------------------------------------------- window ops
# x: (N symbols, W bars) arrays, last column = bar t. Each op returns the value at t, shape (N,).

def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[:, k:] = x[:, :-k]
    return out


def _win(x: np.ndarray, d: int) -> np.ndarray:
    w = x[:, -d:].astype(np.float64)
    w[np.isinf(w)] = np.nan            # pandas' rolling windows read +-inf as missing
    return w


def _count(w: np.ndarray) -> np.ndarray:
    return (~np.isnan(w)).sum(axis=1)


def _mean(x: np.ndarray, d: int) -> np.ndarray:
    w = _win(x, d)
    n = _count(w)
    s = np.where(np.isnan(w), 0.0, w).sum(axis=1)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _sum(x: np.ndarray, d: int) -> np.ndarray:
    w = _win(x, d)
    return np.where(_count(w) > 0, np.where(np.isnan(w), 0.0, w).sum(axis=1), np.nan)


def _std(x: np.ndarray, d: int) -> np.ndarray:
    w = _win(x, d)
    n = _count(w)
    m = np.where(n > 0, np.where(np.isnan(w), 0.0, w).sum(axis=1) / np.maximum(n, 1), 0.0)
    dev = np.where(np.isnan(w), 0.0, w - m[:, None])
    var = (dev * dev).sum(axis=1) / np.maximum(n - 1, 1)
    return np.where(n >= 2, np.sqrt(var), np.nan)


def _nanreduce(x: np.ndarray, d: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
    w = _win(x, d)
    ok = _count(w) > 0
    out = np.full(len(w), np.nan)
    if ok.any():
        out[ok] = fn(w[ok], axis=1)
    return out


def _quantile(x: np.ndarray, d: int, q: float) -> np.ndarray:
    w = _win(x, d)
    full = ~np.isnan(w).any(axis=1)
    out = np.full(len(w), np.nan)
    if full.any():                      # complete windows in one vectorised call (the usual case)
        out[full] = np.quantile(w[full], q, axis=1, method="linear")
    part = ~full & (_count(w) > 0)
    if part.any():
        out[part] = np.nanquantile(w[part], q, axis=1, method="linear")
    return out


def _rank(x: np.ndarray, d: int) -> np.ndarray:
    w = _win(x, d)
    last = w[:, -1]
    valid = ~np.isnan(w)
    n = valid.sum(axis=1)
    less = (valid & (w < last[:, None])).sum(axis=1)
    equal = (valid & (w == last[:, None])).sum(axis=1)
    return np.where(np.isfinite(last), (less + (equal + 1) / 2.0) / np.maximum(n, 1), np.nan)


def _idx(x: np.ndarray, d: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
    return fn(_win(x, d), axis=1).astype(np.float64) + 1.0   # numpy semantics: the first NaN wins


def _regression(x: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(slope, intercept, r squared, last value) of the valid values on positions 1..d (newest = d)."""
    w = _win(x, d)
    valid = ~np.isnan(w)
    pos = np.arange(1, d + 1, dtype=np.float64)[None, :]
    n = valid.sum(axis=1).astype(np.float64)
    y = np.where(valid, w, 0.0)
    xs = np.where(valid, pos, 0.0)
    sx, sy = xs.sum(axis=1), y.sum(axis=1)
    sxx, syy, sxy = (xs * xs).sum(axis=1), (y * y).sum(axis=1), (xs * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        intercept = sy / n - slope * sx / n
        r = (n * sxy - sx * sy) / np.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))
    return slope, intercept, r * r, w[:, -1]


def _flat(std: np.ndarray) -> np.ndarray:
    return np.isclose(std, 0.0, atol=2e-05)


def _corr(a: np.ndarray, b: np.ndarray, d: int) -> np.ndarray:
    wa, wb = _win(a, d), _win(b, d)
    both = ~np.isnan(wa) & ~np.isnan(wb)
    n = both.sum(axis=1).astype(np.float64)
    xa, xb = np.where(both, wa, 0.0), np.where(both, wb, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ma, mb = xa.sum(axis=1) / n, xb.sum(axis=1) / n
        da, db = np.where(both, wa - ma[:, None], 0.0), np.where(both, wb - mb[:, None], 0.0)
        r = (da * db).sum(axis=1) / np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
    r = np.where(n >= 2, r, np.nan)
    return np.where(_flat(_std(a, d)) | _flat(_std(b, d)), np.nan, r)


# --------------------------------------------------------------------------------------------- features

def _rolling_feature(op: str, d: int, f: dict[str, np.ndarray]) -> np.ndarray:
    o, h, lo, c, v = f["open"], f["high"], f["low"], f["close"], f["volume"]
    ct = c[:, -1].astype(np.float64)
    vt = (v[:, -1] + np.float32(_EPS)).astype(np.float64)
    c1 = f["c1"]
    dc = c - c1                                   # close - Ref(close, 1), float32
    dv = v - f["v1"]
    if op == "ROC":
        return f["c_shift"](d)[:, -1] / c[:, -1]
    if op == "MA":
        return _mean(c, d) / ct
    if op == "STD":
        return _std(c, d) / ct
    if op in ("BETA", "RSQR", "RESI"):
        slope, icpt, r2, last = _regression(c, d)
        if op == "BETA":
            return slope / ct
        if op == "RSQR":
            return np.where(_flat(_std(c, d)), np.nan, r2)
        return (last - (slope * d + icpt)) / ct
    if op == "MAX":
        return _nanreduce(h, d, np.nanmax) / ct
    if op == "MIN":
        return _nanreduce(lo, d, np.nanmin) / ct
    if op == "QTLU":
        return _quantile(c, d, 0.8) / ct
    if op == "QTLD":
        return _quantile(c, d, 0.2) / ct
    if op == "RANK":
        return _rank(c, d)
    if op == "RSV":
        mn, mx = _nanreduce(lo, d, np.nanmin), _nanreduce(h, d, np.nanmax)
        return (ct - mn) / (mx - mn + _EPS)
    if op == "IMAX":
        return _idx(h, d, np.argmax) / d
    if op == "IMIN":
        return _idx(lo, d, np.argmin) / d
    if op == "IMXD":
        return (_idx(h, d, np.argmax) - _idx(lo, d, np.argmin)) / d
    if op == "CORR":
        return _corr(c, np.log(v + np.float32(1)), d)
    if op == "CORD":
        return _corr(c / c1, np.log(v / f["v1"] + np.float32(1)), d)
    if op in ("CNTP", "CNTN", "CNTD"):
        up = _mean((c > c1).astype(np.float64), d)
        dn = _mean((c < c1).astype(np.float64), d)
        return up if op == "CNTP" else dn if op == "CNTN" else up - dn
    if op in ("SUMP", "SUMN", "SUMD", "VSUMP", "VSUMN", "VSUMD"):
        x = dc if op[0] == "S" else dv
        pos = _sum(np.maximum(x, np.float32(0)), d)
        neg = _sum(np.maximum(-x, np.float32(0)), d)
        tot = _sum(np.abs(x), d) + _EPS
        kind = op[-1]
        return pos / tot if kind == "P" else neg / tot if kind == "N" else (pos - neg) / tot
    if op == "VMA":
        return _mean(v, d) / vt
    if op == "VSTD":
        return _std(v, d) / vt
    if op == "WVMA":
        x = np.abs(c / c1 - np.float32(1)) * v
        return _std(x, d) / (_mean(x, d) + _EPS)
    raise DataError(f"Alpha158 operator {op!r} has no last-bar implementation")


def _kbar(name: str, f: dict[str, np.ndarray]) -> np.ndarray:
    o, h, lo, c = (f[k][:, -1] for k in ("open", "high", "low", "close"))
    rng = h - lo + np.float32(_EPS)
    top, bot = np.maximum(o, c), np.minimum(o, c)
    table = {"KMID": lambda: (c - o) / o, "KLEN": lambda: (h - lo) / o, "KMID2": lambda: (c - o) / rng,
             "KUP": lambda: (h - top) / o, "KUP2": lambda: (h - top) / rng, "KLOW": lambda: (bot - lo) / o,
             "KLOW2": lambda: (bot - lo) / rng, "KSFT": lambda: (np.float32(2) * c - h - lo) / o,
             "KSFT2": lambda: (np.float32(2) * c - h - lo) / rng,
             "OPEN0": lambda: o / c, "HIGH0": lambda: h / c, "LOW0": lambda: lo / c,
             "VWAP0": lambda: f["vwap"][:, -1] / c}
    return table[name]()


def _extra(name: str, f: dict[str, np.ndarray]) -> np.ndarray:
    c, h, lo, v = f["close"], f["high"], f["low"], f["volume"]
    c1 = f["c1"]
    if name == "VRATIO20":
        return v[:, -1] / (_mean(v, 20) + _EPS)
    if name == "OBV20":
        return _sum(np.sign((c - c1).astype(np.float32)) * v, 20) / (_sum(v, 20) + _EPS)
    if name == "ACC5":
        c5, c10 = c[:, -6], c[:, -11]
        return (c[:, -1] / c5 - np.float32(1)) - (c5 / c10 - np.float32(1))
    if name == "HHHL10":
        h1, l1 = _shift(h, 1), _shift(lo, 1)
        up = ((h > h1) & (lo > l1)).astype(np.float64)
        dn = ((h < h1) & (lo < l1)).astype(np.float64)
        return _mean(up, 10) - _mean(dn, 10)
    raise DataError(f"extra feature {name!r} has no last-bar implementation")


def alpha_last_numpy(ohlcv: Mapping[str, pd.DataFrame], time: pd.Timestamp,
                     extras: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Alpha158 (+ ``extras``, which must be the default extras or a subset) at ``time`` for every symbol with a bar there.

    Parameters
    ----------
    ohlcv : field -> ``bars x symbols`` frame (``open high low close volume``) on one bar index ending at ``time``,
        at least ``ALPHA_LOOKBACK + 1`` rows (NaN where a symbol has no bar).
    time : the newest bar (UTC); the output's datetime (tz-naive UTC, Qlib's convention).
    extras : ``{name: qlib expression}`` (``None``: :data:`DEFAULT_EXTRAS`; ``{}``: none).

    Returns
    -------
    DataFrame indexed by (datetime, instrument), float32, columns as Qlib's Alpha158 frame.
    """
    ex = dict(DEFAULT_EXTRAS if extras is None else extras)
    unknown = [k for k, expr in ex.items() if DEFAULT_EXTRAS.get(k) != expr]
    if unknown:
        raise DataError(f"extras {', '.join(unknown)} are not the default expressions; use alpha_last_qlib")
    close = ohlcv["close"]
    if len(close) < ALPHA_LOOKBACK + 1:
        raise DataError(f"Alpha158 at {time} needs {ALPHA_LOOKBACK + 1} bars of history, got {len(close)}")
    if close.index[-1] != time:
        raise DataError(f"the bar window ends at {close.index[-1]}, not at the requested {time}")
    symbols = [str(s) for s in close.columns]
    f: dict[str, np.ndarray] = {k: ohlcv[k].to_numpy(np.float64).T.astype(np.float32)
                                for k in ("open", "high", "low", "close", "volume")}
    h64, l64, c64 = (ohlcv[k].to_numpy(np.float64).T for k in ("high", "low", "close"))
    f["vwap"] = ((h64 + l64 + c64) / 3.0).astype(np.float32)
    f["c1"] = _shift(f["close"], 1)
    f["v1"] = _shift(f["volume"], 1)
    f["c_shift"] = lambda k: _shift(f["close"], k)  # type: ignore[assignment]
    cols: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for name in alpha158_names():
            m = _NAME.match(name)
            if m is None or name.startswith("K") or m.group(2) == "0":
                cols[name] = _kbar(name, f)
            else:
                cols[name] = _rolling_feature(m.group(1), int(m.group(2)), f)
        for name in ex:
            cols[name] = _extra(name, f)
    has = np.isfinite(f["close"][:, -1])
    codes = np.array([to_qlib_instrument(s) for s in symbols], dtype=object)
    order = np.argsort(codes, kind="stable")
    order = order[has[order]]
    t = pd.Timestamp(time).tz_convert("UTC").tz_localize(None) if pd.Timestamp(time).tzinfo else pd.Timestamp(time)
    index = pd.MultiIndex.from_arrays([pd.DatetimeIndex([t] * len(order)), codes[order]],
                                      names=["datetime", "instrument"])
    data = {k: np.asarray(v, dtype=np.float64)[order].astype(np.float32) for k, v in cols.items()}
    return pd.DataFrame(data, index=index)


def alpha_last_qlib(bars: Mapping[str, pd.DataFrame], time: pd.Timestamp, work_dir: str | Path,
                    extras: Mapping[str, str] | None = None, window: int = 64) -> pd.DataFrame:
    """Qlib's Alpha158 (+ ``extras``) on the trailing ``window`` bars ending at ``time``, the rows at ``time`` only.

    ``window`` must exceed :data:`ALPHA_LOOKBACK` (the value at ``time`` then equals the full computation's).
    """
    from graphwiz_trader.features.pipeline import alpha_features

    if window <= ALPHA_LOOKBACK:
        raise DataError(f"the Alpha158 window must be more than {ALPHA_LOOKBACK} bars, got {window}")
    t = pd.Timestamp(time)
    part = {s: df.loc[:t].iloc[-window:] for s, df in bars.items()}
    part = {s: df for s, df in part.items() if len(df)}
    feats = alpha_features(part, work_dir, None if extras is None else dict(extras))
    naive = t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t
    return feats[feats.index.get_level_values("datetime") == naive]


def panel_fields(bars: Mapping[str, pd.DataFrame], symbols: Sequence[str], rows: int) -> dict[str, pd.DataFrame]:
    """``{field: bars x symbols}`` of the last ``rows`` union bar times of ``bars`` (NaN where a symbol has none)."""
    out = {}
    for k in ("open", "high", "low", "close", "volume"):
        out[k] = pd.DataFrame({s: bars[s][k] for s in symbols}).iloc[-rows:]
    return out
