"""Walk-forward experiments: per-fold out-of-sample metrics, importance and its stability, HPO.

For each fold (see :mod:`graphwiz_trader.research.walkforward`) the model is fitted on the fold's training bars only: the last
``stop_fraction`` of them (after a gap of the label horizon) drive early stopping, and, when
``hpo_trials > 0``, Optuna searches LightGBM parameters on an inner split of the same training bars
(inner-fit | gap | inner-valid), never touching the test bars. Predictions on the test bars are
collected into one out-of-sample series.

Figures per fold (definitions in :mod:`graphwiz_trader.models.metrics`): AUC, IC, Rank IC, ICIR, and
accuracy beside its naive baseline, the majority rate (always predicting the training fold's most
frequent class) and balanced accuracy; direction labels leave out bars whose forward return equals the
threshold (zero-return bars; their count is ``zero_return_rows``). The long-short return: long the top
fifth, short the bottom fifth of instruments by score, equal weight, held for the label horizon h and
rebalanced every h bars (so the h-bar returns summed never overlap), log returns before costs: a signal
diagnostic, not a backtest. Feature importance by gain and by mean |SHAP| (LightGBM's ``pred_contrib``)
on the test bars. Stability: the share of folds in which a feature ranks in the top 20. Uncertainty
across folds: :mod:`graphwiz_trader.research.stats` (consecutive folds share most training bars).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.progress import progress as progress_bar
from graphwiz_trader.errors import SettingError
from graphwiz_trader.models import lgbm
from graphwiz_trader.models.metrics import evaluate_predictions
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.research.stats import fold_statistics
from graphwiz_trader.research.walkforward import Fold, walk_forward_folds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WalkForwardSettings:
    """Lengths are in bars of the common calendar."""

    train_len: int
    test_len: int
    stride: int | None = None
    gap: int | None = None
    embargo: int = 0
    expanding: bool = False
    max_folds: int | None = None
    label: LabelSpec = field(default_factory=lambda: LabelSpec("regression", 1))
    seed: int = 0
    stop_fraction: float = 0.15
    hpo_trials: int = 0
    lgb_params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    top_k: int = 20
    long_short_fraction: float = 0.2

    @property
    def effective_gap(self) -> int:
        return self.label.horizon if self.gap is None else self.gap


@dataclass
class WalkForwardResult:
    folds: pd.DataFrame
    predictions: pd.Series
    long_short: pd.Series
    gain: pd.DataFrame
    shap: pd.DataFrame
    config: WalkForwardSettings
    best_params: list[dict[str, Any]] = field(default_factory=list)
    prediction_folds: pd.Series | None = None

    def stability(self, kind: str = "gain") -> pd.Series:
        """Share of folds in which each feature ranks in the top ``config.top_k``."""
        imp = self.gain if kind == "gain" else self.shap
        k = self.config.top_k
        top = imp.rank(axis=1, ascending=False, method="first") <= k
        return top.mean(axis=0).sort_values(ascending=False).rename(f"top{k}_share_{kind}")

    def summary(self) -> dict[str, Any]:
        """Per metric across folds: mean, std, HAC interval and lag-1 autocorrelation
        (:func:`graphwiz_trader.research.stats.fold_statistics`), AUC and IC first."""
        f = self.folds
        out: dict[str, Any] = {"n_folds": int(len(f))}
        for col in SUMMARY_METRICS:
            if col in f:
                out[col] = fold_statistics(f[col].astype(float).to_numpy(), seed=self.config.seed)
        if self.config.label.kind == "direction":
            out["zero_return_rows"] = int(f["zero_return_rows"].sum()) if "zero_return_rows" in f else 0
            out["zero_returns"] = (f"dropped from the direction labels: {out['zero_return_rows']} test rows whose "
                                   f"forward return equals the threshold ({self.config.label.threshold:g})")
        return out


SUMMARY_METRICS = ("auc", "ic", "rank_ic", "icir", "accuracy", "balanced_accuracy", "majority_rate",
                   "accuracy_minus_majority", "long_short_return")


def long_short_returns(score: pd.Series, fwd_return: pd.Series, fraction: float = 0.2) -> pd.Series:
    """Per datetime: mean forward return of the top ``fraction`` by score minus that of the bottom ``fraction``.

    With an h-bar forward return pass only datetimes h bars apart (see :func:`non_overlapping_dates`):
    summing the returns of consecutive datetimes would count each bar's move up to h times.
    """
    df = pd.concat({"s": score, "r": fwd_return}, axis=1, join="inner").dropna()
    g = df.groupby(level="datetime")
    n = g["s"].transform("count")
    k = np.maximum(1, np.floor(n * fraction))
    rank = g["s"].rank(method="first")
    long = rank > n - k
    short = rank <= k
    valid = n >= 2
    lr = df["r"].where(long & valid).groupby(level="datetime").mean()
    sr = df["r"].where(short & valid).groupby(level="datetime").mean()
    return (lr - sr).dropna().rename("long_short")


def non_overlapping_dates(calendar: pd.Index, fold: Fold, anchor: int, horizon: int) -> pd.Index:
    """The fold's test datetimes on the grid ``anchor, anchor + h, anchor + 2h, ...`` of calendar positions:
    the rebalance dates of a portfolio held ``horizon`` bars. One grid for every fold (``anchor`` = the first
    fold's first test bar), so the h-bar returns from these dates never overlap, within a fold or across
    consecutive folds."""
    first = fold.test_start + (anchor - fold.test_start) % horizon
    return calendar[first:fold.test_end:horizon]


def _hpo(x: pd.DataFrame, y: pd.Series, dates: pd.Index, cfg: WalkForwardSettings, cross_sectional: bool,
         fwd: pd.Series | None) -> dict[str, Any]:
    """Optuna on the training bars only: inner-fit | gap | inner-valid (last 20%)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gap = cfg.effective_gap
    cut = int(len(dates) * 0.8)
    fit_d, val_d = dates[:cut], dates[cut + gap:]
    dt = x.index.get_level_values("datetime")
    fi, vi = dt.isin(fit_d), dt.isin(val_d)
    target = fwd if fwd is not None else y

    def objective(trial: "optuna.Trial") -> float:
        params = {
            **cfg.lgb_params,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 1000, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
        }
        b = lgbm.fit_booster(x[fi], y[fi], x[vi], y[vi], cfg.label, cfg.seed, params, cfg.num_boost_round,
                             cfg.early_stopping_rounds)
        s = pd.Series(lgbm.predict(b, x[vi]), index=x.index[vi])
        m = evaluate_predictions(s, target.reindex(s.index), False if fwd is not None else cfg.label.is_classification)
        return m["ic"] if not np.isnan(m["ic"]) else -1.0

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    study.optimize(objective, n_trials=cfg.hpo_trials, show_progress_bar=False)
    return {**cfg.lgb_params, **study.best_params}


def run_walkforward(features: pd.DataFrame, label: pd.Series, cfg: WalkForwardSettings,
                    fwd_return: pd.Series | None = None, name: str = "model", progress: bool = True) -> WalkForwardResult:
    """Run every fold.

    ``fwd_return`` (the h-bar forward log return, demeaned like the label) feeds IC for classification
    labels, the zero-return count and the long-short diagnostic; when ``None`` the label itself is used
    (regression). Accuracy, AUC and the majority class are scored against the target the booster is fitted
    on (:func:`graphwiz_trader.models.lgbm.training_target`: the per-datetime demeaned return for a
    regression on a universe).
    """
    data = features.join(label.rename("__label__"), how="inner")
    data = data[data["__label__"].notna()]
    calendar = data.index.get_level_values("datetime").unique().sort_values()
    folds = walk_forward_folds(len(calendar), cfg.train_len, cfg.test_len, cfg.stride, cfg.effective_gap,
                               cfg.embargo, cfg.label.horizon, cfg.expanding, cfg.max_folds)
    cols = list(features.columns)
    dt = data.index.get_level_values("datetime")
    fwd = fwd_return if fwd_return is not None else (None if cfg.label.is_classification else data["__label__"])
    fwd_dt = fwd.index.get_level_values("datetime") if fwd is not None else None
    cross_sectional = data.index.get_level_values("instrument").nunique() > 1
    y_all = lgbm.training_target(data["__label__"], cfg.label, cross_sectional)
    rows, preds, fold_of, ls_parts, gains, shaps, best = [], [], [], [], [], [], []
    for fold in progress_bar(folds, desc=f"walk-forward {name}", unit="fold", enabled=progress):
        t0 = time.perf_counter()
        train_d, test_d = fold.dates(calendar)
        n_stop = int(len(train_d) * cfg.stop_fraction)
        fit_d = train_d[: len(train_d) - n_stop - cfg.effective_gap] if n_stop else train_d
        stop_d = train_d[len(train_d) - n_stop:] if n_stop else None
        tr = dt.isin(train_d)
        params = cfg.lgb_params
        if cfg.hpo_trials > 0:
            params = _hpo(data.loc[tr, cols], y_all[tr], train_d, cfg, cross_sectional,
                          fwd.reindex(data.index[tr]) if fwd is not None else None)
            best.append(params)
        fi = dt.isin(fit_d)
        si = dt.isin(stop_d) if stop_d is not None else np.zeros(len(dt), bool)
        booster = lgbm.fit_booster(data.loc[fi, cols], y_all[fi], data.loc[si, cols] if si.any() else None,
                                   y_all[si] if si.any() else None, cfg.label, cfg.seed, params,
                                   cfg.num_boost_round, cfg.early_stopping_rounds)
        te = dt.isin(test_d)
        xt = data.loc[te, cols]
        score = pd.Series(lgbm.predict(booster, xt), index=xt.index, name="score")
        m = evaluate_predictions(score, y_all[te], cfg.label.is_classification,
                                 fwd.reindex(xt.index) if fwd is not None else None, train_label=y_all[tr])
        if fwd is not None:
            ls_dates = non_overlapping_dates(calendar, fold, folds[0].test_start, cfg.label.horizon)
            ls = long_short_returns(score[xt.index.get_level_values("datetime").isin(ls_dates)],
                                    fwd.reindex(xt.index), cfg.long_short_fraction)
        else:
            ls = pd.Series(dtype=float)
        ties = int(((fwd == cfg.label.threshold) & fwd_dt.isin(test_d)).sum()) \
            if fwd is not None and cfg.label.kind == "direction" else m["n_zero_label"]
        it = booster.best_iteration or None
        gains.append(pd.Series(booster.feature_importance("gain", iteration=it), index=cols, name=fold.k))
        contrib = booster.predict(xt, num_iteration=it, pred_contrib=True)
        shaps.append(pd.Series(np.abs(contrib[:, :-1]).mean(axis=0), index=cols, name=fold.k))
        preds.append(score)
        fold_of.append(pd.Series(fold.k, index=score.index, name="fold", dtype="int64"))
        ls_parts.append(ls)
        rows.append({"fold": fold.k, "train_start": str(train_d[0]), "train_end": str(train_d[-1]),
                     "test_start": str(test_d[0]), "test_end": str(test_d[-1]), **m,
                     "accuracy_minus_majority": m["accuracy"] - m["majority_rate"], "zero_return_rows": ties,
                     "long_short_return": float(ls.sum()) if len(ls) else float("nan"),
                     "long_short_bars": int(len(ls)),
                     "trees": int(booster.best_iteration or booster.num_trees()),
                     "seconds": time.perf_counter() - t0})
    return WalkForwardResult(
        folds=pd.DataFrame(rows), predictions=pd.concat(preds).sort_index(),
        prediction_folds=pd.concat(fold_of).sort_index(),
        long_short=pd.concat(ls_parts).sort_index() if ls_parts else pd.Series(dtype=float),
        gain=pd.DataFrame(gains), shap=pd.DataFrame(shaps), config=cfg, best_params=best,
    )


def predictions_frame(results: dict[str, WalkForwardResult]) -> pd.DataFrame:
    """Out-of-sample scores of every variant on one ``(datetime, instrument)`` index, plus the fold id.

    One column per variant (its name in ``results``), and ``fold``: the walk-forward fold whose test part
    holds the row (the variants share folds, so the ids agree; a disagreement is an error).
    """
    if not results:
        raise SettingError("no walk-forward results to collect")
    frame = pd.concat({name: r.predictions for name, r in results.items()}, axis=1).sort_index()
    folds = [r.prediction_folds for r in results.values() if r.prediction_folds is not None]
    if folds:
        fold = pd.concat(folds, axis=1).reindex(frame.index)
        if (fold.nunique(axis=1, dropna=True) > 1).any():
            raise SettingError("variants disagree on the fold of a prediction row; they must share folds")
        frame["fold"] = fold.bfill(axis=1).iloc[:, 0].astype("Int64")
    frame.index = frame.index.set_names(["datetime", "instrument"])
    return frame


def config_dict(cfg: WalkForwardSettings) -> dict[str, Any]:
    d = asdict(cfg)
    d["label"] = cfg.label.describe()
    return d
