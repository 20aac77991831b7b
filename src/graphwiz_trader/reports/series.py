"""What report panels show, computed from equity and return series (returns are fractions per bar).

- :func:`monthly_return_grid`: calendar-month returns ``E(end of month) / E(end of previous month) - 1``
  (the first month is measured from ``initial_capital``), as year x month plus the compounded year.
  Months are those of the bar times (bar open times, UTC).
- :func:`rolling_sharpe` / :func:`rolling_volatility`: over the last ``window`` bars (bars <= t only),
  ``mean / std(ddof=1) * sqrt(P)`` and ``std(ddof=1) * sqrt(P)``; NaN until ``window`` bars exist.
- :func:`performance_by_regime`: per regime label, the bars spent in it, their share, the compounded
  return over those bars, the annualised mean return ``mean(r) * P``, volatility and Sharpe.
- :func:`top_and_rest`: the ``k`` largest columns and the sum of the others (``other (n)``).
- :func:`thin_positions`: positions of every k-th point plus the last (plotting only).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError

MONTHS: tuple[str, ...] = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NO_LABEL = "(no label yet)"


def thin_positions(n: int, max_points: int) -> np.ndarray:
    """Positions ``0, k, 2k, ..`` and ``n - 1`` with ``k = ceil(n / max_points)``."""
    step = max(1, math.ceil(n / max(1, max_points)))
    idx = np.arange(0, n, step)
    if len(idx) and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def monthly_returns(equity: pd.Series, initial_capital: float) -> pd.Series:
    """Return of each calendar month (fractions), indexed by the month's end."""
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise DataError("monthly returns need equity on a DatetimeIndex")
    if len(equity) == 0:
        return pd.Series(dtype="float64", name="monthly_return")
    idx = equity.index.tz_convert("UTC") if equity.index.tz is not None else equity.index
    e = pd.Series(equity.to_numpy(dtype="float64"), index=idx)
    last = e.resample("ME").last().dropna()
    prev = last.shift(1)
    prev.iloc[0] = float(initial_capital)
    return (last / prev - 1.0).rename("monthly_return")


def monthly_return_grid(equity: pd.Series, initial_capital: float) -> pd.DataFrame:
    """Year x (Jan..Dec, Year) table of :func:`monthly_returns`; NaN for months outside the run."""
    m = monthly_returns(equity, initial_capital)
    grid = pd.DataFrame(np.nan, index=sorted(set(m.index.year)), columns=[*MONTHS, "Year"])
    for ts, v in m.items():
        grid.at[ts.year, MONTHS[ts.month - 1]] = v
    for y in grid.index:
        vals = m[m.index.year == y]
        grid.at[y, "Year"] = float(np.prod(1.0 + vals.to_numpy()) - 1.0)
    grid.index.name = "year"
    return grid


def rolling_sharpe(returns: pd.Series, window: int, periods_per_year: float) -> pd.Series:
    """Annualised Sharpe over the trailing ``window`` bars (risk-free 0); NaN at zero volatility."""
    roll = returns.rolling(window, min_periods=window)
    sd = roll.std(ddof=1)
    out = roll.mean() / sd.where(sd > 0) * math.sqrt(periods_per_year)
    return out.rename("rolling_sharpe")


def rolling_volatility(returns: pd.Series, window: int, periods_per_year: float) -> pd.Series:
    """Annualised volatility over the trailing ``window`` bars (fraction)."""
    return (returns.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(periods_per_year)).rename(
        "rolling_volatility")


def performance_by_regime(returns: pd.DataFrame, regime: pd.Series, periods_per_year: float) -> pd.DataFrame:
    """Per (regime, run): ``bars``, ``share`` of bars, ``total_return`` (compounded over the regime's
    bars), ``ann_return`` (``mean * P``), ``ann_volatility`` and ``sharpe``.

    ``regime`` is reindexed to ``returns.index``; bars without a label form the group
    :data:`NO_LABEL` (shown, not dropped). Regimes keep their order of first appearance, except that
    the ``*_vol`` names are ordered low, mid, high.
    """
    if not isinstance(returns.index, pd.DatetimeIndex) or not isinstance(regime.index, pd.DatetimeIndex):
        raise DataError("performance by regime needs returns and regime labels on DatetimeIndexes")
    if regime.index.has_duplicates:
        raise DataError(f"regime labels repeat a time, e.g. {regime.index[regime.index.duplicated()][0]}")
    lab = regime.reindex(returns.index).astype(object).where(lambda s: s.notna(), NO_LABEL)
    seen = {r: i for i, r in enumerate(dict.fromkeys(lab.tolist()))}
    rank = {"low_vol": 0, "mid_vol": 1, "high_vol": 2, NO_LABEL: 9}
    order = sorted(seen, key=lambda r: (rank.get(r, 5), seen[r]))
    n = len(returns)
    rows = []
    for reg in order:
        mask = (lab == reg).to_numpy()
        for run in returns.columns:
            r = returns[run].to_numpy(dtype="float64")[mask]
            k = len(r)
            sd = float(np.std(r, ddof=1)) if k > 1 else math.nan
            mean = float(np.mean(r)) if k else math.nan
            rows.append({"regime": reg, "run": str(run), "bars": k, "share": k / n if n else math.nan,
                         "total_return": float(np.prod(1.0 + r) - 1.0) if k else math.nan,
                         "ann_return": mean * periods_per_year,
                         "ann_volatility": sd * math.sqrt(periods_per_year),
                         "sharpe": mean / sd * math.sqrt(periods_per_year) if k > 1 and sd > 0 else math.nan})
    return pd.DataFrame(rows)


def top_and_rest(frame: pd.DataFrame, k: int, by: pd.Series | None = None) -> pd.DataFrame:
    """The ``k`` columns largest by ``by`` (default: mean absolute value) plus one ``other (n)`` column
    holding the row sums of the rest (absent when nothing is left over)."""
    size = by if by is not None else frame.abs().mean()
    keep = list(size.sort_values(ascending=False, kind="stable").index[:k])
    rest = [c for c in frame.columns if c not in keep]
    out = frame[keep].copy()
    if rest:
        out[f"other ({len(rest)})"] = frame[rest].sum(axis=1)
    return out
