"""LightGBM fitting shared by every generator: one place for parameters, seeds and early stopping."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd

from graphwiz_trader.errors import InsufficientDataError
from graphwiz_trader.models.targets import LabelSpec

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, object] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


def training_target(label: pd.Series, spec: LabelSpec, cross_sectional: bool) -> pd.Series:
    """What the booster fits. Regression on a universe fits the per-datetime demeaned label (the
    cross-sectional part a ranking can use); classification fits the 0/1 label as is."""
    if spec.is_classification or not cross_sectional:
        return label
    return label - label.groupby(level="datetime").transform("mean")


def fit_booster(x_train: pd.DataFrame, y_train: pd.Series, x_stop: pd.DataFrame | None, y_stop: pd.Series | None,
                spec: LabelSpec, seed: int, params: dict | None = None, num_boost_round: int = 300,
                early_stopping_rounds: int = 30) -> lgb.Booster:
    """Fit a booster; early stopping uses (x_stop, y_stop), which must lie after the training rows."""
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "bagging_seed": seed, "feature_fraction_seed": seed,
         "data_random_seed": seed}
    p["objective"] = "binary" if spec.is_classification else "regression"
    if y_train.nunique() < 2:
        raise InsufficientDataError("the training label has a single value; no model can be fitted")
    dtrain = lgb.Dataset(x_train, y_train.to_numpy(dtype="float64"), free_raw_data=True)
    callbacks = []
    valid_sets = []
    if x_stop is not None and y_stop is not None and len(x_stop):
        valid_sets = [lgb.Dataset(x_stop, y_stop.to_numpy(dtype="float64"), reference=dtrain)]
        callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
    booster = lgb.train(p, dtrain, num_boost_round=num_boost_round, valid_sets=valid_sets, callbacks=callbacks)
    log.debug("booster: %d trees (best %s)", booster.num_trees(), booster.best_iteration)
    return booster


def predict(booster: lgb.Booster, x: pd.DataFrame) -> np.ndarray:
    it = booster.best_iteration if booster.best_iteration and booster.best_iteration > 0 else None
    return booster.predict(x, num_iteration=it)
