"""Out-of-sample figures of a model's scores on (datetime, instrument) panels.

- IC_t = Pearson correlation across instruments at t between score and label; IC = mean_t IC_t.
- Rank IC_t = Spearman correlation across instruments at t (Pearson of per-t ranks, average ties).
- ICIR = mean(IC_t) / std(IC_t) (sample std, ddof=1), not annualised.
- AUC = ROC AUC of the score against the binary direction (see below).
- accuracy = share of rows whose predicted direction equals the true direction.
- balanced accuracy = mean over the true classes present of the share predicted right (recall).
- majority rate = share of test rows in the most frequent class of the TRAINING rows: the accuracy of
  always predicting that class, the naive baseline every accuracy must be read against.

Directions: for a classification label the class is the 0/1 label and the predicted class is
``score > 0.5``; for a regression label the class is ``label > 0`` and the predicted class is
``score > 0``. Rows whose regression label is exactly 0 have no direction and are left out of
accuracy, balanced accuracy, majority rate and AUC (their count is returned as ``n_zero_label``).
Dates with fewer than ``min_count`` instruments having both values are skipped by the IC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.errors import InsufficientDataError


def _aligned(score: pd.Series, label: pd.Series) -> pd.DataFrame:
    df = pd.concat({"score": score, "label": label}, axis=1, join="inner").dropna()
    if df.empty:
        raise InsufficientDataError("score and label share no non-NaN rows")
    return df


def ic_series(score: pd.Series, label: pd.Series, method: str = "pearson", min_count: int = 2) -> pd.Series:
    """Per-datetime cross-sectional correlation (``pearson`` or ``spearman``)."""
    df = _aligned(score, label)
    if method == "spearman":
        g = df.groupby(level="datetime")
        df = pd.DataFrame({"score": g["score"].rank(), "label": g["label"].rank()})
    elif method != "pearson":
        raise InsufficientDataError(f"unknown method {method!r}")
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
    """Cross-sectional IC, ICIR, Rank IC, Rank ICIR and the number of dates used."""
    ic = ic_series(score, label, "pearson")
    ric = ic_series(score, label, "spearman")
    return {
        "ic": float(ic.mean()),
        "icir": float(ic.mean() / ic.std(ddof=1)) if len(ic) > 1 and ic.std(ddof=1) > 0 else float("nan"),
        "rank_ic": float(ric.mean()),
        "rank_icir": float(ric.mean() / ric.std(ddof=1)) if len(ric) > 1 and ric.std(ddof=1) > 0 else float("nan"),
        "n_dates": int(len(ic)),
    }


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


def direction_classes(label: pd.Series, classification: bool) -> pd.Series:
    """The true direction class (0/1) per row; NaN labels and zero regression labels are left out."""
    lab = label.dropna()
    if classification:
        return lab.astype(int)
    return (lab[lab != 0] > 0).astype(int)


def majority_class(train_label: pd.Series, classification: bool) -> int:
    """The most frequent direction class of the training rows (1 on a tie)."""
    cls = direction_classes(train_label, classification)
    if cls.empty:
        raise InsufficientDataError("the training label has no direction (every value is NaN or zero)")
    return int(cls.mean() >= 0.5)


def balanced_accuracy(predicted: np.ndarray | pd.Series, true: np.ndarray | pd.Series) -> float:
    """Mean over the true classes present of the share of that class predicted right."""
    p, t = np.asarray(predicted, dtype=int), np.asarray(true, dtype=int)
    if len(t) == 0:
        return float("nan")
    return float(np.mean([(p[t == c] == c).mean() for c in np.unique(t)]))


def evaluate_predictions(score: pd.Series, label: pd.Series, classification: bool,
                         ic_label: pd.Series | None = None, train_label: pd.Series | None = None) -> dict[str, float]:
    """Out-of-sample figures for a model's scores (definitions in the module docstring).

    Parameters
    ----------
    score : model scores per (datetime, instrument).
    label : the target the model was TRAINED on, on the test rows (e.g. the per-datetime demeaned
        return for a regression on a universe); accuracy, AUC and the classes are scored against it.
    classification : 0/1 label (True) or a return (False).
    ic_label : what IC is measured against (e.g. the forward return for a 0/1 label); default ``label``.
        Cross-sectional per datetime with >= 2 instruments, time-series (:func:`time_series_ic`) for one.
    train_label : the training rows' target; gives the majority class (``majority_rate`` is NaN without it).

    Returns
    -------
    dict with ``accuracy``, ``balanced_accuracy``, ``majority_class``, ``majority_rate``, ``auc``, ``ic``,
    ``icir``, ``rank_ic``, ``rank_icir``, ``n_dates``, ``n_rows``, ``n_direction_rows``, ``n_zero_label``,
    ``n_instruments``.
    """
    from sklearn.metrics import roc_auc_score

    df = _aligned(score, label)
    true = direction_classes(df["label"], classification)
    s = df["score"].reindex(true.index)
    pred = (s > (0.5 if classification else 0.0)).astype(int)
    acc = float((pred == true).mean()) if len(true) else float("nan")
    auc = float(roc_auc_score(true, s)) if true.nunique() == 2 else float("nan")
    if train_label is not None:
        major = majority_class(train_label, classification)
        major_rate = float((true == major).mean()) if len(true) else float("nan")
    else:
        major, major_rate = -1, float("nan")
    ic_target = ic_label if ic_label is not None else label
    n_inst = df.index.get_level_values("instrument").nunique()
    ics = signal_metrics(df["score"], ic_target) if n_inst >= 2 else time_series_ic(df["score"], ic_target)
    return {"accuracy": acc, "balanced_accuracy": balanced_accuracy(pred, true), "majority_class": major,
            "majority_rate": major_rate, "auc": auc, **ics, "n_rows": int(len(df)),
            "n_direction_rows": int(len(true)), "n_zero_label": int(len(df) - len(true)),
            "n_instruments": int(n_inst)}
