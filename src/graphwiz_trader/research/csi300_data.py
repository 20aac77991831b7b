"""The CSI300 reproduction's data side: the data audit, the closes with their point-in-time index membership,
and the graph features through the project's shared graph path (builders -> graph store -> features; see
:mod:`graphwiz_trader.research.reproduce_csi300`)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.data.universe import membership_mask
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.pipeline import GraphBuildSettings
from graphwiz_trader.research.csi300_setup import (
    CSI300ReproductionSettings,
    GraphFeatureSettings,
    PUBLISHED_EXCHANGE_KWARGS,
    graph_feature_columns,
)

log = logging.getLogger(__name__)


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
# Point-in-time correlation graph features: the shared builders, the graph store and the shared feature code
# --------------------------------------------------------------------------------------------------------------

def graph_build_settings(cfg: GraphFeatureSettings) -> GraphBuildSettings:
    """The shared build spec of the CSI300 graph: Pearson correlation of daily log returns over ``window``
    trading days, a snapshot every ``stride`` days, edges among each node's ``top_k`` strongest |rho|
    (>= ``rho_min``), no lead-lag edges, Louvain communities (see :func:`graph_features_csi300`)."""
    return GraphBuildSettings(window=cfg.window, stride=cfg.stride, method="pearson", min_abs_rho=cfg.rho_min,
                              top_k=cfg.top_k, min_periods=cfg.min_periods, lead_max_lag=0, exchange="qlib_cn")


def graph_features_csi300(close: pd.DataFrame, members: pd.DataFrame | None = None,
                          cfg: GraphFeatureSettings = GraphFeatureSettings(), store: Any = None,
                          timings: dict[str, Any] | None = None) -> pd.DataFrame:
    """Point-in-time graph features per (day, member), through the shared graph path.

    Parameters
    ----------
    close : adjusted closes, rows = trading days (ascending, tz-naive dates), columns = instruments
        (``SH600000``, also their graph-store symbols); NaN where no bar.
    members : same shape, True where the instrument is an index member that day (``None``: all).
    cfg : window, stride, pruning, momentum horizon (trading days).
    store : an open :class:`~graphwiz_trader.graph.store.GraphStore`; ``None``: one is opened from the
        ``NEO4J_*`` environment (the embedded server without ``NEO4J_URI``).
    timings : filled with the stages' seconds (build, write, read, features).

    Returns
    -------
    DataFrame indexed (datetime, instrument), float32 columns :func:`graph_feature_columns`. The snapshots are
    built by :func:`graphwiz_trader.graph.pipeline.build_panel_graph` (a node only when a member on the
    snapshot day), written to the graph store under their build id and read back; the features are
    :func:`graphwiz_trader.features.graph_features.graph_features` of what was read (the snapshot metrics,
    ``G_nbr_mom_<mom_days>`` and its gap). An instrument has rows only on days it is a member. A build the store
    already holds (same id: same spec, closes and membership) is read back without building it again.
    """
    from graphwiz_trader.features.graph_pipeline import graph_features_for_panel

    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise DataError("graph_features_csi300: close index must be ascending and unique")
    if members is not None and (not members.index.equals(close.index) or not members.columns.equals(close.columns)):
        raise DataError("graph_features_csi300: members must have the same index and columns as close")
    codes = [str(c) for c in close.columns]
    utc = pd.DatetimeIndex(close.index).tz_localize("UTC")
    panel = pd.DataFrame(close.to_numpy(dtype=np.float64), index=utc, columns=codes)
    mask = None if members is None else pd.DataFrame(members.to_numpy(dtype=bool), index=utc, columns=codes)
    feats = graph_features_for_panel(panel, graph_build_settings(cfg), mask, store=store,
                                     horizons=(cfg.mom_days,), gaps=True, timings=timings, reuse=True)
    out = feats[list(graph_feature_columns(cfg))].astype(np.float32)
    out.index = out.index.set_names(["datetime", "instrument"])
    return out.sort_index()


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
    members = membership_mask({str(c).upper(): [(pd.Timestamp(x), pd.Timestamp(y)) for x, y in sp]
                               for c, sp in spans.items()}, close.index, list(close.columns))
    members.columns = close.columns
    return close, members


