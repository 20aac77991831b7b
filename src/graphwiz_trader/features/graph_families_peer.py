"""Peer (``P_``) and residual (``R_``) graph feature families: cross-sectional, per snapshot segment.

Formulas and NaN rules are in :mod:`graphwiz_trader.features.graph_families`. Each function returns
``{column: (T, N) array}`` aligned with the :class:`~.graph_families_base.BarContext`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from graphwiz_trader.features.graph_families_base import BarContext, community_onehot, community_other_mean
from graphwiz_trader.features.graph_features import SnapshotMetrics

# the community regressor is dropped when it is this collinear with the market mean (determinant of the
# centred 2x2 normal matrix below this fraction of the product of its diagonal)
COLLINEAR_TOL = 1e-10


def peer_columns(ctx: BarContext, metrics: SnapshotMetrics, xs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``P_nbr_<x>``, ``P_dev_<x>``, ``P_cdev_<x>`` for each ``(T, N)`` input ``x`` (one BLAS product per segment).

    ``P_nbr`` uses the signed correlations of the current snapshot's kept edges over the neighbours whose
    ``x`` is defined at t; ``P_cdev`` the other members of the asset's community with a defined ``x``.
    """
    names = list(xs)
    t_count, n = ctx.shape
    if not names:
        return {}
    f = len(names)
    x = np.stack([np.asarray(xs[c], dtype=np.float64) for c in names], axis=1)     # (T, F, N)
    valid = ~np.isnan(x)
    filled = np.where(valid, x, 0.0)
    nbr = np.full((t_count, f, n), np.nan)
    cmean = np.full((t_count, f, n), np.nan)
    comm = metrics.values["G_comm_id"]
    for k, a, b in ctx.segments:
        w = metrics.rho[k]
        fa = filled[a:b].reshape(-1, n)
        va = valid[a:b].reshape(-1, n).astype(np.float64)
        num = fa @ w.T
        den = va @ np.abs(w).T
        nbr[a:b] = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0).reshape(b - a, f, n)
        h, label = community_onehot(comm[k])
        cmean[a:b] = community_other_mean(fa, va, h, label).reshape(b - a, f, n)
    inside = ctx.in_snap[:, None, :]
    nbr = np.where(inside, nbr, np.nan)
    cmean = np.where(inside, cmean, np.nan)
    out: dict[str, np.ndarray] = {}
    for q, c in enumerate(names):
        out[f"P_nbr_{c}"] = nbr[:, q]
        out[f"P_dev_{c}"] = x[:, q] - nbr[:, q]
        out[f"P_cdev_{c}"] = x[:, q] - cmean[:, q]
    return out


