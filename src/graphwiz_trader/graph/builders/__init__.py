"""Graph builders: pure numpy/pandas/networkx code from bars to in-memory graph snapshots and regimes.

- :func:`build_snapshots`: rolling Pearson/Spearman correlation snapshots (pruned edges), lead-lag
  edges and Louvain communities, each snapshot using bars ``<= as_of`` only (:mod:`.correlation`,
  :mod:`.leadlag`, :mod:`.communities`, :mod:`.snapshots`).
- :func:`build_regime_state`: filtered market regimes from an expanding, re-fitted Gaussian HMM and
  per-asset volatility regimes (:mod:`.regimes`). ``TRANSITIONS_TO`` statistics are computed by the
  store from what it holds (:func:`graphwiz_trader.graph.store.regime_transitions`).

The store writes what these return; :mod:`graphwiz_trader.features.graph_features` turns them into
per-bar features.
"""

from graphwiz_trader.graph.builders.communities import louvain_communities, relabel_communities
from graphwiz_trader.graph.builders.correlation import METHODS, prune_edges
from graphwiz_trader.graph.builders.panel import close_panel, log_returns, members_at, window_ends
from graphwiz_trader.graph.builders.regimes import (
    ASSET_REGIMES,
    MARKET_SCOPE,
    RegimeSettings,
    asset_regimes,
    build_regime_state,
    market_features,
    market_regime_names,
    market_regimes,
)
from graphwiz_trader.graph.builders.snapshots import SnapshotSettings, build_snapshots, build_snapshots_from

__all__ = [
    "ASSET_REGIMES", "MARKET_SCOPE", "METHODS", "RegimeSettings", "SnapshotSettings",
    "asset_regimes", "build_regime_state", "build_snapshots", "build_snapshots_from", "close_panel",
    "log_returns", "louvain_communities", "members_at", "market_features", "market_regime_names", "market_regimes",
    "prune_edges", "relabel_communities", "window_ends",
]
