"""The CSI300 reproduction's setup: the published benchmark figures and settings, the run settings and
Qlib's workflow configuration (see :mod:`graphwiz_trader.research.reproduce_csi300`)."""

from __future__ import annotations

import copy
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.backtest.qlib_bridge import CSI300_SETTINGS
from graphwiz_trader.errors import ConfigError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# The published benchmark
# --------------------------------------------------------------------------------------------------------------

METRICS: tuple[str, ...] = ("ic", "icir", "rank_ic", "rank_icir", "annualized_excess_return_with_cost",
                            "information_ratio_with_cost", "max_drawdown_with_cost")
"""The seven figures of Qlib's benchmark table, in its column order."""

METRIC_LABELS: dict[str, str] = {
    "ic": "IC", "icir": "ICIR", "rank_ic": "Rank IC", "rank_icir": "Rank ICIR",
    "annualized_excess_return_with_cost": "Ann. excess ret", "information_ratio_with_cost": "Inf. ratio",
    "max_drawdown_with_cost": "Max drawdown",
}

PUBLISHED: dict[str, float] = {
    "ic": 0.0448, "icir": 0.3660, "rank_ic": 0.0469, "rank_icir": 0.3877,
    "annualized_excess_return_with_cost": 0.0901, "information_ratio_with_cost": 1.0164,
    "max_drawdown_with_cost": -0.1038,
}
PUBLISHED_SOURCE = ("Qlib examples/benchmarks/README.md, CSI300, Alpha158, LightGBM (mean of 20 seeds; train "
                    "2008-01-01..2014-12-31, valid 2015-2016, test 2017-01-01..2020-08-01, TopkDropout 50/5)")

PUBLISHED_MODEL_KWARGS: dict[str, Any] = {
    "loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789,
    "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210, "num_threads": 20,
}
"""``task.model.kwargs`` of workflow_config_lightgbm_Alpha158.yaml (LGBModel's defaults: 1000 rounds, early
stopping 50)."""

# The published costs and limits have one home: the Qlib bridge's CSI300_SETTINGS.
PUBLISHED_EXCHANGE_KWARGS: dict[str, Any] = {
    "limit_threshold": CSI300_SETTINGS.limit_threshold, "deal_price": CSI300_SETTINGS.deal_price,
    "open_cost": CSI300_SETTINGS.open_cost, "close_cost": CSI300_SETTINGS.close_cost,
    "min_cost": CSI300_SETTINGS.min_cost,
}
PUBLISHED_LABEL = "Ref($close, -2)/Ref($close, -1) - 1"
PUBLISHED_ACCOUNT = int(CSI300_SETTINGS.account)
PUBLISHED_BENCHMARK = str(CSI300_SETTINGS.benchmark)
PUBLISHED_MARKET = "csi300"


@dataclass(frozen=True)
class Segments:
    """Closed date ranges (``YYYY-MM-DD``) of the train / valid / test segments."""

    train: tuple[str, str]
    valid: tuple[str, str]
    test: tuple[str, str]

    def __post_init__(self) -> None:
        bounds = [pd.Timestamp(x) for seg in (self.train, self.valid, self.test) for x in seg]
        for name, (a, b) in zip(("train", "valid", "test"), (self.train, self.valid, self.test)):
            if pd.Timestamp(a) > pd.Timestamp(b):
                raise ConfigError(f"segment {name}: start {a} is after end {b}")
        if not (bounds[1] < bounds[2] and bounds[3] < bounds[4]):
            raise ConfigError(f"segments must be ordered train < valid < test without overlap, got {self}")


PUBLISHED_SEGMENTS = Segments(("2008-01-01", "2014-12-31"), ("2015-01-01", "2016-12-31"),
                              ("2017-01-01", "2020-08-01"))
DATA_SEGMENTS = Segments(("2010-01-01", "2014-12-31"), ("2015-01-01", "2016-12-31"), ("2017-01-01", "2020-08-01"))
"""The published segments with the train start moved to the data's first year (the data starts 2010-01-04)."""


