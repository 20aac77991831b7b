"""Risk and return estimates: Ledoit-Wolf covariance and expected returns from scores or history.

Every function takes a trailing window of per-bar simple returns (rows = bars up to the decision
time t, columns = symbols) and annualises with ``periods_per_year``; nothing looks past the last row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pypfopt import expected_returns as pf_expected_returns

from graphwiz_trader.errors import DataError


def ledoit_wolf_covariance(returns: pd.DataFrame, periods_per_year: float) -> tuple[pd.DataFrame, float]:
    """Annualised Ledoit-Wolf covariance (constant-variance target) of per-bar returns.

    Parameters
    ----------
    returns : bars x symbols per-bar simple returns without NaN (the trailing window).
    periods_per_year : bars per year (8760 for 24/7 hourly bars).

    Returns
    -------
    (covariance, shrinkage) : annualised covariance (fraction^2 per year) and the shrinkage
        intensity delta in [0, 1] chosen by Ledoit-Wolf.
    """
    x = returns.to_numpy(dtype="float64")
    if np.isnan(x).any():
        bad = returns.columns[np.isnan(x).any(axis=0)].tolist()
        raise DataError(f"Ledoit-Wolf covariance needs complete returns; NaN in {', '.join(map(str, bad))}")
    shrunk, delta = ledoit_wolf_array(x)
    cov = pd.DataFrame(shrunk * periods_per_year, index=returns.columns, columns=returns.columns)
    return cov, delta


def ledoit_wolf_array(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-bar Ledoit-Wolf covariance of a complete bars x symbols array (the estimator of
    :func:`ledoit_wolf_covariance`, without annualising; no pandas, for walk-forward loops).

    Ledoit & Wolf (2004), "A well-conditioned estimator for large-dimensional covariance matrices":
    with the biased sample covariance ``S`` of the demeaned bars ``x_t`` (T bars, p symbols) and the
    target ``m I``, ``m = tr(S) / p``,

        d^2 = ||S - m I||_F^2 / p,   b^2 = min(d^2, (sum_t ||x_t||^4 / T - ||S||_F^2) / (p T)),
        shrinkage = b^2 / d^2 (0 when b^2 = 0),   covariance = (1 - shrinkage) S + shrinkage m I.

    This is the estimator PyPortfolioOpt's ``CovarianceShrinkage.ledoit_wolf()`` computes (through
    scikit-learn); equality is tested.

    Parameters
    ----------
    x : bars x symbols per-bar returns, finite, at least 2 bars.

    Returns
    -------
    (covariance, shrinkage) : per-bar covariance (fraction^2 per bar) and the intensity in [0, 1].
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"Ledoit-Wolf covariance needs at least 2 bars of returns, got {x.shape[0] if x.ndim else 0}")
    t, p = x.shape
    xc = x - x.mean(axis=0)
    s = (xc.T @ xc) / t
    if p == 1:
        return s, 0.0
    m = float(s.diagonal().sum()) / p
    dev = s.copy()
    dev.flat[:: p + 1] -= m  # S - m I
    d2 = float(dev.ravel() @ dev.ravel()) / p
    s_sq = float(s.ravel() @ s.ravel())
    sq_norms = (xc * xc).sum(axis=1)
    b2 = min(d2, (float(sq_norms @ sq_norms) / t - s_sq) / (p * t))
    shrinkage = 0.0 if b2 == 0 else b2 / d2
    cov = (1.0 - shrinkage) * s
    cov.flat[:: p + 1] += shrinkage * m
    return cov, float(shrinkage)


def expected_returns_from_scores(scores: pd.Series, covariance: pd.DataFrame, ic: float,
                                 periods_per_year: float, horizon_bars: int = 1) -> pd.Series:
    """Map model scores to annualised expected returns (Grinold-Kahn ``alpha = IC * sigma * z``).

    ``z_i = s_i / rms(s)`` keeps the score's sign (a score is a signed return forecast: an asset
    with a negative score is expected to fall) and only fixes its scale; ``sigma_i`` is the per-bar
    volatility from ``covariance``. The per-bar alpha ``IC * sigma_i * z_i / sqrt(horizon_bars)`` is
    annualised by ``periods_per_year`` like the covariance. ``ic`` is the shrinkage toward zero:
    with IC = 0.05 a one-RMS score forecasts 5% of a one-sigma move. All scores zero gives zero.

    Parameters
    ----------
    scores : symbol -> score known at the decision time (no NaN).
    covariance : annualised covariance over the same symbols.
    ic : information coefficient in (0, 1].
    periods_per_year : bars per year used to annualise ``covariance``.
    horizon_bars : bars the score forecasts.
    """
    s = scores.astype("float64")
    var = np.diag(covariance.loc[s.index, s.index].to_numpy())
    mu = alpha_from_scores(s.to_numpy(), var, ic, periods_per_year, horizon_bars)
    return pd.Series(mu, index=s.index, name="expected_return")


def alpha_from_scores(scores: np.ndarray, variances: np.ndarray, ic: float, periods_per_year: float,
                      horizon_bars: int = 1) -> np.ndarray:
    """The mapping of :func:`expected_returns_from_scores` on arrays (no pandas, for walk-forward loops).

    Parameters
    ----------
    scores : scores known at the decision time (finite).
    variances : annualised variances of the same symbols (fraction^2 per year; the covariance diagonal).
    ic, periods_per_year, horizon_bars : as in :func:`expected_returns_from_scores`.

    Returns
    -------
    annualised expected returns (fractions per year).
    """
    s = np.asarray(scores, dtype="float64")
    if not np.isfinite(s).all():
        raise DataError("scores must be finite for the expected-return mapping; drop or fill NaN scores first")
    rms = float(np.sqrt(np.mean(s**2))) if len(s) else 0.0
    z = s / rms if rms > 0 else s * 0.0
    sigma_bar = np.sqrt(np.clip(np.asarray(variances, dtype="float64") / periods_per_year, 0.0, None))
    return ic * sigma_bar * z / np.sqrt(horizon_bars) * periods_per_year


def historical_expected_returns(returns: pd.DataFrame, periods_per_year: float, shrinkage: float) -> pd.Series:
    """Annualised arithmetic mean of per-bar returns, shrunk toward zero: ``(1 - shrinkage) * mean``."""
    mu = pf_expected_returns.mean_historical_return(returns, returns_data=True, compounding=False,
                                                    frequency=periods_per_year)
    return ((1.0 - shrinkage) * mu).rename("expected_return")
