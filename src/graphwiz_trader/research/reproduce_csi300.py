"""Reproduce Qlib's published LightGBM / Alpha158 / CSI300 benchmark, then add a correlation graph.

What runs
---------
Qlib's own objects, configured like Qlib's ``examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml``:
``qlib.contrib.model.gbdt.LGBModel`` on a ``qlib.data.dataset.DatasetH`` over ``qlib.contrib.data.handler.Alpha158``
(label ``Ref($close, -2)/Ref($close, -1) - 1``, the handler's default processors), recorded with
``qlib.workflow.R`` and ``SignalRecord`` / ``SigAnaRecord`` / ``PortAnaRecord`` (Qlib's ``TopkDropoutStrategy``,
topk 50, n_drop 5, Qlib's exchange with the published costs). The dataset is prepared once and one model is
fitted per seed (LightGBM ``seed`` / ``bagging_seed`` / ``feature_fraction_seed`` / ``data_random_seed``).

Then (``graph=True``) the same runs again with graph features appended to Alpha158 as extra ``feature``
columns of a Qlib ``DataHandlerLP`` (a ``StaticDataLoader`` over Alpha158's raw frame joined with the graph
frame; the processors are Alpha158's defaults, so only the columns differ). The graph: a point-in-time
Pearson correlation graph of daily returns over the CSI300 members of the day (60-day window, a new
snapshot every 5 trading days), see :func:`correlation_graph_features`.

Deviations from the published run, all forced by the data (``../shared/data/README.md``) or the machine
-------------------------------------------------------------------------------------------------------
* Segments: the data starts 2010-01-04, so train 2010-01-01..2014-12-31 (published 2008-01-01..), valid
  2015-2016 and test 2017-01-01..2020-08-01 as published. Alpha158's 60-day windows are partly empty in
  the first ~3 months of 2010 (LightGBM treats NaN as missing).
* ``num_threads`` 2 instead of 20 (same model; the machine has 2 cores).
* No ``$vwap`` field: Alpha158's ``VWAP0`` column is all NaN (LightGBM never splits on it).
* 38 former CSI300 members, mostly delisted, have no features; Qlib returns no rows for them, so the
  model never scores them and the strategy cannot hold them (a survivorship tilt the published data does
  not have). They are listed in the result.
* ``$change`` is stored in percent here (5.03 for +5.03 %), while Qlib's float ``limit_threshold`` rule is
  ``$change >= threshold``. The published 0.095 (fraction) is therefore passed as 9.5 when the data is in
  percent (detected, see :func:`detect_change_unit`): the same rule on the same field.
* The strategy's signal is ``"<PRED>"`` (the saved ``pred.pkl``) instead of ``[<MODEL>, <DATASET>]``; both
  give the same scores, the former avoids predicting twice.

Published reference (Qlib ``examples/benchmarks/README.md``, mean of 20 seeds): :data:`PUBLISHED`.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.backtest.qlib_bridge import CSI300_SETTINGS
from graphwiz_trader.data.qlib_runtime import default_mlflow_dir
from graphwiz_trader.errors import ConfigError, DataError

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
    """Point-in-time correlation graph over the index members.

    Attributes
    ----------
    window : int
        Trading days of daily close-to-close returns (fractions) in each correlation window.
    min_periods : int
        Minimum days on which both members of a pair have a return for their correlation to count (else NaN);
        a member needs this many returns in the window to be a node.
    stride : int
        Trading days between snapshots; the snapshot of day ``s`` is used on days ``s .. s+stride-1``.
    rho_min : float
        |rho| threshold of an edge for the weighted degree.
    top_k : int
        Neighbours (largest |rho|) used for the mean |rho| and the neighbour momentum.
    mom_days : int
        Horizon of the momentum ``close_t / close_{t-mom_days} - 1`` (fraction) averaged over neighbours.
    """

    window: int = 60
    min_periods: int = 40
    stride: int = 5
    rho_min: float = 0.5
    top_k: int = 10
    mom_days: int = 5

    def __post_init__(self) -> None:
        if not 2 <= self.min_periods <= self.window:
            raise ConfigError(f"graph: need 2 <= min_periods <= window, got {self.min_periods}, {self.window}")
        if self.stride < 1 or self.top_k < 1 or self.mom_days < 1:
            raise ConfigError(f"graph: stride, top_k and mom_days must be >= 1, got {self.stride}, {self.top_k}, "
                              f"{self.mom_days}")
        if not 0.0 <= self.rho_min < 1.0:
            raise ConfigError(f"graph: rho_min must be in [0, 1), got {self.rho_min}")


GRAPH_FEATURES: tuple[str, ...] = ("G_WDEG", "G_KRHO", "G_MKTRHO", "G_NMOM", "G_NMOM_GAP")
"""Graph feature columns (see :func:`correlation_graph_features`)."""


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
    num_threads : LightGBM threads (published 20; 2 here).
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
    """

    provider_uri: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    segments: Segments = DATA_SEGMENTS
    market: str | tuple[str, ...] = PUBLISHED_MARKET
    benchmark: str = PUBLISHED_BENCHMARK
    num_threads: int = 2
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

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("reproduce: at least one seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"reproduce: seeds must be distinct, got {self.seeds}")
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


# --------------------------------------------------------------------------------------------------------------
# Data checks
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataAudit:
    """What the data lacks relative to Qlib's published dataset.

    Attributes
    ----------
    members : instruments that are index members at some point of the run's range.
    members_without_features : members with no ``features/<code>/`` folder (no rows, never scored).
    has_vwap : whether ``$vwap`` exists (else Alpha158's VWAP0 is NaN).
    change_unit : ``fraction`` or ``percent`` (how ``$change`` is stored).
    limit_threshold : the value passed to Qlib's exchange for the published 0.095 rule.
    first_calendar_day : first day of the data's calendar.
    """

    members: tuple[str, ...]
    members_without_features: tuple[str, ...]
    has_vwap: bool
    change_unit: str
    limit_threshold: float
    first_calendar_day: str

    def notes(self) -> list[str]:
        out = [f"data calendar starts {self.first_calendar_day}"]
        if not self.has_vwap:
            out.append("no $vwap field: Alpha158's VWAP0 column is all NaN")
        if self.members_without_features:
            out.append(f"{len(self.members_without_features)} of {len(self.members)} members have no features "
                       f"(never scored, never held): {', '.join(self.members_without_features)}")
        if self.change_unit == "percent":
            out.append(f"$change is stored in percent: the published limit_threshold 0.095 is applied as "
                       f"{self.limit_threshold:g} on the same $change field")
        return out


def detect_change_unit(codes: Sequence[str], start: str, end: str) -> str:
    """``fraction`` or ``percent``: how ``$change`` is stored (the backtest bridge's check, call after
    ``init_qlib``; see :func:`graphwiz_trader.backtest.qlib_bridge.change_unit`)."""
    from graphwiz_trader.backtest.qlib_bridge import change_unit

    return change_unit(list(codes), start, end)


def audit_data(cfg: CSI300ReproductionSettings) -> DataAudit:
    """Members without features, the ``$vwap`` field and the unit of ``$change`` (call after ``init_qlib``)."""
    from qlib.data import D

    provider = Path(cfg.provider_uri)
    seg = cfg.segments
    if isinstance(cfg.market, str):
        spans = D.list_instruments(D.instruments(cfg.market), start_time=seg.train[0], end_time=seg.test[1])
        members = tuple(sorted(spans))
    else:
        members = tuple(cfg.market)
    if not members:
        raise DataError(f"market {cfg.market!r} has no members in {seg.train[0]}..{seg.test[1]} ({provider})")
    feat = provider / "features"
    have = {p.name.lower() for p in feat.iterdir()} if feat.is_dir() else set()
    missing = tuple(c for c in members if c.lower() not in have)
    present = [c for c in members if c.lower() in have]
    if not present:
        raise DataError(f"none of the {len(members)} members of {cfg.market!r} has features under {feat}")
    has_vwap = any((feat / c.lower() / "vwap.day.bin").exists() for c in present[:50])
    unit = detect_change_unit(present[:30], seg.test[0], str(pd.Timestamp(seg.test[0]) + pd.Timedelta(days=90))[:10])
    thr = PUBLISHED_EXCHANGE_KWARGS["limit_threshold"] * (100.0 if unit == "percent" else 1.0)
    cal = (provider / "calendars" / "day.txt").read_text().split()
    return DataAudit(members, missing, has_vwap, unit, float(thr), cal[0] if cal else "?")


# --------------------------------------------------------------------------------------------------------------
# Point-in-time correlation graph features
# --------------------------------------------------------------------------------------------------------------
# NOTE for the lead: this is the module-internal graph. When graphwiz_trader.graph.builders.build_snapshots
# and graphwiz_trader.features.graph_features land, swap them in at `correlation_graph_features` (same
# input: a close panel and a membership mask; same output: a (datetime, instrument) frame of float32).


def pairwise_corr(x: np.ndarray, min_periods: int) -> np.ndarray:
    """Pearson correlation of the columns of ``x`` (rows = days) over the days both are non-NaN.

    Same as ``pandas.DataFrame.corr(min_periods=...)``: pairs with fewer than ``min_periods`` shared days,
    or a zero variance over them, are NaN. Vectorised with five matrix products.
    """
    m = ~np.isnan(x)
    x0 = np.where(m, x, 0.0)
    mf = m.astype(np.float64)
    n = mf.T @ mf
    sx = x0.T @ mf                      # sx[i, j] = sum of x_i over days where both i and j are present
    sxx = (x0 * x0).T @ mf
    sxy = x0.T @ x0
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        vx = sxx - sx * sx / n
        vy = vx.T
        rho = cov / np.sqrt(vx * vy)
    bad = (n < min_periods) | ~(vx > 1e-18) | ~(vy > 1e-18)
    rho[bad] = np.nan
    return np.clip(rho, -1.0, 1.0)


def snapshot_positions(n_days: int, cfg: GraphFeatureSettings) -> np.ndarray:
    """Row positions of the snapshot days: ``window-1, window-1+stride, ...`` (anchored at the panel's start,
    so truncating the panel's end never moves a snapshot)."""
    return np.arange(cfg.window - 1, n_days, cfg.stride)


def correlation_graph_features(close: pd.DataFrame, members: pd.DataFrame | None = None,
                               cfg: GraphFeatureSettings = GraphFeatureSettings()) -> pd.DataFrame:
    """Point-in-time graph features per (day, member).

    Parameters
    ----------
    close : adjusted closes, rows = trading days (ascending), columns = instruments; NaN where no bar.
    members : same shape, True where the instrument is an index member that day (``None``: all).
    cfg : window, stride, thresholds.

    Returns
    -------
    DataFrame indexed (datetime, instrument), float32 columns :data:`GRAPH_FEATURES`. On day t the snapshot
    ``s`` = the last snapshot day <= t; its nodes are the members on day s with >= ``min_periods`` returns in
    the ``window`` days ending at s; rho = pairwise Pearson correlation of daily returns over that window.

    - ``G_WDEG``: sum of |rho_ij| over edges (|rho_ij| >= ``rho_min``) divided by (nodes - 1);
    - ``G_KRHO``: mean |rho_ij| over the ``top_k`` neighbours j of largest |rho_ij|;
    - ``G_MKTRHO``: mean |rho_ij| over all other nodes;
    - ``G_NMOM``: |rho|-weighted mean over the ``top_k`` neighbours of their ``mom_days`` return
      ``close_t / close_{t-mom_days} - 1`` on day t (neighbours without a value that day are skipped);
    - ``G_NMOM_GAP``: the instrument's own ``mom_days`` return on day t minus ``G_NMOM``.

    Every value on day t uses closes up to t only. Rows: nodes of the snapshot, on the days t it covers.
    """
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise DataError("correlation_graph_features: close index must be ascending and unique")
    if members is not None and (not members.index.equals(close.index) or not members.columns.equals(close.columns)):
        raise DataError("correlation_graph_features: members must have the same index and columns as close")
    px = close.to_numpy(dtype=np.float64)
    ret = np.full_like(px, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ret[1:] = px[1:] / px[:-1] - 1.0
        mom = np.full_like(px, np.nan)
        mom[cfg.mom_days:] = px[cfg.mom_days:] / px[:-cfg.mom_days] - 1.0
    ret[~np.isfinite(ret)] = np.nan
    mom[~np.isfinite(mom)] = np.nan
    mem = np.ones(px.shape, dtype=bool) if members is None else members.to_numpy(dtype=bool)
    n_days = len(close)
    snaps = snapshot_positions(n_days, cfg)
    cols = np.asarray(close.columns)
    blocks: list[pd.DataFrame] = []
    for k, s in enumerate(snaps):
        win = ret[s - cfg.window + 1: s + 1]
        nodes = np.flatnonzero(mem[s] & (np.sum(~np.isnan(win), axis=0) >= cfg.min_periods))
        if len(nodes) < 2:
            continue
        a = np.abs(pairwise_corr(win[:, nodes], cfg.min_periods))
        np.fill_diagonal(a, np.nan)
        n = len(nodes)
        with np.errstate(invalid="ignore"):
            edge = np.where(a >= cfg.rho_min, a, 0.0)
        wdeg = edge.sum(axis=1) / (n - 1)
        with warnings_ignored():
            mkt = np.nanmean(a, axis=1)
        kk = min(cfg.top_k, n - 1)
        filled = np.where(np.isnan(a), -1.0, a)
        top = np.argpartition(-filled, kk - 1, axis=1)[:, :kk]
        w = np.zeros((n, n))
        rows = np.repeat(np.arange(n), kk)
        w[rows, top.ravel()] = np.maximum(filled[rows, top.ravel()], 0.0)
        cnt = (w > 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            krho = np.where(cnt > 0, w.sum(axis=1) / np.maximum(cnt, 1), np.nan)
        end = snaps[k + 1] if k + 1 < len(snaps) else n_days
        days = np.arange(s, end)
        m = mom[days][:, nodes]                         # (days, n)
        present = ~np.isnan(m)
        num = np.where(present, m, 0.0) @ w.T           # sum_j w_ij m_j
        den = present.astype(np.float64) @ w.T
        with np.errstate(invalid="ignore", divide="ignore"):
            nmom = np.where(den > 0, num / den, np.nan)
        gap = m - nmom
        nd = len(days)
        idx = pd.MultiIndex.from_arrays([np.repeat(close.index[days], n), np.tile(cols[nodes], nd)],
                                        names=["datetime", "instrument"])
        blocks.append(pd.DataFrame({
            "G_WDEG": np.tile(wdeg, nd), "G_KRHO": np.tile(krho, nd), "G_MKTRHO": np.tile(mkt, nd),
            "G_NMOM": nmom.ravel(), "G_NMOM_GAP": gap.ravel(),
        }, index=idx, dtype=np.float32))
    if not blocks:
        raise DataError(f"correlation graph: no snapshot has 2 or more nodes ({n_days} days, window {cfg.window}, "
                        f"min_periods {cfg.min_periods})")
    return pd.concat(blocks).sort_index()


@contextlib.contextmanager
def warnings_ignored() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@contextlib.contextmanager
def _quiet(sink: io.StringIO) -> Iterator[None]:
    """Qlib's and mlflow's console output (prints, progress bars, RuntimeWarnings) into ``sink``; Qlib's INFO
    logs off (its WARNINGs still reach the console)."""
    from qlib.log import get_module_logger

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    get_module_logger.setLevel(logging.WARNING)  # Qlib re-applies its own level on every call
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings_ignored():
        yield


def load_close_and_membership(market: str | tuple[str, ...], start: str, end: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adjusted closes (days x instruments) of every member of ``market`` over [start, end] on Qlib's calendar,
    and the point-in-time membership mask (True inside a membership span). Call after ``init_qlib``."""
    from qlib.data import D

    cal = pd.DatetimeIndex(D.calendar(start_time=start, end_time=end), name="datetime")
    if isinstance(market, str):
        spans = D.list_instruments(D.instruments(market), start_time=start, end_time=end)
    else:
        spans = {c: [(cal[0], cal[-1])] for c in market}
    codes = sorted(spans)
    df = D.features(codes, ["$close"], start_time=start, end_time=end)
    if df.empty:
        raise DataError(f"no closes for {len(codes)} members of {market!r} in {start}..{end}")
    close = df["$close"].unstack(level="instrument").reindex(index=cal).astype("float64")
    close = close.reindex(columns=[c for c in codes if c in close.columns])
    close.columns.name = "instrument"
    mask = np.zeros(close.shape, dtype=bool)
    pos = {c: i for i, c in enumerate(close.columns)}
    for c, sp in spans.items():
        if c not in pos:
            continue
        for a, b in sp:
            mask[(cal >= pd.Timestamp(a)) & (cal <= pd.Timestamp(b)), pos[c]] = True
    return close, pd.DataFrame(mask, index=close.index, columns=close.columns)


# --------------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    """Figures of one fitted model: Qlib's SigAnaRecord (IC...) and PortAnaRecord (excess return...).

    Returns and drawdowns are fractions; the excess return is annualised by Qlib (252 days, additive);
    the information ratio is Qlib's (mean / std * sqrt(252)) of the daily excess return with cost.
    """

    variant: str
    seed: int
    metrics: dict[str, float]
    extra: dict[str, float]
    best_iteration: int
    n_features: int
    fit_seconds: float
    backtest_seconds: float
    experiment_id: str
    recorder_id: str
    artifact_dir: str


@dataclass(frozen=True)
class ReproductionResult:
    """All seeds of every variant, their mean/std, and where mlflow stored the runs."""

    config: dict[str, Any]
    workflow: dict[str, Any]
    audit: DataAudit
    runs: dict[str, list[SeedResult]]
    timings: dict[str, float]
    run_dir: str | None

    def summary(self, variant: str) -> dict[str, dict[str, float]]:
        """``{"mean": {...}, "std": {...}}`` over seeds (sample std, ddof=1; NaN with one seed)."""
        return summarize([r.metrics for r in self.runs[variant]])

    def paired_difference(self, variant: str, base: str = "alpha158") -> dict[str, Any]:
        """Per-seed ``variant - base`` (same seed, same data) with mean and std."""
        a = {r.seed: r.metrics for r in self.runs[base]}
        per = [{k: r.metrics[k] - a[r.seed][k] for k in METRICS} | {"seed": r.seed}
               for r in self.runs[variant] if r.seed in a]
        s = summarize([{k: p[k] for k in METRICS} for p in per])
        return {"per_seed": per, **s}

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "published": PUBLISHED, "published_source": PUBLISHED_SOURCE,
            "config": self.config, "workflow": self.workflow,
            "data_notes": self.audit.notes(),
            "audit": {"members": len(self.audit.members),
                      "members_without_features": list(self.audit.members_without_features),
                      "has_vwap": self.audit.has_vwap, "change_unit": self.audit.change_unit,
                      "limit_threshold_passed": self.audit.limit_threshold},
            "variants": {}, "timings_seconds": self.timings, "run_dir": self.run_dir,
        }
        for v, rs in self.runs.items():
            out["variants"][v] = {"per_seed": [asdict(r) for r in rs], **self.summary(v)}
        if "alpha158+graph" in self.runs and "alpha158" in self.runs:
            out["graph_minus_baseline"] = self.paired_difference("alpha158+graph")
        return out


def summarize(rows: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1) of each metric over ``rows``."""
    df = pd.DataFrame(list(rows), columns=list(METRICS), dtype="float64")
    return {"mean": {k: float(df[k].mean()) for k in METRICS},
            "std": {k: float(df[k].std(ddof=1)) if len(df) > 1 else float("nan") for k in METRICS}}


def _graph_dataset(base_dataset: Any, graph: pd.DataFrame, segments: Segments) -> Any:
    """A DatasetH whose handler holds Alpha158's raw frame (features + label) with the graph columns appended
    to the ``feature`` group, and Alpha158's default processors."""
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandler, DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader

    raw = base_dataset.handler.fetch(col_set=DataHandler.CS_RAW, data_key=DataHandlerLP.DK_R)
    g = graph.reindex(raw.index)
    g.columns = pd.MultiIndex.from_product([["feature"], list(g.columns)])
    feat_cols = [c for c in raw.columns if c[0] == "feature"]
    other = [c for c in raw.columns if c[0] != "feature"]
    joined = pd.concat([raw[feat_cols], g, raw[other]], axis=1)
    infer, learn = alpha158_default_processors()
    handler = DataHandlerLP(data_loader=StaticDataLoader(config=joined), infer_processors=infer,
                            learn_processors=learn, process_type=DataHandlerLP.PTYPE_A)
    return DatasetH(handler=handler, segments={"train": list(segments.train), "valid": list(segments.valid),
                                               "test": list(segments.test)})


def _fit_and_record(variant: str, seed: int, dataset: Any, workflow: dict[str, Any], cfg: CSI300ReproductionSettings,
                    log_sink: io.StringIO) -> SeedResult:
    from qlib.utils import flatten_dict, init_instance_by_config
    from qlib.workflow import R
    from qlib.workflow.record_temp import PortAnaRecord, SigAnaRecord, SignalRecord

    model_cfg = copy.deepcopy(workflow["task"]["model"])
    model_cfg["kwargs"] = published_model_kwargs(cfg.num_threads, seed, cfg.num_boost_round, cfg.early_stopping_rounds,
                                                 cfg.model_overrides)
    model = init_instance_by_config(model_cfg)
    n_features = int(len(dataset.handler.get_cols("feature")))
    from graphwiz_trader.data.qlib_runtime import ensure_experiment

    ensure_experiment(cfg.experiment_name)
    with R.start(experiment_name=cfg.experiment_name, recorder_name=f"{variant}_seed{seed}"):
        R.log_params(**flatten_dict({"variant": variant, "seed": seed, "model": model_cfg,
                                     "n_features": n_features}))
        t0 = time.perf_counter()
        with _quiet(log_sink):
            model.fit(dataset)
        fit_s = time.perf_counter() - t0
        R.save_objects(trained_model=model)
        rec = R.get_recorder()
        t1 = time.perf_counter()
        with _quiet(log_sink):
            SignalRecord(model=model, dataset=dataset, recorder=rec).generate()
            sig = SigAnaRecord(rec, ana_long_short=False, ann_scaler=252)
            sig.generate()
            par = PortAnaRecord(rec, config=copy.deepcopy(workflow["port_analysis_config"]),
                                risk_analysis_freq="day")
            par.generate()
        bt_s = time.perf_counter() - t1
        pred = sig.load("pred.pkl")
        if float(pred.iloc[:, 0].std()) == 0.0:
            log.warning("%s seed %d: the model predicts one constant score (best iteration %s); IC is undefined "
                        "(too little data for the published L1/L2 penalties?)", variant, seed,
                        getattr(model.model, "best_iteration", "?"))
        ic, ric = sig.load("ic.pkl"), sig.load("ric.pkl")
        pa = par.load("port_analysis_1day.pkl")["risk"]
        report = par.load("report_normal_1day.pkl")
        metrics = {
            "ic": float(ic.mean()), "icir": float(ic.mean() / ic.std()),
            "rank_ic": float(ric.mean()), "rank_icir": float(ric.mean() / ric.std()),
            "annualized_excess_return_with_cost": float(pa[("excess_return_with_cost", "annualized_return")]),
            "information_ratio_with_cost": float(pa[("excess_return_with_cost", "information_ratio")]),
            "max_drawdown_with_cost": float(pa[("excess_return_with_cost", "max_drawdown")]),
        }
        extra = {
            "annualized_excess_return_without_cost": float(pa[("excess_return_without_cost", "annualized_return")]),
            "information_ratio_without_cost": float(pa[("excess_return_without_cost", "information_ratio")]),
            "max_drawdown_without_cost": float(pa[("excess_return_without_cost", "max_drawdown")]),
            "mean_daily_turnover": float(report["turnover"].mean()),
            "n_test_days": float(len(report)),
            "n_ic_days": float(len(ic)),
        }
        R.log_metrics(**{f"summary.{k}": v for k, v in metrics.items() if math.isfinite(v)})
        best = int(getattr(model.model, "best_iteration", 0) or model.model.current_iteration())
        try:
            art = rec.get_local_dir()
        except Exception:  # noqa: BLE001 - a non-local tracking store has no local folder
            art = str(getattr(rec, "artifact_uri", ""))
        return SeedResult(variant, seed, metrics, extra, best, n_features, round(fit_s, 2), round(bt_s, 2),
                          str(rec.experiment_id), str(rec.id), str(art))


def run_reproduction(cfg: CSI300ReproductionSettings, run_dir: Path | None = None, progress: bool = True,
                     on_seed: Callable[[SeedResult], None] | None = None) -> ReproductionResult:
    """Run the published workflow for every seed (and with graph features when ``cfg.graph``).

    Parameters
    ----------
    cfg : the run.
    run_dir : folder for Qlib's console output (``qlib_output.log``) and the graph features (Parquet).
    progress : a progress bar over the fits.
    on_seed : called after each fitted and backtested model (e.g. to print a line).
    """
    from qlib.utils import init_instance_by_config
    from graphwiz_trader.core.progress import bar as progress_counter

    from graphwiz_trader.data.qlib_runtime import init_qlib

    t_all = time.perf_counter()
    init_qlib(cfg.provider_uri, region="cn", mlflow_dir=cfg.mlflow_dir, kernels=cfg.kernels)
    audit = audit_data(cfg)
    for note in audit.notes():
        log.info("data: %s", note)
    workflow = build_workflow_config(cfg, limit_threshold=audit.limit_threshold)
    timings: dict[str, float] = {}
    sink = io.StringIO()

    t0 = time.perf_counter()
    with _quiet(sink):
        dataset = init_instance_by_config(workflow["task"]["dataset"])
    timings["alpha158_dataset"] = round(time.perf_counter() - t0, 2)
    log.info("Alpha158 dataset prepared in %.1fs", timings["alpha158_dataset"])

    variants = ["alpha158"] + (["alpha158+graph"] if cfg.graph else [])
    runs: dict[str, list[SeedResult]] = {v: [] for v in variants}
    bar = progress_counter(total=len(variants) * len(cfg.seeds), desc="reproduce qlib-csi300", unit="model", enabled=progress)
    try:
        for seed in cfg.seeds:
            r = _fit_and_record("alpha158", seed, dataset, workflow, cfg, sink)
            runs["alpha158"].append(r)
            bar.update(1)
            if on_seed:
                on_seed(r)
        if cfg.graph:
            t0 = time.perf_counter()
            seg = cfg.segments
            close, members = load_close_and_membership(cfg.market, seg.train[0], seg.test[1])
            graph = correlation_graph_features(close, members, cfg.graph_config)
            timings["graph_features"] = round(time.perf_counter() - t0, 2)
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                graph.to_parquet(run_dir / "graph_features.parquet")
            t0 = time.perf_counter()
            with _quiet(sink):
                gds = _graph_dataset(dataset, graph, cfg.segments)
            timings["graph_dataset"] = round(time.perf_counter() - t0, 2)
            for seed in cfg.seeds:
                r = _fit_and_record("alpha158+graph", seed, gds, workflow, cfg, sink)
                runs["alpha158+graph"].append(r)
                bar.update(1)
                if on_seed:
                    on_seed(r)
    finally:
        bar.close()
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "qlib_output.log").write_text(sink.getvalue())
    for v in variants:
        timings[f"fit_{v}"] = round(sum(r.fit_seconds for r in runs[v]), 2)
        timings[f"backtest_{v}"] = round(sum(r.backtest_seconds for r in runs[v]), 2)
    timings["total"] = round(time.perf_counter() - t_all, 2)
    conf = asdict(cfg)
    conf["provider_uri"] = str(cfg.provider_uri)
    conf["mlflow_dir"] = str(Path(cfg.mlflow_dir).resolve() if cfg.mlflow_dir else default_mlflow_dir())
    conf["python_hash_seed"] = os.environ.get("PYTHONHASHSEED", "random")
    return ReproductionResult(conf, workflow, audit, runs, timings, None if run_dir is None else str(run_dir))


# --------------------------------------------------------------------------------------------------------------
# Presentation
# --------------------------------------------------------------------------------------------------------------


def _fmt(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.4f}" if not math.isfinite(std) else f"{mean:.4f}±{std:.4f}"


def format_table(result: ReproductionResult) -> str:
    """Published row, then mean±std over seeds of each variant, then the paired graph - baseline difference."""
    names = [METRIC_LABELS[k] for k in METRICS]
    rows: list[tuple[str, list[str]]] = [("published (20 seeds)", [f"{PUBLISHED[k]:.4f}" for k in METRICS])]
    for v, rs in result.runs.items():
        s = result.summary(v)
        rows.append((f"{v} ({len(rs)} seeds)", [_fmt(s["mean"][k], s["std"][k]) for k in METRICS]))
    if "alpha158+graph" in result.runs:
        d = result.paired_difference("alpha158+graph")
        rows.append(("graph - baseline (paired)", [_fmt(d["mean"][k], d["std"][k]) for k in METRICS]))
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(n), *(len(r[1][i]) for r in rows)) for i, n in enumerate(names)]
    head = " | ".join([" " * w0] + [n.rjust(w) for n, w in zip(names, widths)])
    lines = [head, "-" * len(head)]
    for label, vals in rows:
        lines.append(" | ".join([label.ljust(w0)] + [v.rjust(w) for v, w in zip(vals, widths)]))
    return "\n".join(lines)



__all__ = [
    "DATA_SEGMENTS", "DataAudit", "GRAPH_FEATURES", "GraphFeatureSettings", "METRICS", "PUBLISHED",
    "PUBLISHED_EXCHANGE_KWARGS", "PUBLISHED_LABEL", "PUBLISHED_MODEL_KWARGS", "PUBLISHED_SEGMENTS",
    "CSI300ReproductionSettings", "ReproductionResult", "SeedResult", "Segments", "alpha158_default_processors",
    "audit_data", "build_workflow_config", "correlation_graph_features", "detect_change_unit", "format_table",
    "load_close_and_membership", "pairwise_corr", "published_model_kwargs", "run_reproduction",
    "snapshot_positions", "summarize",
]
