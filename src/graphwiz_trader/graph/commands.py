"""``graphwiz graph build``: fill the graph store (embedded Bolt server or Neo4j) from the data layer;
``graphwiz graph builds``: list the builds in the store (the build id every read and exploration query needs)
and delete those no longer wanted (``--delete BUILD``).

The build's defaults come from the ``graph:`` settings (``config/trading_config.yaml``, else the defaults of
:class:`~graphwiz_trader.config.settings.GraphSettings`) through :meth:`GraphBuildSettings.from_settings`; a flag
overrides its setting.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.data.sources import SourceOptions, load_universe
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_graph, write_graph
from graphwiz_trader.core.commandline import add_config_option, add_data_options, add_json_option, resolve_format
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run


_D = GraphSettings()  # the settings' defaults, shown in --help


def _config(args: argparse.Namespace) -> GraphSettings:
    from graphwiz_trader.config.loader import load_config_or_default

    return load_config_or_default(args.config).graph


def _settings(args: argparse.Namespace, cfg: GraphSettings | None = None) -> GraphSettings:
    """Where to connect: the config's ``graph:`` section, or ``NEO4J_*`` when the config names no URI."""
    cfg = cfg if cfg is not None else _config(args)
    if cfg.uri is None:
        from graphwiz_trader.graph.store import settings_from_env

        env = settings_from_env()
        if env.uri is not None:
            return env
    return cfg


def _build(args: argparse.Namespace) -> int:
    from graphwiz_trader.graph.store import GraphStore

    t0 = time.perf_counter()
    fmt = resolve_format(args)
    cfg = _config(args)
    settings = _settings(args, cfg)
    given = {"window": args.window, "stride": args.stride, "method": args.method, "min_abs_rho": args.min_abs_rho,
             "top_k": args.top_k, "lead_max_lag": args.max_lag}
    overrides = {k: v for k, v in given.items() if v is not None}
    if overrides.get("top_k") == 0:
        overrides["top_k"] = None  # --top-k 0: keep every edge
    spec = GraphBuildSettings.from_settings(cfg, exchange="synthetic" if fmt == "synthetic" else args.exchange,
                                        **overrides)
    # warm-up: the window's closes before --start, so that the first snapshot is taken at --start
    warmup = spec.window if args.start is not None else 0
    loaded = load_universe(args.source, fmt, args.timeframe, args.symbols, args.start, args.end,
                           options=SourceOptions.from_args(args), warmup_bars=warmup)
    bars, label = loaded.bars, loaded.label
    print(f"data: {label}: {len(bars)} symbols" + (f" (with up to {warmup} warm-up bars before --start: the "
                                                    "first snapshot's window)" if warmup else ""))
    if loaded.membership is None:
        build = build_graph(bars, spec, progress=progress_enabled())
    else:  # an index universe: a node only while a member; no regime state
        from graphwiz_trader.data.universe import membership_mask
        from graphwiz_trader.graph.builders.panel import close_panel
        from graphwiz_trader.graph.pipeline import build_panel_graph

        panel = close_panel(bars)
        members = membership_mask(loaded.membership, panel.index, list(panel.columns))
        build = build_panel_graph(panel, spec, members, progress=progress_enabled())
        build.seconds.setdefault("regimes", 0.0)
    with GraphStore.connect(settings, batch_size=args.batch_size) as store:
        if args.clear:
            store.clear()
        w = write_graph(store, build, spec.exchange)
        uri = store.uri
    edges = sum(len(s.edges) for s in build.snapshots)
    leads = sum(len(s.leads) for s in build.snapshots)
    secs = time.perf_counter() - t0
    print(f"graph: build {build.build_id}: {len(build.snapshots)} {spec.method} snapshots (window {spec.window}, "
          f"stride {spec.stride}), {edges} CORRELATED_WITH, {leads} LEADS, {len(build.regimes)} regime records "
          f"-> {uri}")
    print(f"time: build {build.seconds['snapshots']:.1f}s + regimes {build.seconds['regimes']:.1f}s, "
          f"write {w['write_snapshots']:.1f}s + {w['write_regimes']:.1f}s; total {secs:.1f}s")
    print(f"explore it: docs/graph.md has ready-to-paste Cypher queries; set their parameter build = "
          f"'{build.build_id}'")
    open_run(args).write_summary({"data": label, "symbols": list(bars), "build": build.build_id,
                           "spec": build.info["spec"], "snapshots": len(build.snapshots),
                           "first_snapshot": str(build.snapshots[0].as_of) if build.snapshots else None,
                           "last_snapshot": str(build.snapshots[-1].as_of) if build.snapshots else None,
                           "correlation_edges": edges, "lead_edges": leads, "regime_records": len(build.regimes),
                           "uri": uri, "seconds": {**build.seconds, **w, "total": secs}}, args.json)
    return 0


