"""Louvain communities of a correlation snapshot.

The graph has one node per asset of the snapshot and one edge per kept correlation edge with
``rho > 0``, weighted by ``rho`` (negative correlations are not "togetherness" and are left out).
Communities come from :func:`networkx.community.louvain_communities` with a fixed seed, on a graph
whose nodes and edges are inserted in sorted order, so the result is a pure function of the snapshot.
Assets without a positive edge form singleton communities.

Ids are relabelled deterministically: communities sorted by size descending, ties by their smallest
symbol ascending; id 0 is the largest.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import pandas as pd


def positive_graph(assets: Iterable[str], edges: pd.DataFrame) -> nx.Graph:
    """Undirected graph of ``assets`` with the ``rho > 0`` edges of ``edges`` (weight = rho)."""
    g = nx.Graph()
    g.add_nodes_from(sorted(assets))
    pos = edges[edges["rho"] > 0].sort_values(["src", "dst"])
    g.add_weighted_edges_from(zip(pos["src"], pos["dst"], pos["rho"].astype(float)), weight="weight")
    return g


def relabel_communities(groups: Iterable[Iterable[str]]) -> dict[str, int]:
    """Community sets -> ``{symbol: id}`` with id 0 the largest, ties by the smallest symbol."""
    ordered = sorted((sorted(g) for g in groups if g), key=lambda g: (-len(g), g[0]))
    return {s: cid for cid, members in enumerate(ordered) for s in members}


def louvain_communities(assets: Iterable[str], edges: pd.DataFrame, seed: int = 42,
                        resolution: float = 1.0) -> dict[str, int]:
    """Louvain community id per asset (see the module docstring).

    Parameters
    ----------
    assets
        Symbols of the snapshot.
    edges
        ``src, dst, rho`` correlation edges.
    seed
        Louvain's random seed (fixed for reproducibility).
    resolution
        Modularity resolution (> 1 favours smaller communities).
    """
    g = positive_graph(assets, edges)
    if g.number_of_nodes() == 0:
        return {}
    groups = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)
    return relabel_communities(groups)