def _factors(r: np.ndarray, in_k: np.ndarray, comm_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Market mean ``m`` (``(M,)``) and community factor ``c`` (``(M, N)``) of return rows ``r`` for one snapshot.

    ``m(t)``: mean of ``r_j(t)`` over the snapshot's assets with a return at t; ``c_i(t)``: mean over the
    other members of i's community with a return at t (NaN when none).
    """
    valid = ~np.isnan(r) & in_k[None, :]
    filled = np.where(valid, r, 0.0)
    cnt = valid.sum(axis=1)
    m = np.divide(filled.sum(axis=1), cnt, out=np.full(len(r), np.nan), where=cnt > 0)
    h, label = community_onehot(np.where(in_k, comm_k, np.nan))
    c = community_other_mean(filled, valid, h, label)
    return m, c


def community_usable(in_k: np.ndarray, comm_k: np.ndarray) -> np.ndarray:
    """``(N,)``: the community regressor is used for asset i in this snapshot (i has a community of >= 2 assets
    and some snapshot asset is outside it; otherwise ``c`` is undefined or an exact function of ``m`` and
    ``r_i``)."""
    ids = np.where(in_k, comm_k, np.nan)
    ok = ~np.isnan(ids)
    same = (ids[:, None] == ids[None, :]) & ok[:, None] & ok[None, :]
    size = same.sum(axis=1)
    return ok & (size >= 2) & (size < in_k.sum())


def fit_residual_betas(r: np.ndarray, in_k: np.ndarray, comm_k: np.ndarray) -> dict[str, np.ndarray]:
    """OLS ``r_i = a + b_m m + b_c c_i + e`` per asset on one snapshot window's return rows.

    Parameters
    ----------
    r
        ``(W, N)`` one-bar log returns of the window (rows ``<= as_of``).
    in_k, comm_k
        ``(N,)`` snapshot membership and community ids (NaN: none).

    Returns
    -------
    dict
        ``a, b_m, b_c, vol`` (``(N,)``; ``b_c = 0`` where the community regressor is not used; ``vol`` is the
        residual standard deviation with ``n - p`` degrees of freedom) and ``n`` observations used. NaN for
        assets outside the snapshot or with fewer than ``p + 2`` complete rows (``p`` = 2 or 3 parameters).
    """
    m, c = _factors(r, in_k, comm_k)
    use_c = community_usable(in_k, comm_k)
    fit = _ols(r, m, c, use_c, in_k)
    if (fit["collinear"]).any():            # refit those assets on the market alone
        fit = _ols(r, m, c, use_c & ~fit["collinear"], in_k)
    return fit


def _ols(r: np.ndarray, m: np.ndarray, c: np.ndarray, use_c: np.ndarray, in_k: np.ndarray) -> dict[str, np.ndarray]:
    """The fit of :func:`fit_residual_betas` for a given choice of regressors (centred normal equations)."""
    n = r.shape[1]
    mm = np.repeat(m[:, None], n, axis=1)
    c_use = np.where(use_c[None, :], c, 0.0)
    v = ~np.isnan(r) & ~np.isnan(mm) & ~np.isnan(c_use) & in_k[None, :]
    cnt = v.sum(axis=0).astype(np.float64)
    safe = np.maximum(cnt, 1.0)

    def mean(z: np.ndarray) -> np.ndarray:
        return np.where(v, z, 0.0).sum(axis=0) / safe

    y_bar, m_bar, c_bar = mean(r), mean(mm), mean(c_use)
    dy = np.where(v, r - y_bar, 0.0)
    d1 = np.where(v, mm - m_bar, 0.0)
    d2 = np.where(v, c_use - c_bar, 0.0)
    s11, s22, s12 = (d1 * d1).sum(0), (d2 * d2).sum(0), (d1 * d2).sum(0)
    s1y, s2y = (d1 * dy).sum(0), (d2 * dy).sum(0)
    det = s11 * s22 - s12 * s12
    collinear = use_c & ~(det > COLLINEAR_TOL * s11 * s22)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_m = np.where(use_c, (s22 * s1y - s12 * s2y) / det, s1y / s11)
        b_c = np.where(use_c, (s11 * s2y - s12 * s1y) / det, 0.0)
    a = y_bar - b_m * m_bar - b_c * c_bar
    p = np.where(use_c, 3.0, 2.0)
    ok = in_k & (cnt >= p + 2) & (s11 > 0)
    resid = np.where(v, r - a - b_m * mm - b_c * c_use, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = np.sqrt((resid * resid).sum(axis=0) / (cnt - p))
    nan = np.full(n, np.nan)
    return {"a": np.where(ok, a, nan), "b_m": np.where(ok, b_m, nan), "b_c": np.where(ok, b_c, nan),
            "vol": np.where(ok, vol, nan), "n": cnt, "use_c": use_c & ok, "collinear": collinear & ok}


def residual_panel(ctx: BarContext, metrics: SnapshotMetrics, window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(E, vol)``: residual returns per bar with the betas of the snapshot current at each bar, and the
    snapshot's residual volatility broadcast to bars (both ``(T, N)``, NaN outside the snapshot)."""
    t_count, n = ctx.shape
    s_count = len(metrics.as_of)
    comm = metrics.values["G_comm_id"]
    ends = np.searchsorted(ctx.times.asi8, metrics.as_of.asi8, side="right") - 1
    fits: list[dict[str, np.ndarray] | None] = []
    for k in range(s_count):
        e = int(ends[k])
        if e < 0:
            fits.append(None)
            continue
        rows = ctx.r1[max(0, e - window + 1): e + 1]
        fits.append(fit_residual_betas(rows, metrics.in_snapshot[k], comm[k]))
    resid = np.full((t_count, n), np.nan)
    vol_k = np.full((s_count, n), np.nan)
    for k, fit in enumerate(fits):
        if fit is not None:
            vol_k[k] = fit["vol"]
    for k, a, b in ctx.segments:
        fit = fits[k]
        if fit is None:
            continue
        r = ctx.r1[a:b]
        m, c = _factors(r, metrics.in_snapshot[k], comm[k])
        ce = np.where(fit["use_c"][None, :], fit["b_c"][None, :] * c, 0.0)
        resid[a:b] = r - fit["a"][None, :] - fit["b_m"][None, :] * m[:, None] - ce
    resid = np.where(ctx.in_snap, resid, np.nan)
    return resid, np.where(ctx.in_snap, ctx.by_snapshot(vol_k), np.nan)


def rolling_sum(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the defined values of ``x`` over rows ``t - length + 1 .. t`` and their count (``(T, N)`` each;
    rows before ``length - 1`` cover fewer rows)."""
    valid = ~np.isnan(x)
    cs = np.cumsum(np.where(valid, x, 0.0), axis=0)
    cc = np.cumsum(valid, axis=0)
    s, c = cs.copy(), cc.astype(np.float64)
    s[length:] -= cs[:-length]
    c[length:] -= cc[:-length]
    return s, c


def residual_columns(ctx: BarContext, metrics: SnapshotMetrics, window: int,
                     lookbacks: Sequence[int]) -> dict[str, np.ndarray]:
    """``R_mom_<L>``, ``R_vol``, ``R_z_<L>`` (see the family docstring)."""
    resid, vol = residual_panel(ctx, metrics, window)
    out: dict[str, np.ndarray] = {}
    zs: dict[str, np.ndarray] = {}
    for lb in lookbacks:
        s, c = rolling_sum(resid, lb)
        enough = (c >= (lb + 1) // 2) & ~np.isnan(resid)
        mom = np.where(enough, s, np.nan)
        out[f"R_mom_{lb}"] = mom
        with np.errstate(divide="ignore", invalid="ignore"):
            zs[f"R_z_{lb}"] = np.where(vol > 0, mom / (vol * np.sqrt(c)), np.nan)
    out["R_vol"] = vol
    out.update(zs)
    return out
