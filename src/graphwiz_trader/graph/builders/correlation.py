"""Rolling Pearson and Spearman correlation of log returns, vectorised across windows, and edge pruning.

Window ``k`` covers return rows ``ends[k] - window + 1 .. ends[k]`` (see :mod:`.panel`); its snapshot
``as_of`` is the time of row ``ends[k]``, so it uses bars ``<= as_of`` only.

Missing data (assets listed later, gaps) is handled pairwise:

- an asset takes part in a window when it has ``>= min_periods`` valid returns there;
- the correlation of a pair uses the rows where both returns are valid (pairwise complete
  observations), and is NaN when there are fewer than ``min_periods`` of them or either side is
  constant on them.

Pearson (``rho = cov / (sd_x sd_y)`` on the overlap) is computed for a chunk of windows at once with
batched matrix products of the zero-filled returns and their validity masks (``n_ij = M^T M``,
``sum x_i = X^T M``, ``sum x_i^2 = (X^2)^T M``, ``sum x_i x_j = X^T X``); every window is centred on
its per-asset mean first, which changes no correlation and keeps the sums well conditioned.
Spearman is Pearson on average ranks (ties share the mean rank, as in ``scipy.stats.spearmanr``).
Ranks are taken per asset over its own valid rows in the window; that is exact for every pair whose
two assets have the same missing rows (in practice: both complete). Pairs whose validity masks differ
are recomputed on their overlap with ranks taken on that overlap, as ``spearmanr`` on the
pairwise-complete rows would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from graphwiz_trader.errors import ConfigError
from graphwiz_trader.graph.snapshot import EDGE_COLUMNS

METHODS: tuple[str, ...] = ("pearson", "spearman")


def window_stack(returns: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Windows of a ``T x N`` return array as a contiguous ``(len(ends), N, window)`` array.

    Row ``k`` holds returns rows ``ends[k] - window + 1 .. ends[k]`` (time on the last axis).
    """
    view = sliding_window_view(returns, window, axis=0)  # (T - window + 1, N, window)
    return np.ascontiguousarray(view[np.asarray(ends) - window + 1])


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) along the last axis; NaN stays NaN.

    Valid values are ranked among themselves only (NaNs sort last and are given NaN), which is
    ``scipy.stats.rankdata(x, axis=-1, nan_policy="omit")``, vectorised for speed.
    """
    w = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, axis=-1)
    pos = np.broadcast_to(np.arange(w, dtype=np.float64), s.shape)
    new = np.ones(s.shape, dtype=bool)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    first = np.maximum.accumulate(np.where(new, pos, 0.0), axis=-1)
    end = np.ones(s.shape, dtype=bool)
    end[..., :-1] = new[..., 1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, float(w)), axis=-1), axis=-1), axis=-1)
    avg = (first + last) / 2.0 + 1.0
    ranks = np.empty_like(avg)
    np.put_along_axis(ranks, order, avg, axis=-1)
    ranks[np.isnan(x)] = np.nan
    return ranks


def _centred(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Zero-filled values minus each row's mean over its valid entries (last axis); 0 where invalid."""
    cnt = m.sum(axis=-1, keepdims=True)
    az = np.where(m, a, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(cnt > 0, az.sum(axis=-1, keepdims=True) / np.maximum(cnt, 1.0), 0.0)
    return np.where(m, az - mu, 0.0)


def _sums_corr(n: np.ndarray, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, syy: np.ndarray,
               sxy: np.ndarray, min_periods: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.maximum(n, 1.0)
        cov = sxy - sx * sy / nn
        vx = sxx - sx * sx / nn
        vy = syy - sy * sy / nn
        rho = cov / np.sqrt(vx * vy)
    bad = (n < min_periods) | ~(vx > 0) | ~(vy > 0) | ~np.isfinite(rho)
    return np.clip(np.where(bad, np.nan, rho), -1.0, 1.0)


def _corr_complete(xa: np.ndarray, xb: np.ndarray, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlation block of centred series without missing values (one product per window)."""
    w = xa.shape[-1]
    sxy = np.matmul(xa, xb.transpose(0, 2, 1))
    n = np.full(sxy.shape, float(w))
    sx = xa.sum(axis=-1)[:, :, None]
    sy = xb.sum(axis=-1)[:, None, :]
    sxx = (xa * xa).sum(axis=-1)[:, :, None]
    syy = (xb * xb).sum(axis=-1)[:, None, :]
    return _sums_corr(n, sx, sy, sxx, syy, sxy, min_periods), n


def _corr_masked(xa: np.ndarray, fa: np.ndarray, xb: np.ndarray, fb: np.ndarray,
                 min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlation block of centred, zero-filled series with validity masks ``fa``, ``fb`` (0/1 floats)."""
    xbt = xb.transpose(0, 2, 1)
    fbt = fb.transpose(0, 2, 1)
    n = np.matmul(fa, fbt)
    sx = np.matmul(xa, fbt)
    sxx = np.matmul(xa * xa, fbt)
    sy = np.matmul(fa, xbt)
    syy = np.matmul(fa, (xb * xb).transpose(0, 2, 1))
    sxy = np.matmul(xa, xbt)
    return _sums_corr(n, sx, sy, sxx, syy, sxy, min_periods), n


def masked_corr(a: np.ndarray, b: np.ndarray | None, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-complete Pearson correlation of batches of series.

    Parameters
    ----------
    a, b
        ``(C, N, w)`` arrays (NaN = missing), time on the last axis. ``b=None`` means ``b = a``
        (contemporaneous, symmetric result).
    min_periods
        Minimum overlapping observations for a finite correlation.

    Returns
    -------
    rho, nobs
        ``(C, N, N)``: ``rho[c, i, j] = corr(a[c, i], b[c, j])`` on the rows where both are valid,
        and the number of such rows.

    Notes
    -----
    Columns are split per chunk into complete ones (no NaN in any window of the chunk), partial ones
    and empty ones (all NaN: no correlation). Complete x complete blocks need one product per window;
    blocks that involve a partial column use the masked sums.
    """
    sym = b is None
    ma = ~np.isnan(a)
    xa = _centred(a, ma)
    if sym:
        mb, xb = ma, xa
    else:
        assert b is not None
        mb = ~np.isnan(b)
        xb = _centred(b, mb)
    c, na, _ = a.shape
    nb = na if sym else b.shape[1]  # type: ignore[union-attr]
    rho = np.full((c, na, nb), np.nan)
    nobs = np.zeros((c, na, nb))
    comp_a = ma.all(axis=(0, 2))
    live_a = ma.any(axis=(0, 2))
    comp_b = mb.all(axis=(0, 2))
    live_b = mb.any(axis=(0, 2))
    ca, cb = np.flatnonzero(comp_a), np.flatnonzero(comp_b)
    pa, pb = np.flatnonzero(live_a & ~comp_a), np.flatnonzero(live_b & ~comp_b)
    la, lb = np.flatnonzero(live_a), np.flatnonzero(live_b)
    if len(ca) and len(cb):
        r, n = _corr_complete(xa[:, ca], xb[:, cb], min_periods)
        rho[:, ca[:, None], cb[None, :]] = r
        nobs[:, ca[:, None], cb[None, :]] = n
    if len(pa) and len(lb):
        r, n = _corr_masked(xa[:, pa], ma[:, pa].astype(np.float64), xb[:, lb], mb[:, lb].astype(np.float64),
                            min_periods)
        rho[:, pa[:, None], lb[None, :]] = r
        nobs[:, pa[:, None], lb[None, :]] = n
    if len(pb) and len(la):
        if sym:
            rho[:, la[:, None], pb[None, :]] = rho[:, pb[:, None], la[None, :]].transpose(0, 2, 1)
            nobs[:, la[:, None], pb[None, :]] = nobs[:, pb[:, None], la[None, :]].transpose(0, 2, 1)
        else:
            r, n = _corr_masked(xa[:, la], ma[:, la].astype(np.float64), xb[:, pb], mb[:, pb].astype(np.float64),
                                min_periods)
            rho[:, la[:, None], pb[None, :]] = r
            nobs[:, la[:, None], pb[None, :]] = n
    return rho, nobs


def _spearman_fix(raw: np.ndarray, rho: np.ndarray, eligible: np.ndarray, min_periods: int) -> None:
    """Recompute, in place, Spearman rho for pairs whose validity masks differ within one window.

    ``raw`` is the window's ``(N, w)`` returns, ``rho`` its ``N x N`` matrix, ``eligible`` the assets
    in the snapshot.
    """
    valid = ~np.isnan(raw)
    idx = np.flatnonzero(eligible)
    if len(idx) < 2:
        return
    keys = np.packbits(valid[idx], axis=1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = np.asarray(group).ravel()
    if group.max() == 0:
        return
    members = [idx[group == g] for g in range(group.max() + 1)]
    for g in range(len(members)):
        for h in range(g + 1, len(members)):
            cols_g, cols_h = members[g], members[h]
            both = valid[cols_g[0]] & valid[cols_h[0]]
            k = int(both.sum())
            if k < min_periods:
                rho[np.ix_(cols_g, cols_h)] = np.nan
                rho[np.ix_(cols_h, cols_g)] = np.nan
                continue
            rg = average_ranks(raw[cols_g][:, both])
            rh = average_ranks(raw[cols_h][:, both])
            r, _ = masked_corr(rg[None], rh[None], min_periods)
            rho[np.ix_(cols_g, cols_h)] = r[0]
            rho[np.ix_(cols_h, cols_g)] = r[0].T


def correlation_chunk(stack: np.ndarray, method: str, min_periods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlation matrices of a chunk of windows.

    Parameters
    ----------
    stack
        ``(C, N, window)`` log returns (from :func:`window_stack`).
    method
        ``pearson`` or ``spearman``.
    min_periods
        An asset is eligible with at least this many valid returns; a pair needs this many overlapping.

    Returns
    -------
    rho, nobs, eligible
        ``(C, N, N)`` correlations (diagonal NaN, NaN where undefined or an asset is not eligible),
        overlap counts, and ``(C, N)`` eligibility.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown correlation method {method!r}; expected one of {', '.join(METHODS)}")
    counts = (~np.isnan(stack)).sum(axis=-1)
    eligible = counts >= min_periods
    if method == "pearson":
        rho, nobs = masked_corr(stack, None, min_periods)
    else:
        ranks = average_ranks(stack)
        rho, nobs = masked_corr(ranks, None, min_periods)
        partial = (counts > 0) & (counts < stack.shape[-1]) & eligible
        for c in np.flatnonzero(partial.any(axis=1)):
            _spearman_fix(stack[c], rho[c], eligible[c], min_periods)
    off = ~(eligible[:, :, None] & eligible[:, None, :])
    rho[off] = np.nan
    diag = np.arange(stack.shape[1])
    rho[:, diag, diag] = np.nan
    return rho, nobs, eligible


def prune_edges(rho: np.ndarray, symbols: list[str] | tuple[str, ...], min_abs_rho: float = 0.0,
                top_k: int | None = None) -> pd.DataFrame:
    """Undirected edges of one correlation matrix after pruning.

    An edge ``(i, j)`` with finite rho is kept when ``|rho| >= min_abs_rho`` and, if ``top_k`` is set,
    it is among the ``top_k`` largest ``|rho|`` of node i or of node j (the union of both nodes'
    k-nearest lists; ties broken by the other node's symbol, ascending).

    Parameters
    ----------
    rho
        ``N x N`` symmetric matrix (NaN = no correlation).
    symbols
        Column order of ``rho``, sorted ascending (so ``src < dst`` for the upper triangle).

    Returns
    -------
    DataFrame
        ``src, dst, rho`` with ``src < dst``, sorted by ``src, dst``.
    """
    n = len(symbols)
    a = np.abs(rho)
    finite = np.isfinite(a)
    keep = finite & (a >= min_abs_rho)
    if top_k is not None:
        score = np.where(finite, a, -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")[:, :top_k]
        knn = np.zeros((n, n), dtype=bool)
        np.put_along_axis(knn, order, True, axis=1)
        knn &= finite
        keep &= knn | knn.T
    iu, ju = np.nonzero(np.triu(keep, k=1))
    sym = np.asarray(symbols, dtype=object)
    # a dict in EDGE_COLUMNS order (passing columns= makes pandas reindex, 5x slower)
    return pd.DataFrame(dict(zip(EDGE_COLUMNS, (sym[iu], sym[ju], rho[iu, ju].astype(np.float64)))), copy=False)
