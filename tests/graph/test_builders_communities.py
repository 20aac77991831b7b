"""Louvain communities: planted clusters recovered, deterministic ids, same as networkx called directly."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.builders import build_snapshots, louvain_communities, relabel_communities


def test_louvain_recovers_the_planted_clusters_of_the_synthetic_market() -> None:
    market = generate_synthetic_market(n_bars=24 * 120)
    print(market.label)
    snaps = build_snapshots(market.bars, 720, 72, lead_max_lag=0)
    aris = [adjusted_rand_score([market.clusters[a] for a in s.assets], [s.communities[a] for a in s.assets])
            for s in snaps]
    print(f"{market.label}: Louvain ARI per snapshot: min {min(aris):.3f} mean {np.mean(aris):.3f} "
          f"over {len(aris)} snapshots")
    assert np.mean(aris) >= 0.95
    assert np.mean(np.isclose(aris, 1.0)) >= 0.9
    assert adjusted_rand_score([market.clusters[a] for a in snaps[-1].assets],
                               [snaps[-1].communities[a] for a in snaps[-1].assets]) == 1.0


def test_ids_are_zero_for_the_largest_and_ties_go_to_the_smallest_symbol() -> None:
    got = relabel_communities([{"D", "E"}, {"A"}, {"B", "C", "F"}, {"G", "H"}])
    assert got == {"B": 0, "C": 0, "F": 0, "D": 1, "E": 1, "G": 2, "H": 2, "A": 3}


def test_same_partition_as_networkx_louvain_with_positive_weights_and_the_same_seed() -> None:
    rng = np.random.default_rng(4)
    syms = [f"X{i:02d}/USDT" for i in range(10)]
    rows = [(syms[i], syms[j], float(rng.uniform(-0.5, 0.9))) for i in range(10) for j in range(i + 1, 10)]
    edges = pd.DataFrame(rows, columns=["src", "dst", "rho"])
    got = louvain_communities(syms, edges, seed=42)
    g = nx.Graph()
    g.add_nodes_from(sorted(syms))
    g.add_weighted_edges_from((s, d, r) for s, d, r in rows if r > 0)
    ref = nx.community.louvain_communities(g, weight="weight", seed=42)
    assert {frozenset(c) for c in ref} == {frozenset(a for a in syms if got[a] == cid) for cid in set(got.values())}
    assert louvain_communities(list(reversed(syms)), edges.iloc[::-1], seed=42) == got


def test_isolated_assets_are_singletons() -> None:
    edges = pd.DataFrame({"src": ["A/USDT"], "dst": ["B/USDT"], "rho": [0.8]})
    got = louvain_communities(["A/USDT", "B/USDT", "C/USDT"], edges)
    assert got == {"A/USDT": 0, "B/USDT": 0, "C/USDT": 1}