# --------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphFeatureSettings:
    """Point-in-time correlation graph over the index members (built by the shared graph builders).

    Attributes
    ----------
    window : int
        Trading days of daily log returns in each correlation window.
    min_periods : int
        Minimum days on which both members of a pair have a return for their correlation to count (else NaN);
        a member needs this many returns in the window to be a node.
    stride : int
        Trading days between snapshots; the snapshot of day ``s`` is used on days ``s .. s+stride-1``.
    rho_min : float
        Edge pruning: an edge needs ``|rho| >= rho_min`` (fraction) besides being among the ``top_k``.
    top_k : int
        Edge pruning: each node keeps the edges to its ``top_k`` largest |rho| (an edge stays when it is among
        either endpoint's ``top_k``).
    mom_days : int
        Horizon (trading days) of the neighbour momentum ``G_nbr_mom_<mom_days>`` and its gap.
    """

    window: int = 60
    min_periods: int = 40
    stride: int = 5
    rho_min: float = 0.0
    top_k: int = 10
    mom_days: int = 5

    def __post_init__(self) -> None:
        if not 3 <= self.min_periods <= self.window:
            raise ConfigError(f"graph: need 3 <= min_periods <= window, got {self.min_periods}, {self.window}")
        if self.stride < 1 or self.top_k < 1 or self.mom_days < 1:
            raise ConfigError(f"graph: stride, top_k and mom_days must be >= 1, got {self.stride}, {self.top_k}, "
                              f"{self.mom_days}")
        if not 0.0 <= self.rho_min < 1.0:
            raise ConfigError(f"graph: rho_min must be in [0, 1), got {self.rho_min}")


def graph_feature_columns(cfg: GraphFeatureSettings = GraphFeatureSettings()) -> tuple[str, ...]:
    """The shared ``G_*`` columns the CSI300 variant appends to Alpha158 (see
    :mod:`graphwiz_trader.features.graph_features`): the snapshot metrics but the community label, and the
    neighbour momentum over ``mom_days`` with its gap. The regime and lead-lag columns are not built here."""
    return ("G_wdeg", "G_eigvec", "G_pagerank", "G_clustering", "G_comm_size", "G_comm_corr",
            f"G_nbr_mom_{cfg.mom_days}", f"G_nbr_mom_gap_{cfg.mom_days}")


GRAPH_FEATURES: tuple[str, ...] = graph_feature_columns()
"""Graph feature columns with the default settings (see :func:`graph_feature_columns`)."""


