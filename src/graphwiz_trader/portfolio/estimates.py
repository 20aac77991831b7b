"""Risk and return estimates: Ledoit-Wolf covariance and expected returns from scores or history.

Every function takes a trailing window of per-bar simple returns (rows = bars up to the decision
time t, columns = symbols) and annualises with ``periods_per_year``; nothing looks past the last row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pypfopt import expected_returns as pf_expected_returns
from sklearn.covariance import ledoit_wolf

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
    if returns.isna().to_numpy().any():
        bad = returns.columns[returns.isna().any()].tolist()
        raise DataError(f"Ledoit-Wolf covariance needs complete returns; NaN in {', '.join(map(str, bad))}")
    if len(returns) < 2:
        raise DataError(f"Ledoit-Wolf covariance needs at least 2 bars of returns, got {len(returns)}")
    # Exactly what pypfopt's CovarianceShrinkage(...).ledoit_wolf() computes (it calls this sklearn
    # function and annualises); called directly because pypfopt re-checks its soft dependencies on
    # every construction (~5 ms), which dominates a walk-forward run. Equality is tested.
    shrunk, delta = ledoit_wolf(returns.to_numpy(dtype="float64"))
    cov = pd.DataFrame(shrunk * periods_per_year, index=returns.columns, columns=returns.columns)
    return cov, float(delta)


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
    if not np.isfinite(s.to_numpy()).all():
        raise DataError("scores must be finite for the expected-return mapping; drop or fill NaN scores first")
    rms = float(np.sqrt(np.mean(s.to_numpy() ** 2))) if len(s) else 0.0
    z = s / rms if rms > 0 else s * 0.0
    var_bar = np.diag(covariance.loc[s.index, s.index].to_numpy()) / periods_per_year
    sigma_bar = np.sqrt(np.clip(var_bar, 0.0, None))
    alpha_bar = ic * sigma_bar * z.to_numpy() / np.sqrt(horizon_bars)
    return pd.Series(alpha_bar * periods_per_year, index=s.index, name="expected_return")


def historical_expected_returns(returns: pd.DataFrame, periods_per_year: float, shrinkage: float) -> pd.Series:
    """Annualised arithmetic mean of per-bar returns, shrunk toward zero: ``(1 - shrinkage) * mean``."""
    mu = pf_expected_returns.mean_historical_return(returns, returns_data=True, compounding=False,
                                                    frequency=periods_per_year)
    return ((1.0 - shrinkage) * mu).rename("expected_return")
