"""``graphwiz graph build``: fill the graph store (embedded Bolt server or Neo4j) from the data layer."""

from __future__ import annotations

import argparse
import time

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.graph.pipeline import GraphBuildSpec, build_graph, write_graph
from graphwiz_trader.core.jsonout import write_json


def _settings(args: argparse.Namespace) -> GraphSettings:
    from graphwiz_trader.config.loader import load_config_or_default

    cfg = load_config_or_default(args.config).graph
    if cfg.uri is None:
        from graphwiz_trader.graph.store import settings_from_env

        env = settings_from_env()
        if env.uri is not None:
            return env
    return cfg


def _build(args: argparse.Namespace) -> int:
    from graphwiz_trader.graph.store import GraphStore

    t0 = time.perf_counter()
    fmt = args.format or ("freqtrade" if args.source else "synthetic")
    bars, label = load_bars(args.source, fmt, args.timeframe, args.symbols, args.start, args.end)
    settings = _settings(args)
    spec = GraphBuildSpec(window=args.window, stride=args.stride, method=args.method, min_abs_rho=args.min_abs_rho,
                          top_k=args.top_k or None, lead_max_lag=args.max_lag,
                          exchange="synthetic" if fmt == "synthetic" else args.exchange)
    print(f"data: {label}: {len(bars)} symbols")
    build = build_graph(bars, spec, progress=True)
    with GraphStore.connect(settings, batch_size=args.batch_size) as store:
        if args.clear:
            store.clear()
        w = write_graph(store, build, spec.exchange)
        uri = store.uri
    edges = sum(len(s.edges) for s in build.snapshots)
    leads = sum(len(s.leads) for s in build.snapshots)
    secs = time.perf_counter() - t0
    print(f"graph: {len(build.snapshots)} {spec.method} snapshots (window {spec.window}, stride {spec.stride}), "
          f"{edges} CORRELATED_WITH, {leads} LEADS, {len(build.regimes)} regime records -> {uri}")
    print(f"time: build {build.seconds['snapshots']:.1f}s + regimes {build.seconds['regimes']:.1f}s, "
          f"write {w['write_snapshots']:.1f}s + {w['write_regimes']:.1f}s; total {secs:.1f}s")
    print("explore it: docs/graph.md has ready-to-paste Cypher queries")
    write_json(args.json, {"data": label, "symbols": list(bars), "snapshots": len(build.snapshots),
                           "correlation_edges": edges, "lead_edges": leads, "regime_records": len(build.regimes),
                           "uri": uri, "seconds": {**build.seconds, **w, "total": secs}})
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    graph = sub.add_parser("graph", help="build the asset-correlation and regime graph in the store")
    gsub = graph.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    p = gsub.add_parser("build", help="rolling correlation snapshots, lead-lag, communities, regimes -> store")
    p.add_argument("--source", help="folder of freqtrade/csv files (default: the synthetic market)")
    p.add_argument("--format", choices=["freqtrade", "csv", "store", "synthetic"])
    p.add_argument("--timeframe", default="1h")
    p.add_argument("--symbols")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--window", type=int, default=720, help="bars per correlation window")
    p.add_argument("--stride", type=int, default=24, help="bars between snapshots")
    p.add_argument("--method", choices=["pearson", "spearman"], default="pearson")
    p.add_argument("--min-abs-rho", type=float, default=0.3, help="prune edges with |rho| below this")
    p.add_argument("--top-k", type=int, default=10, help="keep each node's k strongest edges (0 = all)")
    p.add_argument("--max-lag", type=int, default=6, help="lead-lag: largest lag in bars (0 = none)")
    p.add_argument("--exchange", default="binance", help="exchange id for LISTED_ON")
    p.add_argument("--batch-size", type=int, help="rows per UNWIND transaction")
    p.add_argument("--clear", action="store_true", help="delete the graphwiz graph first")
    p.add_argument("--config", help="config file (graph section: uri, user, password, data_dir)")
    p.add_argument("--json", metavar="PATH")
    p.set_defaults(func=_build)
