"""``graphwiz research walkforward``: purged walk-forward evaluation with reports and importance stability.

Features (and graph features with ``--graph``) are computed once; then every fold of every variant is one
task, run on a local Ray instance over every core by default (``--workers``, ``--ray-address``; see
:mod:`graphwiz_trader.research.fanout` and docs/research_parallel.md)."""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from graphwiz_trader.config.loader import load_config_or_default
from graphwiz_trader.core.commandline import (
    add_config_option,
    add_data_options,
    add_json_option,
    add_run_dir_option,
    resolve_format,
)
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.data.sources import SourceOptions, load_bars
from graphwiz_trader.features.pipeline import alpha_features, feature_warmup_bars
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.research.compare import compare_results
from graphwiz_trader.research.experiment import (
    WalkForwardSettings,
    config_dict,
    predictions_frame,
    run_walkforward_many,
)
from graphwiz_trader.research.fanout import (
    add_fanout_options,
    check_reachable,
    describe,
)
from graphwiz_trader.research.report import write_walkforward_outputs
from graphwiz_trader.research.walkforward import walk_forward_folds


def _label(args: argparse.Namespace, n_symbols: int) -> LabelSpec:
    if args.label == "drawdown":
        return LabelSpec("drawdown", args.horizon, args.threshold)
    return LabelSpec(args.label, args.horizon, args.threshold, relative=n_symbols > 1 and not args.absolute)


