"""Lead-lag (``L_``) and structure-dynamics (``D_``) graph feature families.

Formulas and NaN rules are in :mod:`graphwiz_trader.features.graph_families`. Each function returns
``{column: (T, N) array}`` aligned with the :class:`~.graph_families_base.BarContext`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError
from graphwiz_trader.features.graph_families_base import BarContext, community_onehot
from graphwiz_trader.features.graph_features import SnapshotMetrics, _latest_index, _regime_columns
from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE

# |rho| is clipped below 1 before atanh so that a (degenerate) perfect lagged correlation stays finite
RHO_CLIP = 1.0 - 1e-12


def lead_significance(rho: np.ndarray, lag: np.ndarray | int, window: int) -> np.ndarray:
    """``z = atanh(|rho|) sqrt(window - lag - 3)`` of lead edges (arrays of their ``rho`` and ``lag``)."""
    dof = window - np.asarray(lag) - 3
    if np.any(dof <= 0):
        raise DataError(f"lead edge with lag {int(np.max(lag))} bars needs a correlation window longer than lag + 3 "
                        f"bars; got window={window}")
    return np.arctanh(np.minimum(np.abs(rho), RHO_CLIP)) * np.sqrt(dof)


def leadlag_columns(ctx: BarContext, metrics: SnapshotMetrics, window: int) -> dict[str, np.ndarray]:
    """``L_lead_ret``, ``L_lead_ret_raw``, ``L_n_leaders``, ``L_lead_z`` (leaders' returns known at t).

    Lead edges are few: per snapshot and lag they become a sparse ``(N, N)`` matrix ``[i, j] = z_ji`` (and one
    signed by ``rho_ji``), so each segment costs a sparse-dense product per lag.
    """
    from scipy.sparse import csr_array

    t_count, n = ctx.shape
    valid = ~np.isnan(ctx.r1)
    filled = np.where(valid, ctx.r1, 0.0)
    ret = np.full((t_count, n), np.nan)
    raw = np.full((t_count, n), np.nan)
    s_count = len(metrics.as_of)
    n_lead = np.zeros((s_count, n))
    z_sum = np.zeros((s_count, n))
    sparse: list[list[tuple[int, csr_array, csr_array]]] = []
    for k in range(s_count):
        per_lag = []
        for lag, w in sorted(metrics.leads[k].items()):
            dst, src = np.nonzero(w)
            rho = w[dst, src]
            z = lead_significance(rho, lag, window)
            n_lead[k] += np.bincount(dst, minlength=n)
            z_sum[k] += np.bincount(dst, weights=z, minlength=n)
            per_lag.append((lag, csr_array((np.sign(rho) * z, (dst, src)), shape=(n, n)),
                            csr_array((z, (dst, src)), shape=(n, n))))
        sparse.append(per_lag)
    for k, a, b in ctx.segments:
        num = np.zeros((b - a, n))
        den = np.zeros((b - a, n))
        for lag, signed, z in sparse[k]:
            rows = np.arange(a, b) - (lag - 1)               # r_j(t + 1 - lag), known at t since lag >= 1
            ok = rows >= 0
            src_f = np.zeros((b - a, n))
            src_v = np.zeros((b - a, n))
            src_f[ok] = filled[rows[ok]]
            src_v[ok] = valid[rows[ok]]
            num += (signed @ src_f.T).T
            den += (z @ src_v.T).T
        ret[a:b] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        raw[a:b] = num
    inside = ctx.in_snap
    return {"L_lead_ret": np.where(inside, ret, np.nan), "L_lead_ret_raw": np.where(inside, raw, np.nan),
            "L_n_leaders": np.where(inside, ctx.by_snapshot(n_lead), np.nan),
            "L_lead_z": np.where(inside, ctx.by_snapshot(z_sum), np.nan)}


def _lagged(v: np.ndarray, lag: int) -> np.ndarray:
    """``v[k - lag]`` along axis 0 (NaN for ``k < lag``)."""
    out = np.full(v.shape, np.nan)
    if lag < len(v):
        out[lag:] = v[:len(v) - lag]
    return out


def community_switch(comm: np.ndarray, lag: int) -> np.ndarray:
    """``(S, N)``: ``1 - |C_k(i) & C_{k-lag}(i)| / |C_k(i) | C_{k-lag}(i)|`` (community member sets, i included);
    NaN when i has no community in either snapshot or ``k < lag``."""
    s_count, n = comm.shape
    out = np.full((s_count, n), np.nan)
    for k in range(lag, s_count):
        _, now = community_onehot(comm[k])
        _, before = community_onehot(comm[k - lag])
        both = (now >= 0) & (before >= 0)
        size_now = np.bincount(now[now >= 0], minlength=n)
        size_before = np.bincount(before[before >= 0], minlength=n)
        # |C_now(i) & C_before(i)|: assets sharing i's label in both snapshots (a contingency table cell)
        width = int(before.max(initial=-1)) + 1
        pair = np.where(both, now * width + before, -1)
        cells = np.bincount(pair[pair >= 0], minlength=max(1, (int(now.max(initial=-1)) + 1) * width))
        inter = np.where(both, cells[np.maximum(pair, 0)], 0)
        union = size_now[np.maximum(now, 0)] + size_before[np.maximum(before, 0)] - inter
        out[k] = np.where(both, 1.0 - inter / np.maximum(union, 1), np.nan)
    return out


def regime_switch_probability(regimes: pd.DataFrame | None, times: pd.DatetimeIndex) -> np.ndarray:
    """``(T,)`` empirical switch probability of the market regime current at t, from records ``<= t``:
    (exits from that regime observed by t) / (records in it up to t). NaN before the first record."""
    t_count = len(times)
    if regimes is None or regimes.empty:
        return np.full(t_count, np.nan)
    mkt = regimes[regimes["scope"] == MARKET_SCOPE].sort_values("datetime", kind="stable")
    if mkt.empty:
        return np.full(t_count, np.nan)
    keys = pd.DatetimeIndex(mkt["datetime"]).tz_convert("UTC").as_unit("ns").asi8
    lab = mkt["regime"].to_numpy()
    _, code = np.unique(lab, return_inverse=True)
    rec = len(code)
    p = np.full(rec, np.nan)
    exit_flag = np.zeros(rec, dtype=bool)
    exit_flag[:-1] = code[1:] != code[:-1]                    # record s is the last of its run
    for c in np.unique(code):
        in_c = code == c
        records = np.cumsum(in_c)
        exits_by = np.concatenate([[0], np.cumsum(exit_flag & in_c)[:-1]])   # exits seen by record s: s' < s
        p[in_c] = exits_by[in_c] / records[in_c]
    li = _latest_index(keys, times.as_unit("ns").asi8)
    return np.where(li >= 0, p[np.maximum(li, 0)], np.nan)


def dynamics_columns(ctx: BarContext, metrics: SnapshotMetrics, regimes: pd.DataFrame | None,
                     regime_names: tuple[str, ...], lag: int, breakdown: int) -> dict[str, np.ndarray]:
    """``D_eig_chg, D_wdeg_chg, D_comm_switch, D_mean_corr, D_mean_corr_chg, D_own_corr_chg, D_regime_age,
    D_regime_switch_p`` (see the family docstring)."""
    n = ctx.shape[1]
    vals = metrics.values
    eig, wdeg, comm = vals["G_eigvec"], vals["G_wdeg"], vals["G_comm_id"]
    s_count = len(metrics.as_of)
    deg = np.zeros((s_count, n))
    strength = np.zeros((s_count, n))
    for k in range(s_count):                                # per snapshot: no (S, N, N) temporaries
        absw = np.abs(metrics.rho[k])
        deg[k] = (absw > 0).sum(axis=1)
        strength[k] = absw.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(metrics.in_snapshot & (deg > 0), strength / deg, np.nan)
        n_edges = deg.sum(axis=1)                           # each edge twice, as is the strength sum
        mean_corr = np.where(n_edges > 0, strength.sum(axis=1) / n_edges, np.nan)
    base = np.full(s_count, np.nan)
    for k in range(breakdown, s_count):
        prev = mean_corr[k - breakdown:k]
        if (~np.isnan(prev)).any():
            base[k] = np.nanmean(prev)
    per_asset = {"D_eig_chg": eig - _lagged(eig, lag), "D_wdeg_chg": wdeg - _lagged(wdeg, lag),
                 "D_comm_switch": community_switch(comm, lag), "D_own_corr_chg": own - _lagged(own, lag)}
    out: dict[str, np.ndarray] = {}
    for c in ("D_eig_chg", "D_wdeg_chg", "D_comm_switch"):
        out[c] = np.where(ctx.in_snap, ctx.by_snapshot(per_asset[c]), np.nan)
    # market-wide: every asset on a bar with a snapshot gets the snapshot's value
    mc = ctx.by_snapshot(mean_corr)
    out["D_mean_corr"] = np.repeat(mc[:, None], n, axis=1)
    out["D_mean_corr_chg"] = np.repeat((mc - ctx.by_snapshot(base))[:, None], n, axis=1)
    out["D_own_corr_chg"] = np.where(ctx.in_snap, ctx.by_snapshot(per_asset["D_own_corr_chg"]), np.nan)
    reg = _regime_columns(regimes, ctx.times, ctx.symbols, regime_names)
    out["D_regime_age"] = reg["G_mkt_regime_age"]
    sp = regime_switch_probability(regimes, ctx.times)
    out["D_regime_switch_p"] = np.repeat(sp[:, None], n, axis=1)
    return out


def market_regime_onehot(regimes: pd.DataFrame | None, ctx: BarContext,
                         regime_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{name: (T, N)}`` indicator of the market regime current at t (NaN before the first record)."""
    reg = _regime_columns(regimes, ctx.times, ctx.symbols, regime_names)
    return {x: reg[f"G_mkt_regime_{x}"] for x in regime_names}
