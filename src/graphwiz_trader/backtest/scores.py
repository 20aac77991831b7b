"""Scores for the backtest: built-in point-in-time cross-sectional scores, and score panels from files.

Both use closes at bars <= t only (the value at t never changes when later bars are added):

- ``xs_reversal_<k>bar``: ``-z_t``, where ``z_t`` is the cross-sectional z-score (mean 0, std 1
  over the symbols with a value at t) of the trailing ``k``-bar return ``close_t / close_{t-k} - 1``.
  Short-term losers are expected to bounce (the planted signal of the synthetic market is this score
  with k = 1).
- ``xs_momentum_<k>bar_skip<s>``: ``+z`` of the return from ``t-k`` to ``t-s`` (skipping the most
  recent ``s`` bars, which tend to reverse).

A symbol needs closes at both ends of the lookback (after forward-filling gaps) to get a score.

Model scores come as a long ``(datetime, instrument)`` panel (``predictions.parquet`` of ``research
walkforward`` and ``reproduce graph-crypto``: one column per model variant plus ``fold``);
:func:`score_panel` maps one column onto the bars' symbols (:class:`ScorePanel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.errors import ConfigError, DataError, UnknownSymbolError


def _zscore(x: pd.DataFrame) -> pd.DataFrame:
    mean = x.mean(axis=1)
    sd = x.std(axis=1, ddof=0)
    z = x.sub(mean, axis=0).div(sd.where(sd > 0), axis=0)
    return z


def cross_sectional_reversal(close: pd.DataFrame, lookback_bars: int = 1) -> pd.DataFrame:
    """``-zscore`` of the trailing ``lookback_bars`` return across symbols (see module docstring)."""
    if lookback_bars < 1:
        raise ConfigError(f"reversal lookback_bars must be >= 1, got {lookback_bars}")
    filled = close.ffill()
    ret = filled / filled.shift(lookback_bars) - 1.0
    return -_zscore(ret)


def cross_sectional_momentum(close: pd.DataFrame, lookback_bars: int = 168, skip_bars: int = 1) -> pd.DataFrame:
    """``+zscore`` of the return from ``t - lookback_bars`` to ``t - skip_bars`` across symbols."""
    if not 0 <= skip_bars < lookback_bars:
        raise ConfigError(f"momentum needs 0 <= skip_bars < lookback_bars, got {skip_bars}, {lookback_bars}")
    filled = close.ffill()
    ret = filled.shift(skip_bars) / filled.shift(lookback_bars) - 1.0
    return _zscore(ret)


def score_name(kind: str, lookback_bars: int, skip_bars: int = 0) -> str:
    """The name printed next to results, e.g. ``xs_reversal_24bar``."""
    if kind == "reversal":
        return f"xs_reversal_{lookback_bars}bar"
    if kind == "momentum":
        return f"xs_momentum_{lookback_bars}bar_skip{skip_bars}"
    raise ConfigError(f"unknown score kind {kind!r}; expected reversal or momentum")


def point_in_time_scores(close: pd.DataFrame, kind: str, lookback_bars: int, skip_bars: int = 0) -> pd.DataFrame:
    """Dispatch to :func:`cross_sectional_reversal` or :func:`cross_sectional_momentum`."""
    if kind == "reversal":
        out = cross_sectional_reversal(close, lookback_bars)
    elif kind == "momentum":
        out = cross_sectional_momentum(close, lookback_bars, skip_bars)
    else:
        raise ConfigError(f"unknown score kind {kind!r}; expected reversal or momentum")
    return out.replace([np.inf, -np.inf], np.nan)


# --- score panels from files (``graphwiz backtest --scores FILE``) -----------------------------------------

FOLD_COLUMN = "fold"
INDEX_NAMES = ("datetime", "instrument")


class ScoreFileError(DataError):
    """A score panel (``predictions.parquet`` or a frame in its layout) cannot be used as it is."""


@dataclass(frozen=True)
class ScorePanel:
    """Scores of one column on the bars' symbols, ready for the optimiser.

    Attributes
    ----------
    scores : UTC bar time x bar symbol; the score at t is known at bar t's close and is used for the
        decision at t (never shifted). NaN = no score for that symbol at t (not eligible then).
    column : the column of the panel the scores came from.
    start, end : first and last score time (UTC).
    instruments : ``{instrument in the panel: bar symbol}`` (``BTCUSDT`` -> ``BTC/USDT``).
    missing_cells : ``(time, symbol)`` cells of the score range without a score (NaN or no row).
    """

    scores: pd.DataFrame
    column: str
    start: pd.Timestamp
    end: pd.Timestamp
    instruments: dict[str, str]
    missing_cells: int


def read_score_file(path: str | Path) -> pd.DataFrame:
    """A score panel from ``path``: Parquet (``predictions.parquet``) or CSV with ``datetime`` and
    ``instrument`` columns. Parquet is read with pyarrow (no pickle is ever loaded).

    Raises
    ------
    ScoreFileError
        when the file is missing or unreadable, or has no ``(datetime, instrument)`` index/columns.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoreFileError(f"--scores {p}: no such file")
    try:
        if p.suffix.lower() == ".csv":
            frame = pd.read_csv(p)
        else:
            frame = pd.read_parquet(p, engine="pyarrow")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file, named with its reason
        raise ScoreFileError(f"--scores {p}: cannot read it as {'CSV' if p.suffix.lower() == '.csv' else 'Parquet'} "
                             f"({type(exc).__name__}: {exc})") from None
    if list(frame.index.names) != list(INDEX_NAMES):
        if all(c in frame.columns for c in INDEX_NAMES):
            frame = frame.set_index(list(INDEX_NAMES))
        else:
            raise ScoreFileError(f"--scores {p}: expected a (datetime, instrument) index or columns, got index "
                                 f"{list(frame.index.names)} and columns {list(frame.columns)[:12]}")
    return frame


