"""Statistics of per-fold figures that respect the dependence between consecutive folds.

Walk-forward folds are not independent: with 8,760 training bars and a stride of 720, consecutive
folds share about 92% of their training bars, so their errors are correlated and an i.i.d. t-interval or
bootstrap is too narrow. Used here instead:

- lag-1 autocorrelation ``rho_1 = sum_t (x_t - m)(x_{t+1} - m) / sum_t (x_t - m)^2`` (reported beside
  every interval: near 0 the folds behave independently, well above 0 they do not);
- Newey-West (HAC) standard error of the mean with Bartlett weights ``1 - l / (L + 1)``:
  ``se^2 = (g_0 + 2 sum_{l=1..L} (1 - l/(L+1)) g_l) / n``, ``g_l = sum_{t>=l} (x_t - m)(x_{t-l} - m) / n``,
  lag ``L = floor(4 (n/100)^(2/9))`` (at least 1 when n >= 3); the interval is
  ``mean +- t_{n-1, (1+level)/2} * se``;
- a moving-block bootstrap over consecutive folds (blocks of ``b = round(n^(1/3))`` folds drawn with
  replacement from the ``n - b + 1`` overlapping blocks, concatenated and cut to ``n``; percentile
  interval of the resampled means; fixed seed). With fewer than :data:`MIN_FOLDS_FOR_BOOTSTRAP` folds
  there are too few blocks for the resampled means to describe anything, and NO bootstrap interval is
  returned (``None``, with the reason in ``bootstrap_note``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphwiz_trader.errors import SettingError

MIN_FOLDS_FOR_BOOTSTRAP = 10


def _clean(values: np.ndarray | list[float]) -> np.ndarray:
    v = np.asarray(values, dtype="float64")
    return v[~np.isnan(v)]


def lag1_autocorrelation(values: np.ndarray | list[float]) -> float:
    """Lag-1 autocorrelation (the ACF estimator above); NaN with fewer than 3 values or no variance."""
    v = _clean(values)
    if len(v) < 3:
        return float("nan")
    d = v - v.mean()
    denom = float((d * d).sum())
    return float((d[1:] * d[:-1]).sum() / denom) if denom > 0 else float("nan")


def newey_west_lags(n: int) -> int:
    """The Newey-West lag rule ``floor(4 (n/100)^(2/9))``, at least 1 (for n >= 3) and at most n - 2."""
    if n < 3:
        return 0
    return int(min(max(1, math.floor(4 * (n / 100) ** (2 / 9))), n - 2))


def newey_west_se(values: np.ndarray | list[float], lags: int | None = None) -> float:
    """HAC (Newey-West, Bartlett kernel) standard error of the mean; NaN with fewer than 2 values."""
    v = _clean(values)
    n = len(v)
    if n < 2:
        return float("nan")
    lag = newey_west_lags(n) if lags is None else int(lags)
    d = v - v.mean()
    lrv = float((d * d).sum() / n)
    for l in range(1, min(lag, n - 1) + 1):
        lrv += 2.0 * (1.0 - l / (lag + 1)) * float((d[l:] * d[:-l]).sum() / n)
    return math.sqrt(max(lrv, 0.0) / n)


def hac_interval(values: np.ndarray | list[float], level: float = 0.95,
                 lags: int | None = None) -> tuple[float, float]:
    """``mean +- t_{n-1} * newey_west_se``; (NaN, NaN) with fewer than 2 values."""
    from scipy import stats

    v = _clean(values)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1)) * newey_west_se(v, lags)
    return float(v.mean() - half), float(v.mean() + half)


def block_length(n: int) -> int:
    """Moving-block length ``round(n^(1/3))``, at least 1."""
    return max(1, int(round(n ** (1 / 3))))


def moving_block_bootstrap_means(values: np.ndarray | list[float], n_resamples: int = 10_000, seed: int = 0,
                                 block: int | None = None) -> np.ndarray:
    """Means of ``n_resamples`` moving-block resamples of ``values`` (in fold order)."""
    v = _clean(values)
    n = len(v)
    b = block_length(n) if block is None else int(block)
    if not 1 <= b <= n:
        raise SettingError(f"block length {b} must be between 1 and the number of values ({n})")
    k = math.ceil(n / b)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - b + 1, size=(n_resamples, k))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n_resamples, k * b)[:, :n]
    return v[idx].mean(axis=1)


def block_bootstrap_interval(values: np.ndarray | list[float], level: float = 0.95, n_resamples: int = 10_000,
                             seed: int = 0, block: int | None = None) -> tuple[float, float] | None:
    """Percentile interval of the moving-block bootstrap means; ``None`` below :data:`MIN_FOLDS_FOR_BOOTSTRAP`."""
    v = _clean(values)
    if len(v) < MIN_FOLDS_FOR_BOOTSTRAP:
        return None
    means = moving_block_bootstrap_means(v, n_resamples, seed, block)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, 0.5 + level / 2))


def fold_statistics(values: np.ndarray | list[float], level: float = 0.95, seed: int = 0,
                    n_resamples: int = 10_000) -> dict[str, Any]:
    """Mean of per-fold values with dependence-aware uncertainty (see the module docstring).

    Returns
    -------
    dict with ``n``, ``mean``, ``std`` (ddof=1), ``lag1_autocorr``, ``se_hac``, ``hac_lags``, ``ci_low`` and
    ``ci_high`` (the HAC t-interval), ``ci_method``, ``bootstrap_ci`` (``None`` below 10 folds),
    ``bootstrap_block`` and ``bootstrap_note``.
    """
    v = _clean(values)
    n = len(v)
    lo, hi = hac_interval(v, level)
    boot = block_bootstrap_interval(v, level, n_resamples, seed)
    note = (f"moving-block bootstrap, blocks of {block_length(n)} consecutive folds, seed {seed}" if boot is not None
            else f"no bootstrap interval: {n} folds < {MIN_FOLDS_FOR_BOOTSTRAP} (too few blocks of consecutive, "
                 "dependent folds to resample)")
    return {"n": n, "mean": float(v.mean()) if n else float("nan"),
            "std": float(v.std(ddof=1)) if n > 1 else float("nan"),
            "lag1_autocorr": lag1_autocorrelation(v), "se_hac": newey_west_se(v), "hac_lags": newey_west_lags(n),
            "ci_low": lo, "ci_high": hi, "ci_method": f"{level:.0%} HAC (Newey-West) t-interval across folds",
            "bootstrap_ci": boot, "bootstrap_block": block_length(n) if boot is not None else None,
            "bootstrap_note": note}
