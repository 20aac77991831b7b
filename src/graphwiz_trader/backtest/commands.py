"""``graphwiz backtest``: run the configured strategy, benchmarks and HTML report; print and ``--json``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from graphwiz_trader.core.commandline import add_config_option, add_json_option, add_run_dir_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run


def _run(args: argparse.Namespace) -> int:
    from graphwiz_trader.backtest.settings import load_backtest_config
    from graphwiz_trader.backtest.runner import format_metrics, run_configured_backtest

    cfg = load_backtest_config(args.config)
    folder = open_run(args)
    folder.write_config(cfg)
    report = args.report or folder.file("report.html")
    run = run_configured_backtest(cfg, source=args.source, fmt=args.format, report_path=report,
                                  progress=progress_enabled(), tearsheet=args.tearsheet)
    strat = run.results["strategy"]
    print(run.label)
    print(f"score: {run.score_name}")
    print(f"period: {strat.equity.index[0]} .. {strat.equity.index[-1]} ({len(strat.equity)} bars, "
          f"{len(run.rolling.weights)} decisions)")
    print(format_metrics(run.metrics))
    fb = run.rolling.fallback_counts()
    if fb:
        print("fallbacks: " + ", ".join(f"{k} x{v}" for k, v in fb.items()))
    print(f"report: {run.report_path}")
    if args.tearsheet and run.report_path is not None:
        from graphwiz_trader.backtest.report import tearsheet_path

        print(f"tear sheet: {tearsheet_path(run.report_path)}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in run.seconds.items()))
    strat = run.results["strategy"]
    folder.write_frame("equity", pd.DataFrame({name: r.equity for name, r in run.results.items()}))
    folder.write_frame("weights", strat.weights)
    folder.write_frame("trades", strat.trades())
    folder.write_summary({"config": str(args.config), "source": args.source, **run.summary()}, args.json)
    print(f"run folder: {folder.path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``backtest`` to the ``graphwiz`` app."""
    p = subparsers.add_parser(
        "backtest", help="walk-forward max-Sharpe portfolio + cost-aware backtest vs benchmarks",
        description="Run the portfolio strategy of --config through the cost-aware backtester with "
                    "buy-and-hold, equal-weight and inverse-vol benchmarks and write an HTML report. "
                    "Offline default: the synthetic market with its planted signal as scores; "
                    "--source DIR: real bars with the point-in-time score of the config.")
    add_config_option(p, default="config/backtest.yaml")
    p.add_argument("--source", metavar="DIR", default=None, help="folder of real bars (default: the SYNTHETIC market)")
    p.add_argument("--format", default="freqtrade", choices=["freqtrade"], help="layout of --source")
    p.add_argument("--report", metavar="PATH", type=Path, default=None,
                   help="HTML report path (default: report.html in the run folder)")
    add_run_dir_option(p)
    add_json_option(p)
    p.add_argument("--tearsheet", action="store_true",
                   help="also write a quantstats tear sheet beside the report (needs the 'report' extra)")
    p.set_defaults(func=_run)
