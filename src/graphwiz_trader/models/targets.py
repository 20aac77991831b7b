"""Labels. They look forward and live only here; features never import this module.

Every label is per (datetime, instrument) and aligned at t: the label at t is known only after
``horizon`` more bars. Walk-forward splits leave a gap of at least ``horizon`` bars between a training
label and the first test bar (see :mod:`graphwiz_trader.research.walkforward`).

Kinds (:class:`LabelSpec`):

- ``regression``: forward log return ``log(close[t+h] / close[t])``.
- ``direction``: 1 when the forward log return is above ``threshold`` (a fraction), 0 when below, NaN when equal.
- ``drawdown``: 1 when the worst low over the next ``h`` bars is more than ``threshold`` below close[t],
  i.e. ``min(low[t+1..t+h]) / close[t] - 1 < -threshold`` (the drawdown-risk target), else 0.

With ``relative=True`` (universes) the forward return is first demeaned across instruments at each t,
so ``direction`` asks "does this asset beat the cross-sectional mean?" (a ranking target) and
``regression`` fits the cross-sectional excess return.

Ties: a ``direction`` label is NaN (left out, not "down") where the forward return, demeaned when
``relative``, equals ``threshold`` exactly; with the default threshold 0 these are the zero-return
bars (walk-forward folds count them as ``zero_return_rows``).

Horizons count bars of the SHARED calendar (the union of every instrument's datetimes), the same bars
the walk-forward gap counts: ``t+h`` is the h-th calendar bar after t. An instrument without a bar at
``t+h`` has a NaN label at t (never the label of its next available row), and a drawdown label is NaN
when any of its h calendar bars is missing. NaN where the future is not available.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.errors import DataError, SettingError

LabelKind = Literal["regression", "direction", "drawdown"]


@dataclass(frozen=True)
class LabelSpec:
    """What a model predicts. ``threshold`` is a fraction (0.02 = 2%)."""

    kind: LabelKind = "regression"
    horizon: int = 1
    threshold: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise SettingError(f"label horizon must be >= 1 bar, got {self.horizon}")
        if self.kind not in ("regression", "direction", "drawdown"):
            raise SettingError(f"unknown label kind {self.kind!r}")
        if self.kind == "drawdown" and self.threshold <= 0:
            raise SettingError("a drawdown label needs threshold > 0 (e.g. 0.05 for 5%)")
        if self.kind == "drawdown" and self.relative:
            raise SettingError("the drawdown label is absolute; relative=True applies to regression/direction")

    @property
    def is_classification(self) -> bool:
        return self.kind in ("direction", "drawdown")

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        r = f"log(close[t+{self.horizon}]/close[t])"
        if self.relative:
            r = f"({r} - cross-sectional mean)"
        if self.kind == "regression":
            return r
        if self.kind == "direction":
            return f"1[{r} > {self.threshold}]"
        return f"1[min(low[t+1..t+{self.horizon}])/close[t] - 1 < -{self.threshold}]"


def _index(df: pd.DataFrame, code: str) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([df.index.tz_convert(None), np.repeat(code, len(df))],
                                     names=["datetime", "instrument"])


def _forward_min(x: np.ndarray, h: int) -> np.ndarray:
    """min(x[t+1..t+h]) for each t; NaN where fewer than h future values exist or any of them is NaN."""
    n = len(x)
    out = np.full(n, np.nan)
    if n <= h:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(x[1:], h)  # windows[t] = x[t+1 .. t+h]
    out[: len(windows)] = windows.min(axis=1)
    return out


def shared_calendar(bars: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The union of every instrument's datetimes, sorted, tz-naive UTC."""
    idx = pd.DatetimeIndex([])
    for df in bars.values():
        idx = idx.union(df.index.tz_convert(None))
    return idx.sort_values()