def _builds(args: argparse.Namespace) -> int:
    from graphwiz_trader.graph.store import GraphStore

    with GraphStore.connect(_settings(args)) as store:
        for build in args.delete or []:
            n = store.delete_build(build)
            print(f"deleted build {build} ({n} generation(s))")
        builds = store.list_builds()
        uri = store.uri
    if builds.empty:
        print(f"no builds in the graph store at {uri} (fill it with `graphwiz graph build`)")
    rows = []
    for b in builds.itertuples(index=False):
        info = json.loads(b.info) if b.info else {}
        spec, universe = info.get("spec", {}), info.get("universe", [])
        n_snap = None if pd.isna(b.n_snapshots) else int(b.n_snapshots)
        n_reg = None if pd.isna(b.n_regime_records) else int(b.n_regime_records)
        print(f"{b.build}  updated {b.updated:%Y-%m-%d %H:%M:%S}Z  snapshots {'-' if n_snap is None else n_snap}  "
              f"regime records {'-' if n_reg is None else n_reg}  {spec.get('method', '?')} window "
              f"{spec.get('window', '?')} stride {spec.get('stride', '?')}  {len(universe)} symbols"
              + (f" ({', '.join(universe[:4])}{', ...' if len(universe) > 4 else ''})" if universe else ""))
        rows.append({"build": b.build, "updated": b.updated, "snapshots": n_snap, "regime_records": n_reg,
                     "info": info})
    open_run(args).write_summary({"uri": uri, "builds": rows}, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    graph = sub.add_parser("graph", help="build the asset-correlation and regime graph in the store")
    gsub = graph.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    p = gsub.add_parser("build", help="rolling correlation snapshots, lead-lag, communities, regimes -> store")
    add_data_options(p, source_help="folder of freqtrade/csv files or a store (default: the SYNTHETIC market)")
    p.add_argument("--window", type=int, help=f"bars per correlation window (default: graph.corr_window, "
                   f"{_D.corr_window})")
    p.add_argument("--stride", type=int, help=f"bars between snapshots (default: graph.corr_stride, {_D.corr_stride})")
    p.add_argument("--method", choices=["pearson", "spearman"],
                   help=f"correlation (default: graph.corr_method, {_D.corr_method})")
    p.add_argument("--min-abs-rho", type=float, help=f"prune edges with |rho| below this (default: "
                   f"graph.min_abs_rho, {_D.min_abs_rho})")
    p.add_argument("--top-k", type=int, help=f"keep each node's k strongest edges, 0 = all (default: graph.top_k, "
                   f"{_D.top_k})")
    p.add_argument("--max-lag", type=int, help=f"lead-lag: largest lag in bars, 0 = none (default: "
                   f"{GraphBuildSettings.lead_max_lag})")
    p.add_argument("--exchange", metavar="ID", default="binance", help="exchange id for LISTED_ON")
    p.add_argument("--batch-size", type=int, help="rows per UNWIND transaction (default: graph.batch_size)")
    p.add_argument("--clear", action="store_true", help="delete the graphwiz graph first")
    add_config_option(p)
    add_json_option(p)
    p.set_defaults(func=_build)
    b = gsub.add_parser("builds", help="list the builds in the graph store, newest first (ids for reads and queries)")
    b.add_argument("--delete", metavar="BUILD", nargs="+", help="delete these builds first (all they wrote)")
    add_config_option(b)
    add_json_option(b)
    b.set_defaults(func=_builds)
