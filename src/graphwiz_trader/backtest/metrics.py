"""Performance metrics of an equity curve. Returns, volatilities and drawdowns are fractions.

Definitions (r_t = per-bar simple return, the first bar measured from the initial capital,
P = periods per year, n = number of bars):

- total_return = E_n / E_0 - 1; annualised_return = (1 + total_return)^(P / n) - 1
- annualised_volatility = std(r, ddof=1) * sqrt(P)
- sharpe = mean(r) / std(r, ddof=1) * sqrt(P) (risk-free rate 0)
- sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P) (downside deviation around 0 over all bars)
- max_drawdown = min_t E_t / max_{s<=t} E_s - 1 (<= 0; the initial capital counts as the first peak)
- calmar = annualised_return / |max_drawdown|
- win_rate = #(r > 0) / #(r != 0) (bars with a non-zero return)
- profit_factor = sum(r > 0) / |sum(r < 0)|
- exposure = mean gross exposure sum|w_i| per bar; time_in_market = share of bars with any position
- annual_turnover = sum of per-bar turnover (both sides, fraction of equity) / years
- annual_cost_drag = sum over bars of (costs paid in the bar / equity at the previous close) / years

Undefined values (zero volatility, no losing bar, no drawdown) are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def bar_returns(equity: pd.Series, initial_capital: float | None = None) -> np.ndarray:
    """Per-bar simple returns; with ``initial_capital`` the first bar is measured from it."""
    e = equity.to_numpy(dtype="float64")
    if initial_capital is None:
        return e[1:] / e[:-1] - 1.0
    prev = np.concatenate([[initial_capital], e[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev != 0, e / prev - 1.0, 0.0)


def max_drawdown(equity: np.ndarray, initial_capital: float | None = None) -> float:
    """Most negative ``E_t / running_max - 1`` (0.0 when equity never falls)."""
    path = equity if initial_capital is None else np.concatenate([[initial_capital], equity])
    peak = np.maximum.accumulate(path)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, path / peak - 1.0, 0.0)
    return float(dd.min()) if len(dd) else 0.0


def drawdown_series(equity: pd.Series, initial_capital: float | None = None) -> pd.Series:
    """``E_t / max_{s<=t} E_s - 1`` per bar (fractions, <= 0)."""
    e = equity.to_numpy(dtype="float64")
    peak = np.maximum.accumulate(e)
    if initial_capital is not None:
        peak = np.maximum(peak, initial_capital)
    return pd.Series(e / peak - 1.0, index=equity.index, name="drawdown")


def sharpe_confidence_interval(returns: np.ndarray, periods_per_year: float, n_boot: int = 1000,
                               block_bars: int | None = None, level: float = 0.95,
                               seed: int = 0) -> tuple[float, float]:
    """Circular block-bootstrap interval of the annualised Sharpe ratio.

    Blocks of ``block_bars`` (default ``round(n ** (1/3))``) consecutive bars keep short-range
    dependence (volatility clustering); ``n_boot`` resamples with a fixed ``seed``.
    """
    r = np.asarray(returns, dtype="float64")
    n = len(r)
    if n < 3 or np.std(r) == 0:
        return (math.nan, math.nan)
    b = block_bars or max(1, int(round(n ** (1.0 / 3.0))))
    b = min(b, n)
    ext = np.concatenate([r, r[: b - 1]])
    c1 = np.concatenate([[0.0], np.cumsum(ext)])
    c2 = np.concatenate([[0.0], np.cumsum(ext * ext)])
    s1 = c1[b: b + n] - c1[:n]
    s2 = c2[b: b + n] - c2[:n]
    k = int(math.ceil(n / b))
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, k))
    m = k * b
    mean = s1[starts].sum(axis=1) / m
    var = (s2[starts].sum(axis=1) / m - mean**2) * m / (m - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(var > 0, mean / np.sqrt(var) * math.sqrt(periods_per_year), np.nan)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(sharpe, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def compute_metrics(equity: pd.Series, periods_per_year: float, initial_capital: float | None = None,
                    gross_exposure: pd.Series | None = None, turnover: pd.Series | None = None,
                    costs: pd.Series | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """All metrics of the module docstring, plus ``sharpe_ci_low``/``sharpe_ci_high`` (95% block
    bootstrap, ``n_boot`` resamples; 0 disables) and ``n_bars``/``years``."""
    e = equity.to_numpy(dtype="float64")
    r = bar_returns(equity, initial_capital)
    n = len(r)
    start = float(initial_capital) if initial_capital is not None else float(e[0])
    nan = math.nan
    total = float(e[-1] / start - 1.0) if n else nan
    years = n / periods_per_year if n else nan
    if n and total > -1.0:
        ann = float((1.0 + total) ** (1.0 / years) - 1.0)
    else:
        ann = -1.0 if n else nan
    sd = float(np.std(r, ddof=1)) if n > 1 else nan
    mean = float(np.mean(r)) if n else nan
    vol = sd * math.sqrt(periods_per_year) if n > 1 else nan
    sharpe = mean / sd * math.sqrt(periods_per_year) if n > 1 and sd > 0 else nan
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else nan
    sortino = mean / downside * math.sqrt(periods_per_year) if n and downside > 0 else nan
    mdd = max_drawdown(e, initial_capital)
    calmar = ann / abs(mdd) if mdd < 0 else nan
    nonzero = np.count_nonzero(r)
    win = float(np.count_nonzero(r > 0) / nonzero) if nonzero else nan
    losses = float(-r[r < 0].sum())
    pf = float(r[r > 0].sum() / losses) if losses > 0 else nan
    out: dict[str, float] = {
        "total_return": total,
        "annualised_return": ann,
        "annualised_volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "calmar": calmar,
        "win_rate": win,
        "profit_factor": pf,
    }
    if n_boot and n > 2:
        lo, hi = sharpe_confidence_interval(r, periods_per_year, n_boot=n_boot, seed=seed)
        out["sharpe_ci_low"], out["sharpe_ci_high"] = lo, hi
    if gross_exposure is not None:
        g = gross_exposure.to_numpy(dtype="float64")
        out["exposure"] = float(g.mean()) if len(g) else nan
        out["time_in_market"] = float((g > 1e-12).mean()) if len(g) else nan
    if turnover is not None:
        out["annual_turnover"] = float(turnover.sum() / years) if n else nan
    if costs is not None and n:
        prev = np.concatenate([[start], e[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            drag = np.where(prev > 0, costs.to_numpy(dtype="float64") / prev, 0.0)
        out["annual_cost_drag"] = float(drag.sum() / years)
    out["n_bars"] = float(n)
    out["years"] = float(years)
    return out