def _walkforward(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.ray_address:
        check_reachable(args.ray_address)  # before the data and feature steps, not after them
    graph_window = (args.graph_window or load_config_or_default(args.config).graph.corr_window) if args.graph else None
    warm = feature_warmup_bars(args.timeframe, graph_window) if args.start else 0
    bars, data_label = load_bars(args.source, resolve_format(args), args.timeframe, args.symbols, args.start, args.end,
                                 options=SourceOptions.from_args(args), warmup_bars=warm)
    print(f"data: {data_label}: {len(bars)} symbols" + (f" (with up to {warm} warm-up bars before --start; the "
                                                        "folds start at --start)" if warm else ""))
    run = open_run(args)
    out = run.path
    spec = _label(args, len(bars))
    cfg = WalkForwardSettings(train_len=args.train_len, test_len=args.test_len, stride=args.stride, gap=args.gap,
                              embargo=args.embargo, label=spec, seed=args.seed, hpo_trials=args.hpo_trials,
                              max_folds=args.max_folds)
    calendar = pd.DatetimeIndex(sorted(set().union(*(df.index for df in bars.values()))))
    if args.start:
        calendar = calendar[calendar >= to_utc(args.start, "--start")]
    # check the folds fit before the expensive Alpha158 step (the label horizon's last bars have no label)
    walk_forward_folds(len(calendar) - spec.horizon, cfg.train_len, cfg.test_len, cfg.stride, cfg.effective_gap,
                       cfg.embargo, spec.horizon, cfg.expanding, cfg.max_folds)
    qlib = load_config_or_default(args.config).qlib
    feats = alpha_features(bars, args.qlib_dir or qlib.provider_uri, mlflow_dir=qlib.mlflow_dir)
    t_feat = time.perf_counter() - t0
    label = make_label(bars, spec)
    fwd = make_label(bars, LabelSpec("regression", spec.horizon, relative=spec.relative))
    t_graph = 0.0
    runs: dict[str, tuple[WalkForwardSettings, list[str] | None]] = {"alpha158": (cfg, list(feats.columns))}
    panel = feats
    if args.graph:
        from graphwiz_trader.features.graph_pipeline import graph_features_for_bars

        tg = time.perf_counter()
        gfeats = graph_features_for_bars(bars, window=args.graph_window, stride=args.graph_stride)
        t_graph = time.perf_counter() - tg
        panel = feats.join(gfeats, how="left")
        runs["hybrid"] = (cfg, None)
    if args.start:  # the warm-up rows were inputs only: features, labels and folds start at --start
        lo = to_utc(args.start, "--start").tz_localize(None)
        panel, label, fwd = (x[x.index.get_level_values("datetime") >= lo] for x in (panel, label, fwd))
    print(f"walk-forward: {len(runs)} variant(s), fold tasks run {describe(args.workers, args.ray_address)}")
    results = run_walkforward_many(panel, label, runs, fwd, workers=args.workers, ray_address=args.ray_address,
                                   progress=progress_enabled(), desc="walk-forward folds")
    comparison = compare_results(results["alpha158"], results["hybrid"], seed=args.seed) if args.graph else None
    paths = write_walkforward_outputs(results, out, f"Walk-forward: {spec.describe()}", comparison, data_label,
                                      fwd_returns=fwd)
    for name, res in results.items():
        s = res.summary()
        print(f"{name}: {s['n_folds']} folds | AUC {s['auc']['mean']:.4f} | IC {s['ic']['mean']:.4f} "
              f"[{s['ic']['ci_low']:.4f}, {s['ic']['ci_high']:.4f}] (HAC, lag-1 autocorrelation "
              f"{s['ic']['lag1_autocorr']:+.2f}) | Rank IC {s['rank_ic']['mean']:.4f} | accuracy "
              f"{s['accuracy']['mean']:.4f} vs majority {s['majority_rate']['mean']:.4f}, balanced "
              f"{s['balanced_accuracy']['mean']:.4f} | fold time {res.folds['seconds'].mean():.1f}s")
        if "zero_returns" in s:
            print(f"  zero-return bars: {s['zero_returns']}")
    if comparison:
        st = comparison["ic_difference_stats"]
        sa = comparison["accuracy_improvement_pct_stats"]
        print(f"hybrid vs alpha158: AUC difference {comparison['auc_difference']:+.4f}, IC difference "
              f"{comparison['ic_difference']:+.4f} (95% HAC CI [{st['ci_low']:+.4f}, {st['ci_high']:+.4f}]), "
              f"accuracy improvement {comparison['accuracy_improvement_pct']:+.3f}% (95% HAC CI "
              f"[{sa['ci_low']:+.3f}, {sa['ci_high']:+.3f}]), better in {comparison['hybrid_better_folds']}/"
              f"{comparison['n_folds']} folds; lag-1 autocorrelation of the fold differences {sa['lag1_autocorr']:+.2f}")
        boot = comparison["accuracy_improvement_pct_ci_block_bootstrap"]
        print(f"  {comparison['bootstrap_note']}" + (f": [{boot[0]:+.3f}, {boot[1]:+.3f}]" if boot else ""))
    run.write_frame("predictions", predictions_frame(results))
    secs = time.perf_counter() - t0
    print(f"predictions: {run.path / 'predictions.parquet'}")
    print(f"report: {paths['html']} and {paths['png']}; total {secs:.1f}s (features {t_feat:.1f}s, graph {t_graph:.1f}s)")
    run.write_summary({
        "data": data_label, "config": config_dict(cfg), "fold_tasks": describe(args.workers, args.ray_address),
        "seconds": secs, "feature_seconds": t_feat,
        "graph_seconds": t_graph,
        "runs": {n: {"summary": r.summary(), "folds": r.folds.to_dict(orient="records")} for n, r in results.items()},
        "comparison": comparison, "outputs": paths}, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    research = sub.add_parser("research", help="walk-forward research")
    rsub = research.add_subparsers(dest="research_command", metavar="ACTION", required=True)
    p = rsub.add_parser("walkforward", help="purged walk-forward evaluation (optionally with graph features)")
    add_data_options(p, source_help="freqtrade/csv folder or a store (default: the SYNTHETIC market)")
    p.add_argument("--train-len", type=int, default=2000, help="training bars per fold")
    p.add_argument("--test-len", type=int, default=500, help="test bars per fold")
    p.add_argument("--stride", type=int, help="bars between fold starts (default: test length)")
    p.add_argument("--gap", type=int, help="bars between train and test (default: label horizon)")
    defaults = {f.name: f.default for f in dataclasses.fields(WalkForwardSettings)}  # one source of defaults
    p.add_argument("--embargo", type=int, default=defaults["embargo"], help="bars dropped after each test part before later training")
    p.add_argument("--max-folds", type=int, help="stop after this many folds (default: all)")
    p.add_argument("--label", choices=["regression", "direction", "drawdown"], default="direction",
                   help="target: forward log return, its sign, or a drawdown beyond --threshold")
    p.add_argument("--horizon", type=int, default=1, help="label horizon in bars")
    p.add_argument("--threshold", type=float, default=0.0, help="direction threshold / drawdown size (fraction)")
    p.add_argument("--absolute", action="store_true", help="absolute (not cross-sectional) label on universes")
    p.add_argument("--hpo-trials", type=int, default=defaults["hpo_trials"], help="Optuna trials inside each fold's training part")
    p.add_argument("--graph", action="store_true", help="also run Alpha158 + graph features and compare")
    from graphwiz_trader.config.settings import GraphSettings

    d = GraphSettings()  # the one source of the graph defaults
    p.add_argument("--graph-window", type=int, help=f"bars per correlation window (default: graph.corr_window, "
                   f"{d.corr_window})")
    p.add_argument("--graph-stride", type=int, help=f"bars between snapshots (default: graph.corr_stride, "
                   f"{d.corr_stride})")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="LightGBM and Optuna seed")
    p.add_argument("--qlib-dir", metavar="DIR",
                   help="Qlib bins, content-addressed and reused (default: qlib.provider_uri of the config)")
    add_fanout_options(p)
    add_config_option(p)
    add_run_dir_option(p)
    add_json_option(p)
    p.set_defaults(func=_walkforward)