def score_columns(frame: pd.DataFrame) -> list[str]:
    """The score columns of a panel: every column except ``fold``."""
    return [str(c) for c in frame.columns if str(c) != FOLD_COLUMN]


def choose_score_column(frame: pd.DataFrame | pd.Series, column: str | None = None,
                        where: str = "the score panel") -> pd.Series:
    """The scores of ``column``; without one, the panel's only score column.

    Raises
    ------
    ScoreFileError
        when ``column`` is not in the panel, or none is given and the panel has several (or no) score
        columns; the message lists the columns to choose from (``--score-column NAME``).
    """
    if isinstance(frame, pd.Series):
        if column is not None and str(frame.name) != column:
            raise ScoreFileError(f"{where}: --score-column {column!r} asked for, but the scores are one series "
                                 f"named {frame.name!r}")
        return frame.rename(str(frame.name) if frame.name is not None else "score")
    cols = score_columns(frame)
    if column is None:
        if len(cols) != 1:
            raise ScoreFileError(f"{where} has {len(cols)} score columns ({', '.join(cols) or 'none'}); choose one "
                                 f"with --score-column NAME")
        column = cols[0]
    elif column not in cols:
        raise ScoreFileError(f"{where} has no score column {column!r}; its score columns: {', '.join(cols) or 'none'}")
    return frame[column].rename(column)


def _utc_times(values: pd.Index, where: str) -> pd.DatetimeIndex:
    try:
        times = pd.DatetimeIndex(values)
    except (TypeError, ValueError) as exc:
        raise ScoreFileError(f"{where}: the datetime level is not made of times ({exc})") from None
    if times.hasnans:
        raise ScoreFileError(f"{where}: the datetime level holds missing times (NaT)")
    return times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")


