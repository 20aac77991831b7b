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

``split_by`` (a column of the panel that is not a model input, e.g. the market regime code known at t)
fits one model per value of that column besides the pooled one, and each test row is scored by the model
of its value (the pooled model where the value is missing or had fewer than ``split_min_rows`` fitting
rows): "one model per regime". ``shap_blocks="month"`` reports mean |SHAP| per calendar month of each fold's
test rows instead of per fold (one long test fold still shows how stable the importances are).

Each fold of each configuration is one task (:class:`FoldTask` on a :class:`WalkForwardPanel` built once),
run serially or on Ray by :func:`graphwiz_trader.research.fanout.run_tasks`, with LightGBM at
:data:`LGB_THREADS` thread, so the numbers do not depend on the mode (docs/research_parallel.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

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
    split_by: str | None = None
    split_min_rows: int = 2000
    shap_blocks: str | None = None

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


@dataclass
class WalkForwardPanel:
    """What every fold task reads, built once by :func:`prepare_panel` (and shipped once to Ray workers).

    ``data`` holds the feature columns of every variant plus ``__label__`` (rows with a label only);
    ``target`` is what the booster fits (:func:`graphwiz_trader.models.lgbm.training_target`); ``fwd`` the
    series IC, ties and the long-short diagnostic are scored on (None: no such series); ``dt`` and
    ``fwd_dt`` the datetime level of ``data`` and ``fwd``; ``calendar`` the sorted distinct datetimes.
    """

    data: pd.DataFrame
    target: pd.Series
    fwd: pd.Series | None
    dt: pd.Index
    fwd_dt: pd.Index | None
    calendar: pd.Index
    folds: list[Fold]
    cross_sectional: bool


def _fold_key(cfg: WalkForwardSettings) -> tuple[Any, ...]:
    return (cfg.train_len, cfg.test_len, cfg.stride, cfg.effective_gap, cfg.embargo, cfg.expanding, cfg.max_folds,
            cfg.label)


def prepare_panel(features: pd.DataFrame, label: pd.Series, cfg: WalkForwardSettings,
                  fwd_return: pd.Series | None = None) -> WalkForwardPanel:
    """The rows with a label, the training target and the folds of ``cfg`` (its seed and model settings
    are not used here: every configuration with the same folds and label shares one panel)."""
    data = features.join(label.rename("__label__"), how="inner")
    data = data[data["__label__"].notna()]
    calendar = data.index.get_level_values("datetime").unique().sort_values()
    folds = walk_forward_folds(len(calendar), cfg.train_len, cfg.test_len, cfg.stride, cfg.effective_gap,
                               cfg.embargo, cfg.label.horizon, cfg.expanding, cfg.max_folds)
    fwd = fwd_return if fwd_return is not None else (None if cfg.label.is_classification else data["__label__"])
    cross_sectional = data.index.get_level_values("instrument").nunique() > 1
    return WalkForwardPanel(
        data=data, target=lgbm.training_target(data["__label__"], cfg.label, cross_sectional), fwd=fwd,
        dt=data.index.get_level_values("datetime"),
        fwd_dt=fwd.index.get_level_values("datetime") if fwd is not None else None,
        calendar=calendar, folds=list(folds), cross_sectional=cross_sectional)


@dataclass
class FoldOutput:
    """One fold of one configuration: its metrics row, test scores, long-short returns and importances."""

    row: dict[str, Any]
    score: pd.Series
    long_short: pd.Series
    gain: pd.Series
    shap: pd.Series | pd.DataFrame
    params: dict[str, Any] | None


LGB_THREADS = 1
"""LightGBM threads inside every fold task, serial or on Ray: the parallelism is across tasks, and one
thread count gives the same trees whichever mode runs the fold."""


@dataclass(frozen=True)
class FoldTask:
    """Fit and score fold ``k`` of ``panel.folds`` with ``cfg`` on ``columns`` (picklable: a Ray task).

    Optuna (``cfg.hpo_trials > 0``) runs inside the task, sequentially, on the fold's training bars: each
    TPE trial depends on the ones before it, so running trials in parallel would change the search.
    """

    k: int
    cfg: WalkForwardSettings
    columns: tuple[str, ...]

    def __call__(self, panel: WalkForwardPanel) -> FoldOutput:
        return run_fold(panel, self.k, self.cfg, list(self.columns))


def _split_models(data: pd.DataFrame, y_all: pd.Series, cols: list[str], cfg: WalkForwardSettings,
                  params: dict[str, Any], fi: np.ndarray, si: np.ndarray, te: np.ndarray, pooled: pd.Series,
                  pooled_contrib: np.ndarray, pooled_gain: np.ndarray) -> tuple[pd.Series, np.ndarray, np.ndarray, int]:
    """One model per value of ``cfg.split_by`` (e.g. the market regime code known at t).

    For each value v with at least ``cfg.split_min_rows`` fitting rows, a booster is fitted on the fold's
    fitting rows where the column equals v (early stopping on the stopping rows with v) and scores the test
    rows with v. Test rows whose value is missing, or has too few fitting rows, keep the pooled model's score.
    SHAP values are those of the model that scored the row; gain is the fitting-row-weighted mean of the
    models' gains. Returns (scores, contributions, gain, number of regime models fitted).
    """
    if cfg.split_by not in data.columns:
        raise SettingError(f"split_by column {cfg.split_by!r} is not among the panel's columns")
    key = data[cfg.split_by].to_numpy(dtype=np.float64)
    score = pooled.to_numpy().copy()
    contrib = pooled_contrib.copy()
    gains: list[tuple[int, np.ndarray]] = []
    key_te = key[te]
    fitted = 0
    for v in np.unique(key[fi & ~np.isnan(key)]):
        fv, sv, tv = fi & (key == v), si & (key == v), key_te == v
        if fv.sum() < cfg.split_min_rows or not tv.any() or y_all[fv].nunique() < 2:
            continue
        b = lgbm.fit_booster(data.loc[fv, cols], y_all[fv], data.loc[sv, cols] if sv.any() else None,
                             y_all[sv] if sv.any() else None, cfg.label, cfg.seed, params, cfg.num_boost_round,
                             cfg.early_stopping_rounds)
        x = data.loc[te, cols][tv]
        it = b.best_iteration or None
        score[tv] = lgbm.predict(b, x)
        contrib[tv] = b.predict(x, num_iteration=it, pred_contrib=True)[:, :-1]
        gains.append((int(fv.sum()), b.feature_importance("gain", iteration=it)))
        fitted += 1
    gain = (sum(n * g for n, g in gains) / sum(n for n, _ in gains)) if gains else pooled_gain
    return pd.Series(score, index=pooled.index, name="score"), contrib, gain, fitted


def run_fold(panel: WalkForwardPanel, k: int, cfg: WalkForwardSettings, cols: list[str]) -> FoldOutput:
    """Fold ``k``: HPO (optional) and the fit on its training bars, scores and figures on its test bars.

    The row's ``seconds`` is the task's wall time and ``cpu_seconds`` the CPU time of its process over
    the same span (about equal for a single-threaded task).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = replace(cfg, lgb_params={**cfg.lgb_params, "num_threads": LGB_THREADS})
    data, y_all, fwd, dt, calendar = panel.data, panel.target, panel.fwd, panel.dt, panel.calendar
    fold = panel.folds[k]
    train_d, test_d = fold.dates(calendar)
    n_stop = int(len(train_d) * cfg.stop_fraction)
    fit_d = train_d[: len(train_d) - n_stop - cfg.effective_gap] if n_stop else train_d
    stop_d = train_d[len(train_d) - n_stop:] if n_stop else None
    tr = dt.isin(train_d)
    params = cfg.lgb_params
    best = None
    if cfg.hpo_trials > 0:
        params = best = _hpo(data.loc[tr, cols], y_all[tr], train_d, cfg, panel.cross_sectional,
                             fwd.reindex(data.index[tr]) if fwd is not None else None)
    fi = dt.isin(fit_d)
    si = dt.isin(stop_d) if stop_d is not None else np.zeros(len(dt), bool)
    te = dt.isin(test_d)
    xt = data.loc[te, cols]
    booster = lgbm.fit_booster(data.loc[fi, cols], y_all[fi], data.loc[si, cols] if si.any() else None,
                               y_all[si] if si.any() else None, cfg.label, cfg.seed, params,
                               cfg.num_boost_round, cfg.early_stopping_rounds)
    it = booster.best_iteration or None
    score = pd.Series(lgbm.predict(booster, xt), index=xt.index, name="score")
    contrib = booster.predict(xt, num_iteration=it, pred_contrib=True)[:, :-1]
    gain_v = booster.feature_importance("gain", iteration=it)
    trees = int(booster.best_iteration or booster.num_trees())
    split_models = 0
    if cfg.split_by is not None:
        score, contrib, gain_v, split_models = _split_models(data, y_all, cols, cfg, params, fi, si, te, score,
                                                             contrib, gain_v)
    m = evaluate_predictions(score, y_all[te], cfg.label.is_classification,
                             fwd.reindex(xt.index) if fwd is not None else None, train_label=y_all[tr])
    if fwd is not None:
        ls_dates = non_overlapping_dates(calendar, fold, panel.folds[0].test_start, cfg.label.horizon)
        ls = long_short_returns(score[xt.index.get_level_values("datetime").isin(ls_dates)],
                                fwd.reindex(xt.index), cfg.long_short_fraction)
    else:
        ls = pd.Series(dtype=float)
    ties = int(((fwd == cfg.label.threshold) & panel.fwd_dt.isin(test_d)).sum()) \
        if fwd is not None and panel.fwd_dt is not None and cfg.label.kind == "direction" else m["n_zero_label"]
    gain = pd.Series(gain_v, index=cols, name=fold.k)
    shap: pd.Series | pd.DataFrame = pd.Series(np.abs(contrib).mean(axis=0), index=cols, name=fold.k)
    if cfg.shap_blocks == "month":
        month = pd.DatetimeIndex(xt.index.get_level_values("datetime")).to_period("M").astype(str)
        shap = pd.DataFrame(np.abs(contrib), columns=cols).groupby(month.to_numpy()).mean()
        shap.index = [f"{fold.k}:{m}" for m in shap.index]
    row = {"fold": fold.k, "train_start": str(train_d[0]), "train_end": str(train_d[-1]),
           "test_start": str(test_d[0]), "test_end": str(test_d[-1]), **m,
           "accuracy_minus_majority": m["accuracy"] - m["majority_rate"], "zero_return_rows": ties,
           "long_short_return": float(ls.sum()) if len(ls) else float("nan"),
           "long_short_bars": int(len(ls)),
           "trees": trees, "split_models": split_models,
           "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    return FoldOutput(row=row, score=score, long_short=ls, gain=gain, shap=shap, params=best)


def assemble(outputs: list[FoldOutput], cfg: WalkForwardSettings) -> WalkForwardResult:
    """One configuration's fold outputs (in fold order) as a :class:`WalkForwardResult`."""
    return WalkForwardResult(
        folds=pd.DataFrame([o.row for o in outputs]),
        predictions=pd.concat([o.score for o in outputs]).sort_index(),
        prediction_folds=pd.concat([pd.Series(o.row["fold"], index=o.score.index, name="fold", dtype="int64")
                                    for o in outputs]).sort_index(),
        long_short=pd.concat([o.long_short for o in outputs]).sort_index() if outputs else pd.Series(dtype=float),
        gain=pd.DataFrame([o.gain for o in outputs]),
        shap=pd.concat([o.shap if isinstance(o.shap, pd.DataFrame) else o.shap.to_frame().T for o in outputs])
        if outputs else pd.DataFrame(), config=cfg,
        best_params=[o.params for o in outputs if o.params is not None],
    )


def run_walkforward_many(features: pd.DataFrame, label: pd.Series,
                         runs: dict[str, tuple[WalkForwardSettings, Sequence[str] | None]],
                         fwd_return: pd.Series | None = None, *, workers: int | None = 1,
                         ray_address: str | None = None, progress: bool = True, desc: str = "walk-forward",
                         timings: dict[str, float] | None = None) -> dict[str, WalkForwardResult]:
    """Several configurations over the same folds, fold x configuration as the unit of work.

    ``runs`` maps a name to ``(cfg, columns)``: the columns of ``features`` that configuration uses
    (None: all). The configurations must agree on the folds and the label (seeds, model settings, HPO
    and columns may differ). The panel is built once here and handed to
    :func:`graphwiz_trader.research.fanout.run_tasks` (shipped to Ray once); ``workers`` and
    ``ray_address`` are passed on (``workers=1``: serial in this process). The numbers do not depend on
    either: every task fits with LightGBM at :data:`LGB_THREADS` thread and its own seed. ``timings``, when
    given, receives the seconds spent building the panel (``panel``, in this process) and those of
    :func:`~graphwiz_trader.research.fanout.run_tasks`.
    """
    from graphwiz_trader.research.fanout import run_tasks

    if not runs:
        raise SettingError("no walk-forward configuration to run")
    first = next(iter(runs.values()))[0]
    for name, (c, _) in runs.items():
        if _fold_key(c) != _fold_key(first):
            raise SettingError(f"walk-forward run {name!r} has other folds or another label than the first run; "
                               "runs that share a panel must share both")
    t0 = time.perf_counter()
    panel = prepare_panel(features, label, first, fwd_return)
    if timings is not None:
        timings["panel"] = time.perf_counter() - t0
    tasks: list[FoldTask] = []
    for c, cols in runs.values():
        missing = [x for x in (cols or ()) if x not in features.columns]
        if missing:
            raise SettingError(f"walk-forward columns not among the features: {missing[:5]}")
        tasks += [FoldTask(k, c, tuple(cols if cols is not None else features.columns))
                  for k in range(len(panel.folds))]
    outputs = run_tasks(tasks, panel, workers=workers, ray_address=ray_address, desc=desc, progress=progress,
                        timings=timings)
    n = len(panel.folds)
    return {name: assemble(outputs[i * n:(i + 1) * n], c) for i, (name, (c, _)) in enumerate(runs.items())}


def run_walkforward(features: pd.DataFrame, label: pd.Series, cfg: WalkForwardSettings,
                    fwd_return: pd.Series | None = None, name: str = "model", progress: bool = True, *,
                    workers: int | None = 1, ray_address: str | None = None) -> WalkForwardResult:
    """Run every fold (serially by default; ``workers``/``ray_address`` as in :func:`run_walkforward_many`).

    ``fwd_return`` (the h-bar forward log return, demeaned like the label) feeds IC for classification
    labels, the zero-return count and the long-short diagnostic; when ``None`` the label itself is used
    (regression). Accuracy, AUC and the majority class are scored against the target the booster is fitted
    on (:func:`graphwiz_trader.models.lgbm.training_target`: the per-datetime demeaned return for a
    regression on a universe).
    """
    return run_walkforward_many(features, label, {name: (cfg, None)}, fwd_return, workers=workers,
                                ray_address=ray_address, progress=progress, desc=f"walk-forward {name}")[name]


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