@dataclass(frozen=True)
class CSI300ReproductionSettings:
    """One reproduction run.

    Attributes
    ----------
    provider_uri : Qlib data folder (``../shared/data/qlib_cn_csi300``).
    seeds : LightGBM seeds, one model per seed and variant.
    segments : train / valid / test ranges.
    market : Qlib market (instruments file) or an explicit tuple of instruments (tests use a handful).
    benchmark : benchmark instrument of the backtest.
    num_threads : LightGBM threads per model (published 20; 1 here, so that models run side by side).
    workers : models fitted at once, each in a process forked from the run's (1: one after the other here).
        Every model reads the same prepared dataset and seed, so the figures do not depend on ``workers``.
    num_boost_round, early_stopping_rounds : LGBModel's (defaults 1000 / 50 as published).
    topk, n_drop : TopkDropoutStrategy (published 50 / 5).
    exchange_codes : instruments whose quotes Qlib's exchange loads (``None``: Qlib's default ``all``).
    graph : also run Alpha158 + graph features.
    graph_config : the correlation graph.
    mlflow_dir : mlflow tracking folder (file store).
    experiment_name : mlflow experiment.
    kernels : Qlib expression-engine worker processes.
    model_overrides : LightGBM parameters replacing published ones (empty for the reproduction; tests on a
        handful of instruments relax the L1/L2 penalties, under which the published model makes no split).
    cache_dir : feature cache folder for Alpha158's raw frame across runs (``None``: compute every run; the CLI
        uses ``data/qlib/feature_cache``); see :mod:`graphwiz_trader.research.csi300_cache`.
    """

    provider_uri: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    segments: Segments = DATA_SEGMENTS
    market: str | tuple[str, ...] = PUBLISHED_MARKET
    benchmark: str = PUBLISHED_BENCHMARK
    num_threads: int = 1
    workers: int = 1
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    topk: int = 50
    n_drop: int = 5
    exchange_codes: str | tuple[str, ...] | None = None
    graph: bool = True
    graph_config: GraphFeatureSettings = field(default_factory=GraphFeatureSettings)
    mlflow_dir: Path | None = None
    experiment_name: str = "reproduce_qlib_csi300"
    kernels: int = 2
    model_overrides: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("reproduce: at least one seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"reproduce: seeds must be distinct, got {self.seeds}")
        if self.workers < 1 or self.num_threads < 1:
            raise ConfigError(f"reproduce: workers and num_threads must be >= 1, got {self.workers}, {self.num_threads}")
        if self.topk < 1 or not 0 <= self.n_drop <= self.topk:
            raise ConfigError(f"reproduce: need topk >= 1 and 0 <= n_drop <= topk, got {self.topk}, {self.n_drop}")


def _instruments_arg(market: str | tuple[str, ...]) -> str | list[str]:
    return market if isinstance(market, str) else list(market)


def published_model_kwargs(num_threads: int = 2, seed: int | None = None, num_boost_round: int = 1000,
                           early_stopping_rounds: int = 50, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """LGBModel kwargs: the published ones, ``num_threads`` replaced, and ``seed`` set on every LightGBM seed.

    Note: ``subsample`` (``bagging_fraction``) has no effect without ``bagging_freq`` > 0, which the
    published config leaves at LightGBM's 0; the seeds change the model through ``colsample_bytree``
    (``feature_fraction``) only.
    """
    kw = dict(PUBLISHED_MODEL_KWARGS)
    kw["num_threads"] = int(num_threads)
    if num_boost_round != 1000:
        kw["num_boost_round"] = int(num_boost_round)
    if early_stopping_rounds != 50:
        kw["early_stopping_rounds"] = int(early_stopping_rounds)
    if seed is not None:
        for k in ("seed", "bagging_seed", "feature_fraction_seed", "data_random_seed"):
            kw[k] = int(seed)
    kw.update(overrides or {})
    return kw


def build_workflow_config(cfg: CSI300ReproductionSettings, limit_threshold: float = 0.095,
                          seed: int | None = None) -> dict[str, Any]:
    """The Qlib workflow of the published YAML as a dict, with this run's substitutions.

    ``limit_threshold`` is the value handed to Qlib's exchange: 0.095 when ``$change`` is a fraction, 9.5
    when it is in percent (:func:`detect_change_unit`).

    Returns
    -------
    dict with ``market``, ``benchmark``, ``data_handler_config``, ``port_analysis_config`` and ``task``
    (``model``, ``dataset``, ``record``), shaped like Qlib's YAML so ``init_instance_by_config`` builds it.
    """
    seg = cfg.segments
    instruments = _instruments_arg(cfg.market)
    handler_cfg: dict[str, Any] = {
        "start_time": seg.train[0], "end_time": seg.test[1],
        "fit_start_time": seg.train[0], "fit_end_time": seg.train[1],
        "instruments": instruments,
    }
    exchange_kwargs = dict(PUBLISHED_EXCHANGE_KWARGS)
    exchange_kwargs["limit_threshold"] = float(limit_threshold)
    if cfg.exchange_codes is not None:
        exchange_kwargs["codes"] = _instruments_arg(cfg.exchange_codes)
    port_cfg: dict[str, Any] = {
        "strategy": {"class": "TopkDropoutStrategy", "module_path": "qlib.contrib.strategy",
                     "kwargs": {"signal": "<PRED>", "topk": cfg.topk, "n_drop": cfg.n_drop}},
        "backtest": {"start_time": seg.test[0], "end_time": seg.test[1], "account": PUBLISHED_ACCOUNT,
                     "benchmark": cfg.benchmark, "exchange_kwargs": exchange_kwargs},
    }
    return {
        "qlib_init": {"provider_uri": str(cfg.provider_uri), "region": "cn"},
        "market": instruments,
        "benchmark": cfg.benchmark,
        "data_handler_config": handler_cfg,
        "port_analysis_config": port_cfg,
        "task": {
            "model": {"class": "LGBModel", "module_path": "qlib.contrib.model.gbdt",
                      "kwargs": published_model_kwargs(cfg.num_threads, seed, cfg.num_boost_round,
                                                       cfg.early_stopping_rounds, cfg.model_overrides)},
            "dataset": {"class": "DatasetH", "module_path": "qlib.data.dataset",
                        "kwargs": {"handler": {"class": "Alpha158", "module_path": "qlib.contrib.data.handler",
                                               "kwargs": handler_cfg},
                                   "segments": {"train": list(seg.train), "valid": list(seg.valid),
                                                "test": list(seg.test)}}},
            "record": [
                {"class": "SignalRecord", "module_path": "qlib.workflow.record_temp",
                 "kwargs": {"model": "<MODEL>", "dataset": "<DATASET>"}},
                {"class": "SigAnaRecord", "module_path": "qlib.workflow.record_temp",
                 "kwargs": {"ana_long_short": False, "ann_scaler": 252}},
                {"class": "PortAnaRecord", "module_path": "qlib.workflow.record_temp",
                 "kwargs": {"config": port_cfg}},
            ],
        },
    }


def alpha158_default_processors() -> tuple[list[dict], list[dict]]:
    """(infer_processors, learn_processors) that Qlib's ``Alpha158`` uses when the YAML does not set them
    (read from its signature: no infer processors; ``DropnaLabel`` then ``CSZScoreNorm`` on the label)."""
    from qlib.contrib.data.handler import Alpha158

    params = inspect.signature(Alpha158.__init__).parameters
    return (copy.deepcopy(list(params["infer_processors"].default)),
            copy.deepcopy(list(params["learn_processors"].default)))