def _check_layout(s: pd.Series, where: str) -> None:
    if not isinstance(s.index, pd.MultiIndex) or s.index.nlevels != 2:
        raise ScoreFileError(f"{where}: expected a (datetime, instrument) MultiIndex, got index {list(s.index.names)}")


def score_time_range(scores: pd.Series, where: str = "the score panel") -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last time (UTC) with a score in ``scores`` (a ``(datetime, instrument)`` series)."""
    _check_layout(scores, where)
    times = _utc_times(scores.index.get_level_values(0)[scores.notna().to_numpy()], where)
    if not len(times):
        raise ScoreFileError(f"{where}: column {scores.name!r} holds no score")
    return times.min(), times.max()


def score_panel(scores: pd.DataFrame | pd.Series, bar_symbols: list[str] | tuple[str, ...],
                column: str | None = None, where: str = "the score panel", center: bool = False) -> ScorePanel:
    """Map a long ``(datetime, instrument)`` score panel onto the bars' symbols.

    Instruments are Qlib codes (``BTCUSDT``, :func:`graphwiz_trader.core.symbols.to_qlib_instrument` of a
    bar symbol; matched case-insensitively) or bar symbols themselves. Naive datetimes are read as UTC.
    ``center`` subtracts each time's cross-sectional mean (point in time: only scores of the same t),
    which turns e.g. probabilities that an asset beats the mean into signed scores for the
    expected-return mapping (``alpha = IC * sigma * score / rms``), which reads a score's sign.

    Raises
    ------
    ScoreFileError
        for a missing column choice, non-numeric or infinite scores, repeated ``(datetime, instrument)``
        rows, or an empty panel.
    UnknownSymbolError
        when an instrument has no bars (named, with the instruments that do).
    """
    s = choose_score_column(scores, column, where)
    _check_layout(s, where)
    if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        raise ScoreFileError(f"{where}: column {s.name!r} is not numeric ({s.dtype})")
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    if np.isinf(values).any():
        raise ScoreFileError(f"{where}: column {s.name!r} holds {int(np.isinf(values).sum())} infinite scores")
    times = _utc_times(s.index.get_level_values(0), where)
    insts = [str(i) for i in s.index.get_level_values(1)]
    lookup: dict[str, str] = {}
    for sym in bar_symbols:
        lookup[sym.upper()] = sym
        try:
            lookup[to_qlib_instrument(sym)] = sym
        except DataError:
            pass  # a bar name that is not BASE/QUOTE can still be matched by its own name
    unique = sorted(set(insts))
    unknown = [i for i in unique if i.upper() not in lookup]
    if unknown:
        codes = sorted({to_qlib_instrument(x) for x in bar_symbols if "/" in x})
        raise UnknownSymbolError(unknown, f"the bars ({len(bar_symbols)} symbols; instruments are matched by Qlib "
                                          "code, e.g. BTCUSDT for BTC/USDT)", codes)
    mapping = {i: lookup[i.upper()] for i in unique}
    long = pd.Series(values, index=pd.MultiIndex.from_arrays([times, [mapping[i] for i in insts]],
                                                             names=["datetime", "symbol"]), name=s.name)
    if long.index.has_duplicates:
        t, sym = long.index[long.index.duplicated()][0]
        raise ScoreFileError(f"{where}: repeated rows for {sym} at {t} (two instruments map to one symbol, or "
                             "the panel repeats a row)")
    wide = long.unstack("symbol").sort_index()
    wide.columns = [str(c) for c in wide.columns]
    wide.index = pd.DatetimeIndex(wide.index, name="datetime")
    if wide.empty or not np.isfinite(wide.to_numpy()).any():
        raise ScoreFileError(f"{where}: column {s.name!r} holds no score")
    if center:
        wide = wide.sub(wide.mean(axis=1), axis=0)
    missing = int(wide.isna().to_numpy().sum())
    return ScorePanel(wide, str(s.name), wide.index[0], wide.index[-1], mapping, missing)
