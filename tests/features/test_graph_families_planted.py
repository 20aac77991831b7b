"""Graph feature families recover planted structure: a cluster spillover (peer) and a leader (lead-lag).

Thresholds (stated, fixed seeds):

- planted spillover, ``r_i(t+1) += 0.3 (mean of i's cluster mates' r(t) - market mean r(t))``: the mean
  cross-sectional rank IC of ``P_nbr_ret_1`` with the next return is > 0.10 on the true snapshots (about
  0.18 measured) and within +-0.03 when the snapshots' asset labels are shuffled across clusters (about 0);
- planted leader, ``B_t = 0.5 A_{t-1} + noise``: every snapshot holds the lead edge A -> B at lag 1, the
  correlation of B's ``L_lead_ret`` with B's next return is > 0.3 (about 0.45 in theory), and below 0.1 in
  absolute value for the assets without a planted leader.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.features.graph_families import FamilySettings, family_features
from graphwiz_trader.features.graph_features import snapshot_metrics
from graphwiz_trader.graph.builders import build_snapshots
from graphwiz_trader.graph.snapshot import GraphSnapshot

PEER_ONLY = FamilySettings(peer_columns=(), condition_columns=())


def next_return(panel: pd.DataFrame) -> pd.Series:
    """``r_i(t+1)`` per (datetime, instrument): the label, one bar ahead (only the test looks ahead)."""
    r = np.log(panel).diff().shift(-1).rename(columns=to_qlib_instrument).stack()
    return r.rename_axis(["datetime", "instrument"]).rename("y")


def mean_rank_ic(feats: pd.DataFrame, column: str, label: pd.Series) -> float:
    df = feats[[column]].join(label).dropna()
    ic = df.groupby(level="datetime").apply(lambda g: g[column].rank().corr(g["y"].rank()))
    return float(ic.mean())


def relabel(snaps: list[GraphSnapshot], mapping: dict[str, str]) -> list[GraphSnapshot]:
    """The same snapshots with every asset name replaced by ``mapping[name]`` (scrambles which assets are linked)."""
    out = []
    for s in snaps:
        edges = s.edges.assign(src=s.edges["src"].map(mapping), dst=s.edges["dst"].map(mapping))
        leads = s.leads.assign(src=s.leads["src"].map(mapping), dst=s.leads["dst"].map(mapping))
        out.append(GraphSnapshot(as_of=s.as_of, window=s.window, method=s.method,
                                 assets=tuple(sorted(mapping[a] for a in s.assets)), edges=edges, leads=leads,
                                 communities={mapping[a]: c for a, c in s.communities.items()}))
    return out


@pytest.fixture(scope="module")
def spillover_market() -> tuple[pd.DataFrame, dict[str, int]]:
    market = generate_synthetic_market(n_assets=12, n_clusters=3, n_bars=2000, seed=5, signal_strength=0.0)
    panel = market.close_panel()
    syms = list(panel.columns)
    r = np.log(panel).diff().to_numpy()
    r[0] = 0.0
    cluster = np.array([market.clusters[s] for s in syms])
    mates = (cluster[:, None] == cluster[None, :]) & ~np.eye(len(syms), dtype=bool)
    planted = r.copy()
    for t in range(1, len(r)):                          # spillover from the cluster mates' last return
        planted[t] = r[t] + 0.3 * (mates @ r[t - 1] / mates.sum(axis=1) - r[t - 1].mean())
    close = panel.iloc[0].to_numpy() * np.exp(np.cumsum(planted, axis=0))
    return pd.DataFrame(close, index=panel.index, columns=syms), market.clusters


def test_peer_aggregation_carries_a_planted_cluster_spillover_and_loses_it_when_clusters_are_shuffled(
        spillover_market) -> None:
    panel, clusters = spillover_market
    syms = list(panel.columns)
    snaps = build_snapshots(panel, window=240, stride=24, top_k=3, lead_max_lag=0)
    perm = list(np.random.default_rng(1).permutation(syms))
    assert sum(clusters[a] != clusters[b] for a, b in zip(syms, perm)) >= 8       # really scrambled
    label = next_return(panel)
    ic = {}
    for name, s in (("true", snaps), ("shuffled", relabel(snaps, dict(zip(syms, perm))))):
        feats = family_features(snapshot_metrics(s, syms), panel, window=240, families=("peer",), settings=PEER_ONLY)
        ic[name] = mean_rank_ic(feats, "P_nbr_ret_1", label)
    assert ic["true"] > 0.10, ic
    assert abs(ic["shuffled"]) < 0.03, ic


@pytest.fixture(scope="module")
def leader_panel() -> pd.DataFrame:
    rng = np.random.default_rng(23)
    n = 1500
    r = rng.normal(0.0, 0.01, (n, 4))                   # A, B, C, D independent ...
    r[1:, 1] = 0.5 * r[:-1, 0] + rng.normal(0.0, 0.01, n - 1)   # ... except B_t = 0.5 A_{t-1} + noise
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="datetime")
    return pd.DataFrame(100.0 * np.exp(np.cumsum(r, axis=0)), index=idx,
                        columns=["AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT"])


def test_lead_lag_finds_the_planted_leader_and_its_signal_predicts_the_follower(leader_panel) -> None:
    snaps = build_snapshots(leader_panel, window=240, stride=24, lead_max_lag=3)
    for s in snaps:
        edge = s.leads[(s.leads["src"] == "AAA/USDT") & (s.leads["dst"] == "BBB/USDT")]
        assert len(edge) == 1 and edge["lag"].iloc[0] == 1 and edge["rho"].iloc[0] > 0.3
    feats = family_features(snapshot_metrics(snaps, list(leader_panel.columns)), leader_panel, window=240,
                            families=("leadlag",))
    df = feats.join(next_return(leader_panel)).dropna()
    corr = {inst: g["L_lead_ret"].corr(g["y"]) if g["L_lead_ret"].std() > 0 else 0.0
            for inst, g in df.groupby(level="instrument")}
    assert corr["BBBUSDT"] > 0.3, corr
    for other in ("AAAUSDT", "CCCUSDT", "DDDUSDT"):
        assert abs(corr[other]) < 0.1, corr
    assert (df.xs("BBBUSDT", level="instrument")["L_n_leaders"] >= 1).all()
