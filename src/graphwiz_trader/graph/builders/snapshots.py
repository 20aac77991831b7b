"""``build_snapshots``: rolling correlation snapshots with lead-lag edges and Louvain communities.

Point-in-time: snapshot ``k`` covers the ``window`` return rows ending at row ``window - 1 + k *
stride`` of the return frame (see :mod:`.panel`), its ``as_of`` is that row's bar time, and it is a
function of the closes at times ``<= as_of`` only. The schedule is anchored at the first bar, so
appending data never moves or changes earlier snapshots.

Point-in-time universes: with a ``members`` mask (``datetime x symbol`` booleans, e.g. index
membership from Qlib's ``instruments/<market>.txt``), an asset is a node of snapshot ``k`` only when it
is a member on the snapshot's ``as_of`` bar (and has ``min_periods`` returns in the window); its
returns before it joined still count towards its correlations, since they are known at ``as_of``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphwiz_trader.core.progress import bar as progress_counter
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.graph.builders.communities import louvain_communities
from graphwiz_trader.graph.builders.correlation import METHODS, correlation_chunk, prune_edges, window_stack
from graphwiz_trader.graph.builders.leadlag import lagged_corr_chunk, select_leads
from graphwiz_trader.graph.builders.panel import (
    BarsOrPanel,
    check_window_params,
    close_panel,
    log_returns,
    members_at,
    window_ends,
)
from graphwiz_trader.graph.snapshot import GraphSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotSettings:
    """Parameters of :func:`build_snapshots` (all windows and lags in bars).

    Attributes
    ----------
    window, stride
        Window length and step between snapshots.
    min_periods
        Minimum valid returns for an asset to be in a snapshot, and minimum overlapping returns for
        a pair's correlation. Default ``window // 2``.
    method
        ``pearson`` or ``spearman`` (contemporaneous edges; lead-lag is always Pearson).
    min_abs_rho, top_k
        Edge pruning: keep ``|rho| >= min_abs_rho`` and, when ``top_k`` is set, only edges among the
        ``top_k`` strongest of either endpoint.
    lead_max_lag, lead_min_abs_rho, lead_min_gain
        Lead-lag rule (see :mod:`.leadlag`); ``lead_max_lag=0`` builds no lead edges.
    communities, louvain_seed, louvain_resolution
        Louvain on each snapshot (see :mod:`.communities`).
    """

    window: int
    stride: int
    min_periods: int | None = None
    method: str = "pearson"
    min_abs_rho: float = 0.0
    top_k: int | None = None
    lead_max_lag: int = 6
    lead_min_abs_rho: float = 0.15
    lead_min_gain: float = 0.05
    communities: bool = True
    louvain_seed: int = 42
    louvain_resolution: float = 1.0

    @property
    def periods(self) -> int:
        return int(self.min_periods) if self.min_periods is not None else max(3, int(self.window) // 2)

    def check(self) -> None:
        check_window_params(self.window, self.stride, self.periods)
        if self.method not in METHODS:
            raise ConfigError(f"unknown correlation method {self.method!r}; expected one of {', '.join(METHODS)}")
        if not 0.0 <= self.min_abs_rho <= 1.0:
            raise ConfigError(f"min_abs_rho must be in [0, 1], got {self.min_abs_rho!r}")
        if self.top_k is not None and (int(self.top_k) != self.top_k or self.top_k < 1):
            raise ConfigError(f"top_k must be a positive integer or None, got {self.top_k!r}")
        if int(self.lead_max_lag) != self.lead_max_lag or not 0 <= self.lead_max_lag < self.window - 2:
            raise ConfigError(f"lead_max_lag must be an integer in [0, window - 3], got {self.lead_max_lag!r}")
        if not 0.0 <= self.lead_min_abs_rho <= 1.0 or self.lead_min_gain < 0:
            raise ConfigError("lead_min_abs_rho must be in [0, 1] and lead_min_gain >= 0, got "
                              f"{self.lead_min_abs_rho!r}, {self.lead_min_gain!r}")


def empty_leads() -> pd.DataFrame:
    """A lead frame with no rows and the column dtypes of a filled one."""
    return pd.DataFrame({"src": np.array([], dtype=object), "dst": np.array([], dtype=object),
                         "lag": np.array([], dtype=np.int64), "rho": np.array([], dtype=np.float64)})


def build_snapshots(data: BarsOrPanel, window: int, stride: int, min_periods: int | None = None,
                    method: str = "pearson", min_abs_rho: float = 0.0, top_k: int | None = None,
                    lead_max_lag: int = 6, lead_min_abs_rho: float = 0.15, lead_min_gain: float = 0.05, *,
                    communities: bool = True, louvain_seed: int = 42, louvain_resolution: float = 1.0,
                    symbols: Sequence[str] | None = None, chunk_size: int = 32,
                    progress: bool = False, members: pd.DataFrame | None = None) -> list[GraphSnapshot]:
    """Rolling correlation snapshots of log returns (see :class:`SnapshotSettings` for the knobs).

    Parameters
    ----------
    data
        Canonical bars (``dict[symbol, DataFrame]``) or a close panel (UTC times x symbols).
    symbols
        Restrict to these symbols; unknown ones raise :class:`~graphwiz_trader.errors.UnknownSymbolError`.
    chunk_size
        Windows per vectorised batch (memory ~ ``chunk_size * N * window * 8`` bytes per array).
    progress
        Show a progress bar (see :mod:`graphwiz_trader.core.progress`).
    members
        Point-in-time universe: booleans, rows = bar times, columns = symbols (see :func:`members_at`);
        ``None``: every asset with data is eligible.

    Returns
    -------
    list[GraphSnapshot]
        In ``as_of`` order; assets, edges (``src < dst``), leads and communities per snapshot.

    Raises
    ------
    DataError
        when ``window`` is longer than the data (naming both lengths) or the bars are malformed.
    ConfigError
        on invalid parameters.
    """
    params = SnapshotSettings(window=window, stride=stride, min_periods=min_periods, method=method,
                            min_abs_rho=min_abs_rho, top_k=top_k, lead_max_lag=lead_max_lag,
                            lead_min_abs_rho=lead_min_abs_rho, lead_min_gain=lead_min_gain,
                            communities=communities, louvain_seed=louvain_seed,
                            louvain_resolution=louvain_resolution)
    return build_snapshots_from(data, params, symbols=symbols, chunk_size=chunk_size, progress=progress,
                                members=members)


def build_snapshots_from(data: BarsOrPanel, params: SnapshotSettings, symbols: Sequence[str] | None = None,
                         chunk_size: int = 32, progress: bool = False,
                         members: pd.DataFrame | None = None) -> list[GraphSnapshot]:
    """:func:`build_snapshots` with a :class:`SnapshotSettings`.

    BLAS runs single-threaded here: the products are small (N x window), where OpenBLAS threads only
    add synchronisation cost (and stall badly on a busy machine).
    """
    with single_threaded():
        return _build(data, params, symbols, chunk_size, progress, members)


def _build(data: BarsOrPanel, params: SnapshotSettings, symbols: Sequence[str] | None, chunk_size: int,
           progress: bool, members: pd.DataFrame | None = None) -> list[GraphSnapshot]:
    params.check()
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    panel = close_panel(data, symbols)
    rets = log_returns(panel)
    ends = window_ends(len(rets), params.window, params.stride, n_bars=len(panel))
    cols = tuple(str(c) for c in rets.columns)
    values = rets.to_numpy()
    times = rets.index
    mp = params.periods
    member_rows = None if members is None else members_at(members, times[ends], cols)
    out: list[GraphSnapshot] = []
    bar = progress_counter(total=len(ends), desc=f"{params.method} snapshots", unit="snap", enabled=progress)
    for start in range(0, len(ends), chunk_size):
        chunk_ends = ends[start:start + chunk_size]
        if member_rows is None:
            live, live_cols = slice(None), cols
        else:
            # only the columns that are members at some snapshot of the chunk (correlations are pairwise, so
            # leaving the others out changes none of them)
            chunk_members = member_rows[start:start + len(chunk_ends)]
            keep = np.flatnonzero(chunk_members.any(axis=0))
            live, live_cols = keep, tuple(cols[i] for i in keep)
        stack = window_stack(values[:, live], chunk_ends, params.window)
        rho, _, eligible = correlation_chunk(stack, params.method, mp)
        if member_rows is not None:
            eligible &= chunk_members[:, live]
            off = ~(eligible[:, :, None] & eligible[:, None, :])
            rho[off] = np.nan
        lagged = lagged_corr_chunk(stack, params.lead_max_lag, mp) if params.lead_max_lag > 0 else None
        for k, e in enumerate(chunk_ends):
            assets_mask = eligible[k]
            assets = tuple(c for c, ok in zip(live_cols, assets_mask) if ok)
            edges = prune_edges(rho[k], live_cols, params.min_abs_rho, params.top_k)
            if lagged is not None:
                leads = select_leads(lagged[k], assets_mask, live_cols, params.lead_min_abs_rho,
                                     params.lead_min_gain)
            else:
                leads = empty_leads()
            comms = (louvain_communities(assets, edges, params.louvain_seed, params.louvain_resolution)
                     if params.communities else {})
            out.append(GraphSnapshot(as_of=times[e], window=int(params.window), method=params.method,
                                     assets=assets, edges=edges, leads=leads, communities=comms))
        bar.update(len(chunk_ends))
    bar.close()
    log.info("built %d %s snapshots (window %d, stride %d) over %d assets", len(out), params.method,
             params.window, params.stride, len(cols))
    return out
