"""The CSI300 reproduction's data side: the data audit and the point-in-time correlation-graph features
(see :mod:`graphwiz_trader.research.reproduce_csi300`)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError
from graphwiz_trader.research.csi300_setup import CSI300ReproductionSettings, GraphFeatureSettings, PUBLISHED_EXCHANGE_KWARGS

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

    Every value on day t uses closes up to t only. Rows: nodes of the snapshot, on the days t it covers when
    they are members on day t (an instrument has no row outside its membership).
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
        block = pd.DataFrame({
            "G_WDEG": np.tile(wdeg, nd), "G_KRHO": np.tile(krho, nd), "G_MKTRHO": np.tile(mkt, nd),
            "G_NMOM": nmom.ravel(), "G_NMOM_GAP": gap.ravel(),
        }, index=idx, dtype=np.float32)
        # a node that leaves the index before the next snapshot has no row once it is out
        blocks.append(block[mem[days][:, nodes].ravel()])
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


