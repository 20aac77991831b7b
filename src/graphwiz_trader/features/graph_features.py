"""Graph features per (datetime, instrument), strictly point-in-time.

Inputs: correlation snapshots (:class:`~graphwiz_trader.graph.snapshot.GraphSnapshot`, as built or as
read back from the store), the regime-state frame (``scope, datetime, regime, prob``) and the bars
(for neighbour returns). At bar t the features use

- the latest snapshot with ``as_of <= t`` (call it S; each snapshot only uses bars ``<= as_of``),
- the latest regime record of each scope with ``datetime <= t``,
- closes at times ``<= t``.

Notation: ``A`` is S's assets, ``rho_ij`` the signed correlation of a kept edge (0 when pruned),
``w_ij = |rho_ij|``, ``C(i)`` i's Louvain community in S, ``p_j(t)`` = log close, ``r_j(t)`` = one-bar
log return ``p_j(t) - p_j(t-1)`` (rows of the bar panel), ``R_j^h(t) = p_j(t) - p_j(t-h)``.

Snapshot metrics (NaN when i is not in S or there is no snapshot yet), on the graph with nodes ``A``
and edge weights ``w_ij``:

- ``G_wdeg``        weighted degree ``sum_j w_ij``;
- ``G_eigvec``      eigenvector centrality: the unit-norm, non-negative principal eigenvector of
  ``[w_ij]`` (``networkx.eigenvector_centrality_numpy``), taken per connected component when pruning
  disconnects the graph (unit norm within each component); 0 for an asset without edges;
- ``G_pagerank``    PageRank with damping 0.85, transition probabilities ``w_ij / sum_k w_ik``
  (``networkx.pagerank``);
- ``G_clustering``  weighted clustering (Onnela et al.), the definition of ``networkx.clustering``:
  ``c_i = sum_{j,k} (v_ij v_jk v_ki)^(1/3) / (d_i (d_i - 1))`` with ``v = w / max(w)`` and ``d_i`` the
  number of neighbours (0 when ``d_i < 2``); computed as ``diag(V^3) / (d (d-1))`` with
  ``V = v^(1/3)``, vectorised (the tests assert equality with ``networkx.clustering``);
- ``G_comm_id``     Louvain community id (0 = largest, see the builders);
- ``G_comm_size``   ``|C(i)|`` (number of assets);
- ``G_comm_corr``   mean correlation to the rest of the community ``sum_{j in C(i), j != i} rho_ij /
  (|C(i)| - 1)`` (pruned pairs count as 0; NaN for a singleton).

Bar-level features:

- ``G_nbr_mom_h`` for h in 1, 6, 24: correlation-weighted momentum of the neighbours,
  ``sum_j rho_ij R_j^h(t) / sum_j |rho_ij|`` over i's edges in S whose ``R_j^h(t)`` is defined (NaN
  when none);
- ``G_nbr_mom_gap_h`` (with ``gaps=True``): the asset's own ``R_i^h(t)`` minus ``G_nbr_mom_h`` (how far
  it ran ahead of its neighbours; NaN when either is);
- ``G_leadlag``     lead-lag signal for the next bar: over the assets j that LEAD i in S (edge
  ``j -> i`` with lag ``L_j`` and correlation ``rho_ji``),
  ``sum_j rho_ji r_j(t + 1 - L_j) / sum_j |rho_ji|`` (returns known at t since ``L_j >= 1``); 0 when i
  is in S and has no leader with a defined return, NaN when i is not in S;
- ``G_mkt_regime_<name>`` one-hot of the market regime (one column per name, e.g. low_vol, mid_vol,
  high_vol), ``G_mkt_regime_prob`` its filtered probability;
- ``G_mkt_regime_age`` bars since the market regime last changed (0 on the bar of the change; runs
  are counted from the first market record);
- ``G_asset_regime`` the asset's regime code (0 = low_vol, 1 = high_vol) and ``G_asset_regime_prob``.

Output: a float64 frame indexed by ``(datetime, instrument)`` (``instrument`` = Qlib code such as
``BTCUSDT``), one row per bar time and asset with a close there, sorted by datetime then instrument.
With a point-in-time universe (``members``, e.g. index membership), an asset has rows only on the bars
where it is a member (and its snapshots only hold it when it was a member on their ``as_of``, see
:func:`~graphwiz_trader.graph.builders.build_snapshots`).
Snapshot metrics are computed once per snapshot and broadcast to bars with array indexing; the only
per-snapshot loops are small matrix products.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphwiz_trader.core.progress import progress as progress_bar
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import DataError, UnknownSymbolError
from graphwiz_trader.graph.builders.panel import BarsOrPanel, close_panel, members_at
from graphwiz_trader.graph.builders.regimes import ASSET_REGIMES, MARKET_SCOPE, market_regime_names
from graphwiz_trader.graph.snapshot import REGIME_COLUMNS, GraphSnapshot

log = logging.getLogger(__name__)

SNAPSHOT_METRICS: tuple[str, ...] = ("G_wdeg", "G_eigvec", "G_pagerank", "G_clustering", "G_comm_id",
                                     "G_comm_size", "G_comm_corr")
MOMENTUM_HORIZONS: tuple[int, ...] = (1, 6, 24)


def feature_names(regime_names: Sequence[str] = market_regime_names(3),
                  horizons: Sequence[int] = MOMENTUM_HORIZONS, gaps: bool = False) -> list[str]:
    """Column names of :func:`graph_features`, in order (``gaps``: with the ``G_nbr_mom_gap_h`` columns)."""
    mom = [c for h in horizons for c in ([f"G_nbr_mom_{h}"] + ([f"G_nbr_mom_gap_{h}"] if gaps else []))]
    return (list(SNAPSHOT_METRICS) + mom + ["G_leadlag"]
            + [f"G_mkt_regime_{n}" for n in regime_names]
            + ["G_mkt_regime_prob", "G_mkt_regime_age", "G_asset_regime", "G_asset_regime_prob"])


# ------------------------------------------------------------------------------------- snapshot metrics

@dataclass(frozen=True)
class SnapshotMetrics:
    """Per-snapshot metrics for a fixed symbol order, plus the matrices the bar features need.

    Attributes
    ----------
    as_of
        ``(S,)`` snapshot times (UTC), ascending.
    symbols
        Column order (sorted symbols).
    values
        ``{metric: (S, N) array}`` for :data:`SNAPSHOT_METRICS` (NaN where the asset is not in S).
    in_snapshot
        ``(S, N)`` membership.
    rho
        ``(S, N, N)`` signed correlation of kept edges (0 elsewhere).
    leads
        Per snapshot, ``{lag: (N, N) array W}`` with ``W[i, j] = rho`` of the lead edge ``j -> i``.
    """

    as_of: pd.DatetimeIndex
    symbols: tuple[str, ...]
    values: dict[str, np.ndarray]
    in_snapshot: np.ndarray
    rho: np.ndarray
    leads: tuple[dict[int, np.ndarray], ...]


def weighted_clustering(w: np.ndarray) -> np.ndarray:
    """``networkx.clustering(G, weight=...)`` of the graph with weight matrix ``w`` (0 = no edge), vectorised.

    Parameters
    ----------
    w
        ``(..., N, N)`` symmetric non-negative weights with a zero diagonal.
    """
    adj = w > 0
    deg = adj.sum(axis=-1).astype(np.float64)
    mx = w.max(axis=(-2, -1), keepdims=True)
    v = np.cbrt(np.divide(w, mx, out=np.zeros_like(w), where=mx > 0))
    tri = np.einsum("...ij,...ji->...i", np.matmul(v, v), v)   # diag(v^3), one BLAS product
    denom = deg * (deg - 1.0)
    return np.divide(tri, denom, out=np.zeros_like(tri), where=denom > 0)


def pagerank_dense(w: np.ndarray, alpha: float = 0.85, tol: float = 1e-10, max_iter: int = 1000) -> np.ndarray:
    """``networkx.pagerank(G, alpha, weight=...)`` of the graph with weight matrix ``w``, on dense arrays.

    The same power iteration as networkx: transition probabilities ``w_ij / sum_k w_ik``, dangling nodes (no
    edge) jump uniformly, teleport ``1 - alpha`` uniformly, start uniform, stop when the L1 change is below
    ``N * tol``.

    Raises
    ------
    DataError
        when it does not converge in ``max_iter`` iterations.
    """
    n = len(w)
    out = w.sum(axis=1)
    a = np.divide(w, out[:, None], out=np.zeros_like(w), where=out[:, None] != 0)
    dangling = out == 0
    p = np.full(n, 1.0 / n)
    x = p.copy()
    for _ in range(max_iter):
        last = x
        x = alpha * (x @ a + x[dangling].sum() * p) + (1.0 - alpha) * p
        if np.abs(x - last).sum() < n * tol:
            return x
    raise DataError(f"PageRank did not converge in {max_iter} iterations on a {n}-node snapshot")


def _components(adj: np.ndarray) -> list[np.ndarray]:
    """Connected components (sorted node positions) of a symmetric boolean adjacency matrix."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import connected_components

    k, labels = connected_components(csr_array(adj), directed=False)
    return [np.flatnonzero(labels == c) for c in range(k)]


