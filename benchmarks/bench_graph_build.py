"""Graph builders and graph features on the real Binance candles (../shared/data), all in memory.

Setup: the 46 USDT pairs at 1h, 2020-05 to 2024-05 (pd.read_feather + normalize_bars), window 720,
stride 24 -> ~1,450 snapshots. Pruning: top-10 |rho| partners per asset (union), as the store
benchmark writes. Lead-lag lags 1..6.

Rows (targets on the 2-core machine):
  read 46 feather files                                               (info)
  correlation build, Pearson (edges only)                             <= 10 s
  correlation build, Spearman (edges only)                            <= 10 s
  full snapshot build: Pearson + lead-lag (lags 1..6) + Louvain       (info)
  regime build: market HMM re-fitted weekly + asset regimes at snapshots  (info)
  graph features for all snapshots, from in-memory snapshots          <= 60 s together with the store's
                                                                         bulk read (bench_graph_store.py)

Wall seconds depend on what else runs on the machine; CPU seconds of this process are printed too.

Then, on the SYNTHETIC market (ground truth known), over --ari-seeds seeds (default 20, 0 = skip):
adjusted Rand index of the market regimes (out-of-sample, after the first fit) against the planted
regimes, next to a baseline measured in the same run (terciles of the 24-bar realised volatility of
the equal-weight return, thresholds from its expanding history), and of the Louvain communities
against the planted clusters (mean over the snapshots of window 720, stride 240; unpruned and top-3).

Run: .venv/bin/python benchmarks/bench_graph_build.py [--json PATH] [--window 720] [--stride 24]
     [--top-k 10] [--min-abs-rho 0] [--lead-max-lag 6] [--symbols BTC/USDT,ETH/USDT,...] [--ari-seeds 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure, print_table  # noqa: E402

from graphwiz_trader.data.bars import normalize_bars  # noqa: E402
from graphwiz_trader.core.symbols import parse_symbols, symbol_from_stem  # noqa: E402
from graphwiz_trader.data.paths import binance_dir  # noqa: E402
from graphwiz_trader.data.synthetic import generate_synthetic_market  # noqa: E402
from graphwiz_trader.config.settings import GraphSettings  # noqa: E402
from graphwiz_trader.features.graph_features import graph_features, snapshot_metrics  # noqa: E402
from graphwiz_trader.graph.store import regime_transitions  # noqa: E402
from graphwiz_trader.graph.builders import (  # noqa: E402
    RegimeSettings,
    build_regime_state,
    build_snapshots,
    close_panel,
    log_returns,
)
from graphwiz_trader.core.jsonout import write_json  # noqa: E402


def _read(folder: Path, symbols: list[str] | None) -> dict[str, pd.DataFrame]:
    bars = {}
    for path in sorted(folder.glob("*-1h.feather")):
        sym = symbol_from_stem(path.name.split("-")[0])
        if symbols is None or sym in symbols:
            bars[sym] = normalize_bars(pd.read_feather(path), where=str(path)).sort_index()
    return bars


def _synthetic_recovery(seeds: int) -> dict:
    """Regime and community ARI on the synthetic market, with a realised-vol tercile baseline."""
    hmm, base, louv, louv_k = [], [], [], []
    label = ""
    for seed in range(seeds):
        mk = generate_synthetic_market(seed=seed)
        label = mk.label
        st = build_regime_state(mk.bars)
        m = st[st["scope"] == "market"]
        idx = pd.DatetimeIndex(m["datetime"])
        truth = mk.regimes.reindex(idx).astype(str)
        hmm.append(adjusted_rand_score(truth, m["regime"]))
        vol = log_returns(close_panel(mk.bars)).mean(axis=1).rolling(24).std()
        lo, hi = vol.expanding(240).quantile(1 / 3), vol.expanding(240).quantile(2 / 3)
        terc = pd.Series(np.where(vol < lo, 0, np.where(vol < hi, 1, 2)), index=vol.index).reindex(idx)
        base.append(adjusted_rand_score(truth, terc))
        for store, kw in ((louv, {}), (louv_k, {"top_k": 3})):
            snaps = build_snapshots(mk.bars, 720, 240, lead_max_lag=0, **kw)
            store.append(float(np.mean([adjusted_rand_score([mk.clusters[a] for a in s.assets],
                                                            [s.communities[a] for a in s.assets]) for s in snaps])))

    def summary(a: list[float]) -> dict:
        return {"median": float(np.median(a)), "mean": float(np.mean(a)), "min": float(np.min(a)),
                "max": float(np.max(a)), "share_ge_0.6": float(np.mean(np.asarray(a) >= 0.6)),
                "values": [round(x, 4) for x in a]}

    out = {"label": label, "seeds": seeds, "regime_hmm": summary(hmm), "regime_vol_tercile_baseline": summary(base),
           "louvain_unpruned": summary(louv), "louvain_top3": summary(louv_k)}
    print(f"\n{label}: recovery over seeds 0..{seeds - 1}")
    for name, key in (("market regime, HMM (filtered, re-fitted)", "regime_hmm"),
                      ("market regime, baseline: 24-bar vol terciles", "regime_vol_tercile_baseline"),
                      ("Louvain vs planted clusters, unpruned", "louvain_unpruned"),
                      ("Louvain vs planted clusters, top-3 pruning", "louvain_top3")):
        r = out[key]
        print(f"  {name:<46} ARI median {r['median']:.3f}  mean {r['mean']:.3f}  min {r['min']:.3f}  "
              f"max {r['max']:.3f}  >= 0.6 in {r['share_ge_0.6']:.0%}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--window", type=int, default=GraphSettings().corr_window)
    ap.add_argument("--stride", type=int, default=24)
    ap.add_argument("--top-k", type=int, default=10, help="top-k |rho| partners per asset (0 = no top-k)")
    ap.add_argument("--min-abs-rho", type=float, default=0.0)
    ap.add_argument("--lead-max-lag", type=int, default=6)
    ap.add_argument("--symbols", help="comma-separated subset (default: every pair in the folder)")
    ap.add_argument("--ari-seeds", type=int, default=20, help="synthetic seeds for the ARI section (0 = skip)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = binance_dir() / "1h"
    if not folder.is_dir():
        print(f"SKIPPED: real data not found at {folder} (see ../shared/data/README.md)")
        return 0
    symbols = parse_symbols(args.symbols)
    top_k = args.top_k or None
    rows: list[dict] = []
    cpu = time.process_time

    def row(what: str, m, c0: float, target: float | None = None, **extra: object) -> None:
        rows.append({"what": what, "seconds": m.seconds, "cpu_seconds": cpu() - c0, "target_s": target,
                     "peak_rss_gb": m.peak_rss_gb, "load_avg_1m": os.getloadavg()[0], **extra})

    c0 = cpu()
    with measure() as m:
        bars = _read(folder, symbols)
    n_bars = sum(map(len, bars.values()))
    row(f"read {len(bars)} feather files ({n_bars:,} bars)", m, c0)

    common = dict(window=args.window, stride=args.stride, min_abs_rho=args.min_abs_rho, top_k=top_k)
    c0 = cpu()
    with measure() as m:
        snaps = build_snapshots(bars, **common, lead_max_lag=0, communities=False)
    row(f"correlation build, Pearson ({len(snaps):,} snapshots, "
        f"{sum(len(s.edges) for s in snaps):,} edges)", m, c0, 10.0, snapshots=len(snaps))
    c0 = cpu()
    with measure() as m:
        sp = build_snapshots(bars, **common, method="spearman", lead_max_lag=0, communities=False)
    row(f"correlation build, Spearman ({len(sp):,} snapshots)", m, c0, 10.0)
    del sp
    c0 = cpu()
    with measure() as m:
        snaps = build_snapshots(bars, **common, lead_max_lag=args.lead_max_lag)
    n_edges = sum(len(s.edges) for s in snaps)
    n_leads = sum(len(s.leads) for s in snaps)
    row(f"full build: Pearson + lead-lag 1..{args.lead_max_lag} + Louvain ({n_edges:,} edges, "
        f"{n_leads:,} leads)", m, c0, edges=n_edges, leads=n_leads)
    params = RegimeSettings()
    c0 = cpu()
    with measure() as m:
        regimes = build_regime_state(bars, params, asset_times=[s.as_of for s in snaps])
    mk = regimes[regimes["scope"] == "market"]
    tr = regime_transitions(mk)  # the statistics the store writes as TRANSITIONS_TO
    switches = int(tr.loc[tr["from_regime"] != tr["to_regime"], "count"].sum())
    n_fits = len(range(params.min_train, len(mk) + params.min_train, params.refit_every))
    share = mk["regime"].value_counts(normalize=True).round(3).to_dict()
    row(f"regime build: {n_fits} HMM fits, {len(regimes):,} records", m, c0, records=len(regimes),
        market_bars=len(mk), switches=switches, mean_run_bars=len(mk) / max(switches, 1), regime_share=share)
    c0 = cpu()
    with measure() as m:
        met = snapshot_metrics(snaps, sorted(bars))
        feats = graph_features(snaps, regimes, bars, metrics=met)
    row(f"graph features for all snapshots ({feats.shape[0]:,} x {feats.shape[1]})", m, c0, 60.0,
        feature_rows=feats.shape[0], feature_cols=feats.shape[1])

    print_table(rows)
    cpu_list = ", ".join(f"{r['cpu_seconds']:.1f}" for r in rows)
    print(f"CPU seconds per row: {cpu_list}; "
          f"1-min load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"market regime: {len(mk):,} labelled bars, {switches} switches, mean run "
          f"{len(mk) / max(switches, 1):.1f} bars, share {share}")
    print("graph features: bulk read of the snapshots is measured by benchmarks/bench_graph_store.py; "
          "the 60 s target covers both")
    recovery = _synthetic_recovery(args.ari_seeds) if args.ari_seeds > 0 else None
    write_json(args.json, {"rows": rows, "synthetic_recovery": recovery, "window": args.window,
                           "stride": args.stride, "top_k": top_k, "min_abs_rho": args.min_abs_rho, "lead_max_lag": args.lead_max_lag,
                           "symbols": sorted(bars), "regime_params": params.__dict__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
