"""Signal-quality metrics on (datetime, instrument) panels.

- IC_t = Pearson correlation across instruments at t between score and label; IC = mean_t IC_t.
- Rank IC_t = Spearman correlation across instruments at t (Pearson of per-t ranks, average ties).
- ICIR = mean(IC_t) / std(IC_t) (sample std, ddof=1), not annualised.
- accuracy = share of rows where sign(score - threshold) equals sign(label) (classification view).
Dates with fewer than ``min_count`` instruments having both values are skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _aligned(score: pd.Series, label: pd.Series) -> pd.DataFrame:
    df = pd.concat({"score": score, "label": label}, axis=1, join="inner").dropna()
    if df.empty:
        raise ValueError("score and label share no non-NaN rows")
    return df


def ic_series(score: pd.Series, label: pd.Series, method: str = "pearson", min_count: int = 2) -> pd.Series:
    """Per-datetime cross-sectional correlation (``pearson`` or ``spearman``)."""
    df = _aligned(score, label)
    if method == "spearman":
        g = df.groupby(level="datetime")
        df = pd.DataFrame({"score": g["score"].rank(), "label": g["label"].rank()})
    elif method != "pearson":
        raise ValueError(f"unknown method {method!r}")
    g = df.groupby(level="datetime")
    n = g["score"].count()
    sx, sy = g["score"].sum(), g["label"].sum()
    sxx = (df["score"] ** 2).groupby(level="datetime").sum()
    syy = (df["label"] ** 2).groupby(level="datetime").sum()
    sxy = (df["score"] * df["label"]).groupby(level="datetime").sum()
    cov = sxy - sx * sy / n
    vx, vy = sxx - sx**2 / n, syy - sy**2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(vx * vy)
    r[(n < min_count) | (vx <= 1e-300) | (vy <= 1e-300)] = np.nan
    return r.dropna().rename(f"ic_{method}")


def signal_metrics(score: pd.Series, label: pd.Series) -> dict[str, float]:
    """IC, ICIR, Rank IC, Rank ICIR and the number of dates used."""
    ic = ic_series(score, label, "pearson")
    ric = ic_series(score, label, "spearman")
    return {
        "ic": float(ic.mean()),
        "icir": float(ic.mean() / ic.std(ddof=1)) if len(ic) > 1 and ic.std(ddof=1) > 0 else float("nan"),
        "rank_ic": float(ric.mean()),
        "rank_icir": float(ric.mean() / ric.std(ddof=1)) if len(ric) > 1 and ric.std(ddof=1) > 0 else float("nan"),
        "n_dates": int(len(ic)),
    }


def directional_accuracy(score: pd.Series, label: pd.Series, threshold: float = 0.0) -> float:
    """Share of rows where the predicted direction (score > threshold) matches label > 0."""
    df = _aligned(score, label)
    df = df[df["label"] != 0]
    return float(((df["score"] > threshold) == (df["label"] > 0)).mean())
