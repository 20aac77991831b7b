"""Static schedules: fractions of the parent order to trade in each bar of the horizon.

All functions return non-negative float arrays summing to 1 (the caller multiplies by the quantity).
"""

from __future__ import annotations

import math

import numpy as np


def twap_fractions(n_bars: int) -> np.ndarray:
    """Equal slices: 1 / n per bar."""
    if n_bars < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")
    return np.full(n_bars, 1.0 / n_bars)


def vwap_fractions(profile: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Slices proportional to the expected volume of each bar's hour of day.

    Parameters
    ----------
    profile
        24 relative volumes (hour-of-day profile, learned from past bars only).
    hours
        Hour of day (0-23, UTC) of each bar in the horizon.
    """
    w = np.asarray(profile, dtype=float)[np.asarray(hours, dtype=int)]
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("volume profile holds NaN or negative values for the horizon's hours")
    return w / w.sum()


def almgren_chriss_kappa(sigma_bar: float, eta_per_bar: float, gamma: float, risk_aversion: float) -> float:
    """Urgency kappa (per bar) of the discrete Almgren-Chriss (2000) solution.

    Costs are in fractions of the parent notional, holdings in fractions of the parent quantity, one bar
    = one period (tau = 1). With linear temporary impact ``eta`` (price fraction per (fraction of parent
    per bar)), linear permanent impact ``gamma`` and per-bar volatility ``sigma_bar``:

        eta_tilde = eta - gamma / 2,   kappa_tilde^2 = risk_aversion * sigma_bar^2 / eta_tilde,
        cosh(kappa) = 1 + kappa_tilde^2 / 2.
    """
    eta_t = eta_per_bar - 0.5 * gamma
    if eta_t <= 0:
        eta_t = eta_per_bar
    if eta_t <= 0 or risk_aversion <= 0 or sigma_bar <= 0:
        return 0.0
    kt2 = risk_aversion * sigma_bar * sigma_bar / eta_t
    return float(np.arccosh(1.0 + 0.5 * kt2))


def almgren_chriss_holdings(n_bars: int, kappa: float) -> np.ndarray:
    """Closed-form holdings x_k / X = sinh(kappa (N - k)) / sinh(kappa N), k = 0..N (linear when kappa = 0)."""
    k = np.arange(n_bars + 1, dtype=float)
    if kappa * n_bars < 1e-9:
        return 1.0 - k / n_bars
    if kappa * n_bars > 700:  # sinh overflows; the ratio tends to exp(-kappa k)
        x = np.exp(-kappa * k)
        x[-1] = 0.0
        return x
    return np.sinh(kappa * (n_bars - k)) / math.sinh(kappa * n_bars)


def almgren_chriss_fractions(n_bars: int, kappa: float) -> np.ndarray:
    """Trades n_k = x_{k-1} - x_k of the closed-form trajectory, as fractions of the parent."""
    x = almgren_chriss_holdings(n_bars, kappa)
    n = -np.diff(x)
    return n / n.sum()
