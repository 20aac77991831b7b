"""``graphwiz backtest``: run the configured strategy, benchmarks and HTML report; print and ``--json``.

``--scores FILE`` backtests any score panel (``predictions.parquet`` of ``research walkforward`` or
``reproduce graph-crypto``) instead of the built-in scores: expected returns from the scores, the
optimiser of the config, and the cost-aware backtest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from graphwiz_trader.core.commandline import add_config_option, add_data_options, add_json_option, add_run_dir_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.errors import ConfigError


def _run(args: argparse.Namespace) -> int:
    from graphwiz_trader.backtest.settings import load_backtest_config
    from graphwiz_trader.backtest.runner import format_metrics, run_configured_backtest
    from graphwiz_trader.backtest.scores import read_score_file
    from graphwiz_trader.data.sources import SourceOptions

    cfg = load_backtest_config(args.config)
    folder = open_run(args)
    folder.write_config(cfg)
    report = args.report or folder.file("report.html")
    fmt = args.format or "freqtrade"
    given = args.source or (args.provider if fmt == "qlib" else None)
    if args.format not in (None, "synthetic") and not given:
        raise ConfigError(f"--format {args.format} needs --source DIR (without it the SYNTHETIC market is used)")
    source = None if fmt == "synthetic" else given
    scores = read_score_file(args.scores) if args.scores else None
    run = run_configured_backtest(cfg, source=source, fmt=fmt, report_path=report, progress=progress_enabled(),
                                  tearsheet=args.tearsheet, scores=scores, score_column=args.score_column,
                                  center_scores=args.center_scores, start=args.start, end=args.end,
                                  symbols=args.symbols, scores_where=f"--scores {args.scores}",
                                  source_options=SourceOptions.from_args(args))
    strat = run.results["strategy"]
    print(run.label)
    print(f"score: {run.score_name}")
    info = run.scores_info
    if info:
        left = info["symbols_without_scores_left_out"]
        missing = info.get("decisions_without_a_score") or {}
        print(f"scores: {len(info['instruments'])} instruments mapped to the bars' symbols; "
              + (f"left out (bars but no scores): {', '.join(left)}; " if left else "every symbol has scores; ")
              + (f"decisions without a score (not eligible then): "
                 + ", ".join(f"{s} x{n}" for s, n in missing.items()) if missing else "a score at every decision"))
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
    folder.write_frame("equity", pd.DataFrame({name: r.equity for name, r in run.results.items()}))
    folder.write_frame("weights", strat.weights)
    folder.write_frame("trades", strat.trades())
    folder.write_summary({"config": str(args.config), "source": source,
                          "scores_file": str(args.scores) if args.scores else None, **run.summary()}, args.json)
    print(f"run folder: {folder.path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``backtest`` to the ``graphwiz`` app."""
    p = subparsers.add_parser(
        "backtest", help="walk-forward max-Sharpe portfolio + cost-aware backtest vs benchmarks",
        description="Run the portfolio strategy of --config through the cost-aware backtester with "
                    "buy-and-hold, equal-weight and inverse-vol benchmarks and write an HTML report. "
                    "Offline default: the synthetic market with its planted signal as scores; "
                    "--source DIR: real bars with the point-in-time score of the config; "
                    "--scores FILE: any score panel (predictions.parquet) on either.")
    add_config_option(p, default="config/backtest.yaml")
    add_data_options(p, timeframe=None, source_help="folder of real bars or a Parquet store "
                     "(default: the SYNTHETIC market); the bar size is data.source.timeframe of --config",
                     symbols_help="comma-separated, e.g. BTC/USDT,ETH/USDT (default: data.source.symbols of "
                     "--config, or every symbol of --scores)")
    p.add_argument("--scores", metavar="FILE", type=Path, default=None,
                   help="score panel: predictions.parquet ((datetime, instrument) index, one column per model "
                        "variant plus fold) or a CSV with datetime and instrument columns; the score at t is "
                        "known at t's close and used for the decision at t; its time range is the backtest's "
                        "decision period unless --start/--end narrow it")
    p.add_argument("--score-column", metavar="NAME", default=None,
                   help="column of --scores to trade (default: its only column besides fold)")
    p.add_argument("--center-scores", action="store_true",
                   help="subtract each time's cross-sectional mean from the scores (for probabilities, which "
                        "the expected-return mapping would read as all positive)")
    p.add_argument("--report", metavar="PATH", type=Path, default=None,
                   help="HTML report path (default: report.html in the run folder)")
    add_run_dir_option(p)
    add_json_option(p)
    p.add_argument("--tearsheet", action="store_true",
                   help="also write a quantstats tear sheet beside the report (needs the 'report' extra)")
    p.set_defaults(func=_run)
