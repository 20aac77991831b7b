"""Shared pieces of the graph feature families: the bar context and the community helpers.

See :mod:`graphwiz_trader.features.graph_families` for the families and their formulas. Everything
here is indexed by the close panel's rows (UTC bar times ``t``) and its sorted symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError
from graphwiz_trader.features.graph_features import SnapshotMetrics, _latest_index, _segments


@dataclass(frozen=True)
class BarContext:
    """The close panel's bars lined up with the snapshots.

    Attributes
    ----------
    times
        ``(T,)`` UTC bar times (ns).
    symbols
        ``(N,)`` sorted symbols (the panel's columns, the metrics' order).
    logp
        ``(T, N)`` log closes (NaN where no close).
    r1
        ``(T, N)`` one-bar log returns ``logp[t] - logp[t-1]`` (NaN in row 0 and where either close is missing).
    snap_idx
        ``(T,)`` index of the latest snapshot with ``as_of <= t`` (-1 before the first).
    segments
        Runs of bars sharing a snapshot: ``(k, first row, end row exclusive)``, ``k >= 0``.
    in_snap
        ``(T, N)``: asset is a node of the snapshot current at t.
    """

    times: pd.DatetimeIndex
    symbols: tuple[str, ...]
    logp: np.ndarray
    r1: np.ndarray
    snap_idx: np.ndarray
    segments: list[tuple[int, int, int]]
    in_snap: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.logp.shape  # type: ignore[return-value]

    def by_snapshot(self, per_snapshot: np.ndarray) -> np.ndarray:
        """Broadcast ``(S, N)`` (or ``(S,)``) per-snapshot values to bars (NaN before the first snapshot)."""
        t_count, n = self.shape
        shape = (t_count, n) if per_snapshot.ndim == 2 else (t_count,)
        if len(per_snapshot) == 0:
            return np.full(shape, np.nan)
        has = self.snap_idx >= 0
        vals = per_snapshot[np.maximum(self.snap_idx, 0)]
        mask = has[:, None] if per_snapshot.ndim == 2 else has
        return np.where(mask, vals, np.nan)


def bar_context(metrics: SnapshotMetrics, panel: pd.DataFrame) -> BarContext:
    """Line the panel's bars up with the snapshots of ``metrics`` (same symbols, sorted)."""
    syms = tuple(str(c) for c in panel.columns)
    if metrics.symbols != syms:
        raise DataError("the snapshot metrics were computed for other symbols than the panel's columns "
                        f"({len(metrics.symbols)} vs {len(syms)} symbols); pass snapshot_metrics(snapshots, "
                        "panel.columns)")
    times = pd.DatetimeIndex(panel.index).as_unit("ns")
    values = panel.to_numpy(dtype=np.float64)
    logp = np.log(values)
    r1 = np.full_like(logp, np.nan)
    r1[1:] = logp[1:] - logp[:-1]
    t_count, n = logp.shape
    if len(metrics.as_of):
        snap_idx = _latest_index(metrics.as_of.asi8, times.asi8)
        in_snap = np.where((snap_idx >= 0)[:, None], metrics.in_snapshot[np.maximum(snap_idx, 0)], False)
    else:
        snap_idx = np.full(t_count, -1, dtype=np.int64)
        in_snap = np.zeros((t_count, n), dtype=bool)
    return BarContext(times=times, symbols=syms, logp=logp, r1=r1, snap_idx=snap_idx,
                      segments=_segments(snap_idx), in_snap=in_snap)


def community_onehot(comm_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, label)`` of one snapshot's community ids: ``H`` is ``(N, K)`` with ``H[i, c] = 1`` when asset i is in
    the c-th community (rows of assets without a community are 0); ``label`` is ``(N,)`` with -1 for those."""
    ok = ~np.isnan(comm_id)
    uniq, inv = np.unique(comm_id[ok], return_inverse=True)
    label = np.full(len(comm_id), -1, dtype=np.int64)
    label[ok] = inv
    h = np.zeros((len(comm_id), len(uniq)))
    h[np.flatnonzero(ok), inv] = 1.0
    return h, label


def community_other_mean(filled: np.ndarray, valid: np.ndarray, h: np.ndarray,
                         label: np.ndarray) -> np.ndarray:
    """Mean over the OTHER members of each asset's community, of values defined there.

    Parameters
    ----------
    filled, valid
        ``(M, N)`` values (0 where undefined) and their definedness.
    h, label
        From :func:`community_onehot`.

    Returns
    -------
    ndarray
        ``(M, N)``: ``sum_{j in C(i), j != i, valid} x_j / count``; NaN when there is no such j or i has no
        community.
    """
    m, n = filled.shape
    if h.shape[1] == 0:
        return np.full((m, n), np.nan)
    v = valid.astype(np.float64)
    sums = filled @ h                                   # (M, K)
    counts = v @ h
    lab = np.maximum(label, 0)
    has = label >= 0
    num = sums[:, lab] - np.where(has, filled, 0.0)
    den = counts[:, lab] - np.where(has, v, 0.0)
    ok = has[None, :] & (den > 0.5)
    return np.divide(num, den, out=np.full((m, n), np.nan), where=ok)
