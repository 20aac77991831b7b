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


def time_series_ic(score: pd.Series, label: pd.Series, blocks: int = 10) -> dict[str, float]:
    """For a single instrument: IC = Pearson corr over time, Rank IC = Spearman; ICIR = mean/std of the IC
    over ``blocks`` consecutive equal blocks (cross-sectional IC is undefined with one instrument)."""
    df = _aligned(score, label)
    ic = float(df["score"].corr(df["label"]))
    ric = float(df["score"].rank().corr(df["label"].rank()))
    chunks = np.array_split(np.arange(len(df)), blocks)
    per = [df.iloc[c]["score"].corr(df.iloc[c]["label"]) for c in chunks if len(c) > 2]
    per_r = [df.iloc[c]["score"].rank().corr(df.iloc[c]["label"].rank()) for c in chunks if len(c) > 2]
    sd, sdr = np.nanstd(per, ddof=1), np.nanstd(per_r, ddof=1)
    return {"ic": ic, "icir": float(np.nanmean(per) / sd) if sd > 0 else float("nan"),
            "rank_ic": ric, "rank_icir": float(np.nanmean(per_r) / sdr) if sdr > 0 else float("nan"),
            "n_dates": int(len(df))}


def evaluate_predictions(score: pd.Series, label: pd.Series, classification: bool,
                         direction_label: pd.Series | None = None) -> dict[str, float]:
    """Out-of-sample figures for a model's scores.

    - ``accuracy``: classification: share of rows where (score > 0.5) == label; regression: share where
      sign(score) == sign(label) (rows with a zero label are skipped).
    - ``auc``: ROC AUC of the score against the binary target (label, or label > 0 for regression).
    - ``ic``/``icir``/``rank_ic``/``rank_icir``: cross-sectional per datetime with >= 2 instruments
      (IC against ``direction_label`` if given, else the label); time-series (:func:`time_series_ic`)
      for a single instrument.
    """
    from sklearn.metrics import roc_auc_score

    df = _aligned(score, label)
    if classification:
        target = df["label"].astype(int)
        acc = float(((df["score"] > 0.5).astype(int) == target).mean())
    else:
        nz = df[df["label"] != 0]
        target = (df["label"] > 0).astype(int)
        acc = float((np.sign(nz["score"]) == np.sign(nz["label"])).mean())
    auc = float(roc_auc_score(target, df["score"])) if target.nunique() == 2 else float("nan")
    ic_target = direction_label if direction_label is not None else label
    n_inst = df.index.get_level_values("instrument").nunique()
    ics = signal_metrics(df["score"], ic_target) if n_inst >= 2 else time_series_ic(df["score"], ic_target)
    return {"accuracy": acc, "auc": auc, **ics, "n_rows": int(len(df)), "n_instruments": int(n_inst)}