def _graph_metrics(absw: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvector centrality and PageRank on the members' sub-graph of ``absw`` (networkx's definitions:
    ``eigenvector_centrality_numpy`` per connected component and ``pagerank``, computed with numpy)."""
    idx = np.flatnonzero(members)
    n = len(absw)
    eig = np.full(n, np.nan)
    pr = np.full(n, np.nan)
    if len(idx) == 0:
        return eig, pr
    sub = absw[np.ix_(idx, idx)]
    pr[idx] = pagerank_dense(sub)
    eig[idx] = 0.0
    # A pruned snapshot can be disconnected, where the principal eigenvector is not unique: take it per
    # connected component (unit norm within each component, the sign making it non-negative); isolated
    # assets keep 0.
    for nodes in _components(sub > 0):
        if len(nodes) == 1:
            continue
        if len(nodes) == 2:
            vals = np.full(2, 1.0 / np.sqrt(2.0))  # two linked nodes: the principal eigenvector is uniform
        else:
            _, vecs = np.linalg.eigh(sub[np.ix_(nodes, nodes)])
            vals = vecs[:, -1]
            vals = vals * (np.sign(vals.sum()) / np.linalg.norm(vals))
        eig[idx[nodes]] = vals
    return eig, pr


def snapshot_metrics(snapshots: Sequence[GraphSnapshot], symbols: Sequence[str],
                     progress: bool = False) -> SnapshotMetrics:
    """Compute the per-snapshot metrics once (see the module docstring).

    Raises
    ------
    DataError
        when snapshots are not strictly increasing in ``as_of``.
    UnknownSymbolError
        when a snapshot holds symbols that are not in ``symbols`` (not in the bars).
    """
    syms = tuple(sorted(symbols))
    col = {s: k for k, s in enumerate(syms)}
    n, s_count = len(syms), len(snapshots)
    as_of = pd.DatetimeIndex([pd.Timestamp(s.as_of) for s in snapshots])
    if s_count and as_of.tz is None:
        raise DataError("snapshot as_of times must be tz-aware UTC")
    if s_count:
        as_of = as_of.tz_convert("UTC").as_unit("ns")
    if s_count > 1 and not (np.diff(as_of.asi8) > 0).all():
        raise DataError("snapshots must be strictly increasing in as_of (one method/window per feature set)")
    seen: set[str] = set()
    for snap in snapshots:
        seen.update(snap.assets)
        seen.update(snap.edges["src"])
        seen.update(snap.edges["dst"])
        seen.update(snap.leads["src"])
        seen.update(snap.leads["dst"])
    unknown = sorted(seen - set(syms))
    if unknown:
        raise UnknownSymbolError(unknown, "the bars given to graph_features (snapshot assets absent from them)",
                                 list(syms))
    member = np.zeros((s_count, n), dtype=bool)
    rho = np.zeros((s_count, n, n))
    comm_id = np.full((s_count, n), np.nan)
    leads: list[dict[int, np.ndarray]] = []
    for k, snap in enumerate(snapshots):
        member[k, [col[a] for a in snap.assets]] = True
        e = snap.edges
        if len(e):
            i = np.fromiter((col[x] for x in e["src"]), dtype=np.int64, count=len(e))
            j = np.fromiter((col[x] for x in e["dst"]), dtype=np.int64, count=len(e))
            r = e["rho"].to_numpy(dtype=np.float64)
            rho[k, i, j] = r
            rho[k, j, i] = r
        for a, cid in snap.communities.items():
            if a not in col:
                raise UnknownSymbolError([a], "the bars given to graph_features (community member)", list(syms))
            comm_id[k, col[a]] = cid
        by_lag: dict[int, np.ndarray] = {}
        ld = snap.leads
        if len(ld):
            for lag, grp in ld.groupby("lag", sort=True):
                w = np.zeros((n, n))
                src = [col[x] for x in grp["src"]]
                dst = [col[x] for x in grp["dst"]]
                w[dst, src] = grp["rho"].to_numpy(dtype=np.float64)
                by_lag[int(lag)] = w
        leads.append(by_lag)
    wdeg = np.full((s_count, n), np.nan)
    clust = np.full((s_count, n), np.nan)
    eig = np.full((s_count, n), np.nan)
    pr = np.full((s_count, n), np.nan)
    with single_threaded():
        # per snapshot on its own assets: a large universe (an index's past and present members) holds
        # many more symbols than any one snapshot
        for k in progress_bar(range(s_count), desc="snapshot metrics", unit="snap", enabled=progress):
            idx = np.flatnonzero(member[k])
            if len(idx) == 0:
                continue
            absw = np.abs(rho[k][np.ix_(idx, idx)])
            wdeg[k, idx] = absw.sum(axis=1)
            clust[k, idx] = weighted_clustering(absw)
            sub_eig, sub_pr = _graph_metrics(absw, np.ones(len(idx), dtype=bool))
            eig[k, idx], pr[k, idx] = sub_eig, sub_pr
    # community size and mean correlation to the rest of the community
    size = np.full((s_count, n), np.nan)
    ccorr = np.full((s_count, n), np.nan)
    for k in range(s_count):
        ids = comm_id[k]
        ok = ~np.isnan(ids)
        if not ok.any():
            continue
        same = (ids[:, None] == ids[None, :]) & ok[:, None] & ok[None, :]
        sz = same.sum(axis=1).astype(np.float64)
        size[k] = np.where(ok, sz, np.nan)
        tot = np.where(same, rho[k], 0.0).sum(axis=1)          # diagonal of rho is 0
        ccorr[k] = np.where(ok & (sz > 1), tot / np.maximum(sz - 1.0, 1.0), np.nan)
    values = {"G_wdeg": wdeg, "G_eigvec": eig, "G_pagerank": pr, "G_clustering": clust, "G_comm_id": comm_id,
              "G_comm_size": size, "G_comm_corr": ccorr}
    return SnapshotMetrics(as_of=as_of, symbols=syms, values=values, in_snapshot=member, rho=rho,
                           leads=tuple(leads))


# ------------------------------------------------------------------------------------------ bar features

def _latest_index(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each time, the index of the latest key ``<= time`` (-1 when none). Both int64 ns, keys sorted."""
    return np.searchsorted(keys, times, side="right") - 1


