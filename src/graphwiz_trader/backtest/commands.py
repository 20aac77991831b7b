"""``graphwiz backtest``: run the configured strategy, benchmarks and HTML report; print and ``--json``."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphwiz_trader.core.jsonout import write_json


def _run(args: argparse.Namespace) -> int:
    from graphwiz_trader.backtest.config import load_backtest_config
    from graphwiz_trader.backtest.runner import format_metrics, run_configured_backtest

    cfg = load_backtest_config(args.config)
    run = run_configured_backtest(cfg, source=args.source, fmt=args.format, report_path=args.report,
                                  progress=not args.no_progress, tearsheet=args.tearsheet)
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
    write_json(args.json, {"command": "backtest", "config": str(args.config), "source": args.source,
                           **run.summary()})
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``backtest`` to the ``graphwiz`` app."""
    p = subparsers.add_parser(
        "backtest", help="walk-forward max-Sharpe portfolio + cost-aware backtest vs benchmarks",
        description="Run the portfolio strategy of --config through the cost-aware backtester with "
                    "buy-and-hold, equal-weight and inverse-vol benchmarks and write an HTML report. "
                    "Offline default: the synthetic market with its planted signal as scores; "
                    "--source DIR: real bars with the point-in-time score of the config.")
    p.add_argument("--config", type=Path, default=Path("config/backtest.yaml"), help="backtest YAML")
    p.add_argument("--source", default=None, help="folder of real bars (default: synthetic market)")
    p.add_argument("--format", default="freqtrade", choices=["freqtrade"], help="layout of --source")
    p.add_argument("--report", type=Path, default=None, help="HTML report path (default: report.html of config)")
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    p.add_argument("--tearsheet", action="store_true",
                   help="also write a quantstats tear sheet beside the report (needs the 'report' extra)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
