"""What the walk-forward report shows about a signal, computed from out-of-sample predictions.

Inputs: predictions ``s`` and forward returns ``f`` (the forward log return over the label horizon H
bars, demeaned across instruments when the label is relative), both indexed by ``(datetime, instrument)``.

- IC time series: ``IC_t`` = Pearson correlation across instruments at t of ``s_t`` and ``f_t``
  (:func:`graphwiz_trader.models.metrics.ic_series`).
- :func:`ic_by_horizon`: for ``h = m H`` bars, the IC of ``s_t`` with ``sum_{j<m} f_{t + jH}`` (the m
  consecutive, non-overlapping H-bar returns of the instrument's own rows, i.e. its h-bar forward
  return), computed by shifting the forward returns. Its standard error is the Newey-West one of the
  per-date ICs taken every h-th date (returns h bars apart do not overlap).
- :func:`quantile_returns`: each date's instruments split into 5 quantiles by score (rank order; dates
  with fewer than 5 instruments skipped); the mean ``f`` of each quantile on dates H bars apart (so the
  H-bar returns do not overlap), with Newey-West standard errors.
- :func:`signal_turnover`, between consecutive prediction times: the share of the top fifth (the long
  leg of the long-short diagnostic) that is new, ``1 - |top_t & top_t-1| / |top_t|``, and the rank
  autocorrelation (Spearman over the instruments scored at both times).
- :data:`GRAPH_FEATURES`: the ``G_*`` columns :mod:`graphwiz_trader.features.graph_features` makes
  (for every supported number of market regimes), marked in the feature-importance chart.
"""

from __future__ import annotations

import math

import re

import numpy as np
import pandas as pd

from graphwiz_trader.features.graph_features import feature_names
from graphwiz_trader.graph.builders.regimes import market_regime_names
from graphwiz_trader.models.metrics import ic_series
from graphwiz_trader.research.stats import newey_west_se

GRAPH_FEATURES: frozenset[str] = frozenset(n for k in range(2, 7) for n in feature_names(market_regime_names(k)))
HORIZON_MULTIPLES: tuple[int, ...] = (1, 2, 3, 6, 12, 24, 48)
N_QUANTILES = 5


_MOMENTUM_RE = re.compile(r"^G_nbr_mom(_gap)?_\d+$")


def is_graph_feature(name: str) -> bool:
    """True for a column made by :func:`graphwiz_trader.features.graph_features.graph_features`, the neighbour
    momentum (and gap) columns of any horizon included (the CSI300 variant uses 5 days)."""
    return name in GRAPH_FEATURES or bool(_MOMENTUM_RE.match(name))


def _forward_sum(fwd: pd.Series, horizon: int, m: int) -> pd.Series:
    """``sum_{j<m} f_{t + jH}`` over each instrument's own rows (NaN when any term is missing)."""
    f = fwd.sort_index(level=["instrument", "datetime"])
    g = f.groupby(level="instrument", sort=False)
    total = f.copy()
    for j in range(1, m):
        total = total + g.shift(-j * horizon)
    return total


def _se_every(ic: pd.Series, step: int) -> tuple[float, int]:
    sample = ic.iloc[::max(1, step)].to_numpy()
    return (newey_west_se(sample), int(len(sample))) if len(sample) > 1 else (math.nan, int(len(sample)))


def ic_by_horizon(score: pd.Series, fwd: pd.Series, label_horizon: int,
                  multiples: tuple[int, ...] = HORIZON_MULTIPLES, max_bars: int | None = None) -> pd.DataFrame:
    """Per horizon ``h = m H`` bars: mean IC, its standard error and the dates used (module docstring)."""
    rows = []
    for m in multiples:
        h = m * label_horizon
        if max_bars is not None and h > max_bars:
            break
        target = _forward_sum(fwd, label_horizon, m).reindex(score.index)
        try:
            ic = ic_series(score, target)
        except ValueError:
            break
        if len(ic) < 2:
            break
        se, n_eff = _se_every(ic, h)
        rows.append({"horizon_bars": h, "ic": float(ic.mean()), "se": se, "dates": int(len(ic)),
                     "non_overlapping_dates": n_eff})
    return pd.DataFrame(rows, columns=["horizon_bars", "ic", "se", "dates", "non_overlapping_dates"])


def quantile_returns(score: pd.Series, fwd: pd.Series, label_horizon: int,
                     n_quantiles: int = N_QUANTILES) -> pd.DataFrame:
    """Mean forward return of each score quantile (1 = lowest) on dates H bars apart, with its standard error."""
    df = pd.concat({"s": score, "f": fwd}, axis=1, join="inner").dropna()
    dates = df.index.get_level_values("datetime")
    cal = dates.unique().sort_values()
    keep = cal[::max(1, label_horizon)]
    df = df[dates.isin(keep)]
    g = df.groupby(level="datetime")["s"]
    n = g.transform("count")
    df = df[n >= n_quantiles]
    if df.empty:
        return pd.DataFrame(columns=["quantile", "mean", "se", "dates"])
    g = df.groupby(level="datetime")["s"]
    rank = g.rank(method="first")
    cnt = g.transform("count")
    q = np.ceil(rank * n_quantiles / cnt).astype(int)
    per = df["f"].groupby([df.index.get_level_values("datetime"), q.to_numpy()]).mean().unstack()
    rows = []
    for k in range(1, n_quantiles + 1):
        v = per[k].dropna() if k in per else pd.Series(dtype=float)
        rows.append({"quantile": k, "mean": float(v.mean()) if len(v) else math.nan,
                     "se": newey_west_se(v.to_numpy()) if len(v) > 1 else math.nan, "dates": int(len(v))})
    return pd.DataFrame(rows)


def signal_turnover(score: pd.Series, fraction: float = 0.2) -> pd.DataFrame:
    """Per prediction time after the first: ``top_turnover`` (share of the top ``fraction`` that is new)
    and ``rank_autocorr`` (Spearman with the previous time over the instruments scored at both)."""
    wide = score.unstack("instrument").sort_index()
    x = wide.to_numpy(dtype="float64")
    valid = np.isfinite(x)
    n = valid.sum(axis=1)
    k = np.maximum(1, np.floor(n * fraction)).astype(int)
    desc = wide.rank(axis=1, ascending=False, method="first").to_numpy()
    top = valid & (desc <= k[:, None])
    both = valid[1:] & valid[:-1]
    kept = (top[1:] & top[:-1]).sum(axis=1)
    turnover = np.where(n[1:] > 0, 1.0 - kept / k[1:], np.nan)
    cur = pd.DataFrame(np.where(both, x[1:], np.nan)).rank(axis=1).to_numpy()
    prev = pd.DataFrame(np.where(both, x[:-1], np.nan)).rank(axis=1).to_numpy()
    cm = cur - np.nanmean(cur, axis=1, keepdims=True) if len(cur) else cur
    pm = prev - np.nanmean(prev, axis=1, keepdims=True) if len(prev) else prev
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.nansum(cm * pm, axis=1)
        den = np.sqrt(np.nansum(cm * cm, axis=1) * np.nansum(pm * pm, axis=1))
        rho = np.where((both.sum(axis=1) >= 2) & (den > 0), num / den, np.nan)
    return pd.DataFrame({"top_turnover": turnover, "rank_autocorr": rho}, index=wide.index[1:])