def _segments(snap_idx: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal snapshot index over bars: (snapshot k, first row, end row exclusive), k >= 0."""
    out = []
    if len(snap_idx) == 0:
        return out
    change = np.flatnonzero(np.diff(snap_idx)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(snap_idx)]])
    for a, b in zip(starts, ends):
        if snap_idx[a] >= 0:
            out.append((int(snap_idx[a]), int(a), int(b)))
    return out


def _regime_columns(regimes: pd.DataFrame | None, times: pd.DatetimeIndex, syms: tuple[str, ...],
                    names: tuple[str, ...]) -> dict[str, np.ndarray]:
    t_count, n = len(times), len(syms)
    nan_tn = np.full((t_count, n), np.nan)
    out: dict[str, np.ndarray] = {f"G_mkt_regime_{x}": nan_tn.copy() for x in names}
    for c in ("G_mkt_regime_prob", "G_mkt_regime_age", "G_asset_regime", "G_asset_regime_prob"):
        out[c] = nan_tn.copy()
    if regimes is None or regimes.empty:
        return out
    missing = [c for c in REGIME_COLUMNS if c not in regimes.columns]
    if missing:
        raise DataError(f"regime frame lacks column(s) {', '.join(missing)}; expected {', '.join(REGIME_COLUMNS)}")
    reg = regimes.copy()
    when = pd.DatetimeIndex(reg["datetime"])
    if when.tz is None:
        raise DataError("regime frame 'datetime' must be tz-aware UTC (got naive times)")
    reg["datetime"] = when.tz_convert("UTC").as_unit("ns")
    t_ns = times.as_unit("ns").asi8
    mkt = reg[reg["scope"] == MARKET_SCOPE].sort_values("datetime", kind="stable")
    if len(mkt):
        unknown = sorted(set(mkt["regime"]) - set(names))
        if unknown:
            raise DataError(f"market regime name(s) {', '.join(map(str, unknown))} not in the expected "
                            f"{', '.join(names)} (pass regime_names=)")
        keys = pd.DatetimeIndex(mkt["datetime"]).as_unit("ns").asi8
        if len(keys) > 1 and not (np.diff(keys) > 0).all():
            raise DataError("market regime records must have unique times")
        li = _latest_index(keys, t_ns)
        has = li >= 0
        lab = mkt["regime"].to_numpy()
        prob = mkt["prob"].to_numpy(dtype=np.float64)
        # bars since the last change: bar row of t minus bar row where the current run started
        run_start = np.concatenate([[True], lab[1:] != lab[:-1]])
        start_rec = np.maximum.accumulate(np.where(run_start, np.arange(len(lab)), 0))
        start_row = np.searchsorted(t_ns, keys[start_rec], side="left")   # bar row of each run's first record
        rows = np.arange(t_count)
        for x in names:
            col = np.where(has, (lab[np.maximum(li, 0)] == x).astype(np.float64), np.nan)
            out[f"G_mkt_regime_{x}"] = np.repeat(col[:, None], n, axis=1)
        p = np.where(has, prob[np.maximum(li, 0)], np.nan)
        age = np.where(has, rows - start_row[np.maximum(li, 0)], np.nan).astype(np.float64)
        out["G_mkt_regime_prob"] = np.repeat(p[:, None], n, axis=1)
        out["G_mkt_regime_age"] = np.repeat(age[:, None], n, axis=1)
    ast = reg[reg["scope"] != MARKET_SCOPE]
    if len(ast):
        unknown_sym = sorted(set(ast["scope"]) - set(syms))
        if unknown_sym:
            raise UnknownSymbolError(unknown_sym, "the bars given to graph_features (regime scopes)", list(syms))
        unknown = sorted(set(ast["regime"]) - set(ASSET_REGIMES))
        if unknown:
            raise DataError(f"asset regime name(s) {', '.join(map(str, unknown))} not in {', '.join(ASSET_REGIMES)}")
        code = ast["regime"].map({x: float(i) for i, x in enumerate(ASSET_REGIMES)})
        codes = pd.DataFrame({"scope": ast["scope"], "datetime": ast["datetime"], "code": code,
                              "prob": ast["prob"].astype(np.float64)})
        if codes.duplicated(["scope", "datetime"]).any():
            raise DataError("asset regime records must be unique per (scope, datetime)")
        c_piv = codes.pivot(index="datetime", columns="scope", values="code").reindex(columns=list(syms)).ffill()
        p_piv = codes.pivot(index="datetime", columns="scope", values="prob").reindex(columns=list(syms)).ffill()
        li = _latest_index(pd.DatetimeIndex(c_piv.index).as_unit("ns").asi8, t_ns)
        has = (li >= 0)[:, None]
        out["G_asset_regime"] = np.where(has, c_piv.to_numpy()[np.maximum(li, 0)], np.nan)
        out["G_asset_regime_prob"] = np.where(has, p_piv.to_numpy()[np.maximum(li, 0)], np.nan)
    return out


def graph_features(snapshots: Sequence[GraphSnapshot], regimes: pd.DataFrame | None, bars: BarsOrPanel, *,
                   symbols: Sequence[str] | None = None, regime_names: Sequence[str] | None = None,
                   horizons: Sequence[int] = MOMENTUM_HORIZONS, metrics: SnapshotMetrics | None = None,
                   progress: bool = False, gaps: bool = False, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Graph features per (datetime, instrument) as of each bar (see the module docstring).

    Parameters
    ----------
    snapshots
        Snapshots in ``as_of`` order (one method and window).
    regimes
        Regime-state frame (``scope, datetime, regime, prob``) or ``None`` (regime columns NaN).
    bars
        Canonical bars or a close panel; rows of the output are its bar times.
    symbols
        Restrict to these symbols (unknown ones raise ``UnknownSymbolError``).
    regime_names
        Market regime names for the one-hot columns (default: the 3-state names).
    horizons
        Neighbour-momentum horizons in bars.
    metrics
        Pre-computed :func:`snapshot_metrics` for the same snapshots and symbols (a cache).
    gaps
        Add ``G_nbr_mom_gap_h`` (own ``h``-bar log return minus ``G_nbr_mom_h``) after each momentum column.
    members
        Point-in-time universe (booleans, UTC bar times x symbols, covering every bar and symbol): rows only
        where the asset is a member. ``None``: every bar with a close.

    Returns
    -------
    DataFrame
        float64 ``G_*`` columns (:func:`feature_names`), MultiIndex ``(datetime, instrument)``.
    """
    names = tuple(regime_names) if regime_names is not None else market_regime_names(3)
    panel = close_panel(bars, symbols, where="bars given to graph_features")
    syms = tuple(str(c) for c in panel.columns)
    times = pd.DatetimeIndex(panel.index).as_unit("ns")
    if metrics is None:
        metrics = snapshot_metrics(snapshots, syms, progress=progress)
    elif metrics.symbols != syms or len(metrics.as_of) != len(snapshots):
        raise DataError("the metrics cache was computed for other snapshots or symbols")
    t_count, n = panel.shape
    logp = np.log(panel.to_numpy())
    r1 = np.full_like(logp, np.nan)
    r1[1:] = logp[1:] - logp[:-1]
    snap_idx = _latest_index(metrics.as_of.asi8, times.asi8) if len(metrics.as_of) else np.full(t_count, -1)
    has = snap_idx >= 0
    si = np.maximum(snap_idx, 0)
    cols: dict[str, np.ndarray] = {}
    for name in SNAPSHOT_METRICS:
        v = metrics.values[name]
        cols[name] = np.where(has[:, None], v[si], np.nan) if len(v) else np.full((t_count, n), np.nan)
    member_t = np.where(has[:, None], metrics.in_snapshot[si], False) if len(metrics.as_of) else \
        np.zeros((t_count, n), dtype=bool)
    segs = _segments(snap_idx)
    with single_threaded():
        for h in horizons:
            mom = np.full_like(logp, np.nan)
            mom[h:] = logp[h:] - logp[:-h]
            out = np.full((t_count, n), np.nan)
            valid = ~np.isnan(mom)
            filled = np.where(valid, mom, 0.0)
            for k, a, b in segs:
                w = metrics.rho[k]
                num = filled[a:b] @ w.T
                den = valid[a:b].astype(np.float64) @ np.abs(w).T
                out[a:b] = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
            cols[f"G_nbr_mom_{h}"] = np.where(member_t, out, np.nan)
            if gaps:
                cols[f"G_nbr_mom_gap_{h}"] = mom - cols[f"G_nbr_mom_{h}"]
        valid1 = ~np.isnan(r1)
        filled1 = np.where(valid1, r1, 0.0)
        ll = np.full((t_count, n), np.nan)
        for k, a, b in segs:
            num = np.zeros((b - a, n))
            den = np.zeros((b - a, n))
            for lag, w in metrics.leads[k].items():
                rows = np.arange(a, b) - (lag - 1)            # r_j(t + 1 - lag)
                ok = rows >= 0
                src_f = np.zeros((b - a, n))
                src_v = np.zeros((b - a, n))
                src_f[ok] = filled1[rows[ok]]
                src_v[ok] = valid1[rows[ok]]
                num += src_f @ w.T
                den += src_v @ np.abs(w).T
            ll[a:b] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        cols["G_leadlag"] = np.where(member_t, ll, np.nan)
    cols.update(_regime_columns(regimes, times, syms, names))
    return bar_frame(cols, feature_names(names, horizons, gaps), panel, members, where="graph_features")


def bar_frame(cols: dict[str, np.ndarray], order: Sequence[str], panel: pd.DataFrame,
              members: pd.DataFrame | None = None, where: str = "graph_features") -> pd.DataFrame:
    """Per-bar ``(T, N)`` arrays as a frame with one row per bar time and asset present (and member).

    Parameters
    ----------
    cols
        ``{name: (T, N) array}`` aligned with ``panel`` (rows = its times, columns = its symbols).
    order
        Output columns, in order (each a key of ``cols``).
    panel
        The close panel (from :func:`close_panel`): a row exists where the close is not NaN.
    members
        Point-in-time universe (see :func:`graph_features`); ``None``: every bar with a close.

    Returns
    -------
    DataFrame
        float64 columns ``order``, MultiIndex ``(datetime, instrument)`` (panel times, Qlib codes), sorted by
        datetime then instrument.
    """
    syms = tuple(str(c) for c in panel.columns)
    times = pd.DatetimeIndex(panel.index).as_unit("ns")
    n = len(syms)
    present = ~np.isnan(panel.to_numpy())
    if members is not None:
        present &= members_at(members, times, syms, where=f"members given to {where}")
    ti, ai = np.nonzero(present)                               # row-major: by time, then symbol
    instruments = np.asarray([to_qlib_instrument(s) for s in syms], dtype=object)
    inst_order = np.argsort(instruments, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[inst_order] = np.arange(n)
    sort = np.lexsort((rank[ai], ti))
    ti, ai = ti[sort], ai[sort]
    index = pd.MultiIndex.from_arrays([times[ti], instruments[ai]], names=["datetime", "instrument"])
    data = {c: cols[c][ti, ai].astype(np.float64) for c in order}
    return pd.DataFrame(data, index=index)