def make_label(bars: dict[str, pd.DataFrame], spec: LabelSpec) -> pd.Series:
    """The label of ``spec`` for every (datetime, instrument), named ``label``; datetimes tz-naive UTC.

    Computed on :func:`shared_calendar`: each instrument's closes (lows) are placed on the calendar, so
    a missing bar gives NaN rather than shifting the horizon onto a later row.
    """
    calendar = shared_calendar(bars)
    parts = []
    h = spec.horizon
    for sym, df in bars.items():
        own = df.index.tz_convert(None)
        pos = calendar.get_indexer(own)
        c = np.full(len(calendar), np.nan)
        c[pos] = df["close"].to_numpy(dtype="float64")
        if spec.kind == "drawdown":
            low = np.full(len(calendar), np.nan)
            low[pos] = df["low"].to_numpy(dtype="float64")
            fmin = _forward_min(low, h)
            val = np.where(np.isnan(fmin), np.nan, (fmin / c - 1.0 < -spec.threshold).astype(float))
        else:
            val = np.full(len(calendar), np.nan)
            lc = np.log(c)
            n = len(calendar)
            val[: max(n - h, 0)] = lc[h:] - lc[: max(n - h, 0)]
        parts.append(pd.Series(val[pos], index=_index(df, to_qlib_instrument(sym))))
    out = pd.concat(parts).sort_index()
    if spec.kind != "drawdown":
        if spec.relative:
            out = out - out.groupby(level="datetime").transform("mean")
        if spec.kind == "direction":
            cls = np.where(out > spec.threshold, 1.0, 0.0)
            out = pd.Series(np.where(out.isna() | (out == spec.threshold), np.nan, cls), index=out.index)
    return out.rename("label")


def forward_log_return(bars: dict[str, pd.DataFrame], horizon: int = 1) -> pd.Series:
    """Shorthand for the regression label: log(close[t+horizon]/close[t]) on the shared calendar."""
    return make_label(bars, LabelSpec("regression", horizon))


def forward_log_return_panel(close: pd.DataFrame, horizon: int = 1) -> pd.Series:
    """``log(close[t+horizon] / close[t])`` of a close panel (rows = bar times, columns = Qlib instruments).

    Rows are positions of the panel: a missing close at t or t+horizon gives NaN (no gap is bridged). The
    result is indexed ``(datetime, instrument)`` with tz-naive UTC datetimes, NaN rows left out.
    """
    if horizon < 1:
        raise SettingError(f"horizon must be >= 1 bar, got {horizon}")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise DataError("forward_log_return_panel: the close panel's index must be ascending and unique")
    lc = np.log(close.to_numpy(dtype=np.float64))
    fwd = np.full_like(lc, np.nan)
    if len(lc) > horizon:
        fwd[:-horizon] = lc[horizon:] - lc[:-horizon]
    return panel_to_long(fwd, close).sort_index().rename("label")


def panel_to_long(values: np.ndarray, like: pd.DataFrame) -> pd.Series:
    """``values`` (shaped like the panel ``like``: bar times x instruments) as a ``(datetime, instrument)`` series
    with tz-naive UTC datetimes (Qlib's convention), NaN cells left out."""
    idx = pd.DatetimeIndex(like.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    out = pd.DataFrame(values, index=idx, columns=[str(c) for c in like.columns]).stack(future_stack=True)
    out.index = out.index.set_names(["datetime", "instrument"])
    return out.dropna()


def cross_sectional_rank(values: pd.Series, min_count: int = 2) -> pd.Series:
    """Per datetime, the centred percentile rank ``(rank - 0.5) / n - 0.5`` in (-0.5, 0.5) (average ranks on ties).

    ``n`` is the number of non-NaN values at that datetime; datetimes with fewer than ``min_count`` of them and
    NaN values give NaN. The rank label of the ablations: a model fitted on it learns the cross-sectional order
    of the forward return, and its Spearman correlation with it equals that with the return itself.
    """
    g = values.groupby(level="datetime")
    n = g.transform("count")
    r = g.rank(method="average")
    out = (r - 0.5) / n - 0.5
    return out.where(n >= min_count).rename(values.name)
