"""``graphwiz reproduce <target>``: reproductions of published results.

``register(subparsers)`` adds the ``reproduce`` group; each target lives in its own module and exposes
``add_<name>_parser(reproduce_subparsers)``. To add a target (e.g. ``graph-crypto``), append
``"<module>:<function>"`` to :data:`REPRODUCTIONS`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from pathlib import Path

from graphwiz_trader.core.cli_types import seeds_arg
from graphwiz_trader.core.commandline import add_json_option, add_run_dir_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.data.qlib_runtime import default_mlflow_dir
from graphwiz_trader.errors import ConfigError

log = logging.getLogger(__name__)

REPRODUCTIONS: list[str] = [
    "graphwiz_trader.research.commands_reproduce:add_csi300_parser",
    "graphwiz_trader.research.commands_reproduce:add_graph_crypto_parser",
    "graphwiz_trader.research.commands_paper:add_paper_parser",
]


def _csi300(args: argparse.Namespace) -> int:
    from graphwiz_trader.research.reproduce_csi300 import (
        DATA_SEGMENTS,
        CSI300ReproductionSettings,
        GraphFeatureSettings,
        SeedResult,
        Segments,
        format_table,
        run_reproduction,
    )

    data = Path(args.data)
    if not (data / "calendars" / "day.txt").is_file():
        raise ConfigError(f"--data {data}: not a Qlib data folder (no calendars/day.txt); the CSI300 data lives "
                          f"in ../shared/data/qlib_cn_csi300 (see ../shared/data/README.md)")
    segments = DATA_SEGMENTS
    if args.train or args.valid or args.test:
        def pair(v: str | None, default: tuple[str, str], name: str) -> tuple[str, str]:
            if not v:
                return default
            parts = v.split(":")
            if len(parts) != 2:
                raise ConfigError(f"--{name} takes START:END (YYYY-MM-DD:YYYY-MM-DD), got {v!r}")
            return parts[0], parts[1]
        segments = Segments(pair(args.train, DATA_SEGMENTS.train, "train"),
                            pair(args.valid, DATA_SEGMENTS.valid, "valid"),
                            pair(args.test, DATA_SEGMENTS.test, "test"))
    market: str | tuple[str, ...] = args.market
    if args.instruments:
        market = tuple(s.strip().upper() for s in args.instruments.split(",") if s.strip())
    run_dir = open_run(args).path
    cfg = CSI300ReproductionSettings(
        provider_uri=data, seeds=args.seeds, segments=segments, market=market, num_threads=args.threads,
        workers=args.workers,
        num_boost_round=args.num_boost_round, topk=args.topk, n_drop=args.n_drop,
        exchange_codes=market if args.instruments else None, graph=not args.no_graph,
        graph_config=GraphFeatureSettings(window=args.graph_window, min_periods=max(3, 2 * args.graph_window // 3),
                                        stride=args.graph_stride),
        mlflow_dir=Path(args.mlflow_dir) if args.mlflow_dir else None, kernels=args.kernels,
        cache_dir=None if args.no_cache else Path(args.cache_dir),
    )
    print(f"reproduce qlib-csi300: data {data.resolve()}, seeds {list(cfg.seeds)}, "
          f"{'baseline + graph' if cfg.graph else 'baseline only'}, run folder {run_dir}")

    def line(r: SeedResult) -> None:
        m = r.metrics
        print(f"  {r.variant:<15} seed {r.seed:>3}: IC {m['ic']:.4f} ICIR {m['icir']:.4f} RankIC {m['rank_ic']:.4f} "
              f"excess {m['annualized_excess_return_with_cost']:.4f} IR {m['information_ratio_with_cost']:.4f} "
              f"MDD {m['max_drawdown_with_cost']:.4f} (fit {r.fit_seconds:.0f}s, best iteration {r.best_iteration}, "
              f"backtest {r.backtest_seconds:.0f}s)", flush=True)

    t0 = time.perf_counter()
    result = run_reproduction(cfg, run_dir=run_dir, progress=progress_enabled(), on_seed=line)
    secs = time.perf_counter() - t0
    for note in result.audit.notes():
        print(f"note: {note}")
    if os.environ.get("PYTHONHASHSEED") in (None, "random"):
        print("note: PYTHONHASHSEED is not set; Qlib's Position.get_stock_list iterates a set, so the backtest's "
              "tie-breaks (and its figures, not the IC) can differ between processes. Set PYTHONHASHSEED=0 "
              "for a bit-for-bit repeatable run.")
    table = format_table(result)
    print(table)
    print(f"runtime {secs:.0f}s ({', '.join(f'{k} {v:.0f}s' for k, v in result.timings.items())})")
    mlflow_dir = Path(cfg.mlflow_dir).resolve() if cfg.mlflow_dir else default_mlflow_dir()
    print(f"run folder {run_dir.resolve()}; mlflow {mlflow_dir} "
          f"(experiment {cfg.experiment_name})")
    payload = result.to_payload()
    payload["runtime_seconds"] = secs
    payload["table"] = table
    (run_dir / "table.txt").write_text(table + "\n")
    open_run(args).write_summary(payload, args.json)
    return 0


def add_csi300_parser(rsub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``qlib-csi300`` to the ``reproduce`` subparsers."""
    p = rsub.add_parser("qlib-csi300", help="Qlib's published LightGBM/Alpha158/CSI300 run, then + graph features",
                        description="Runs Qlib's published LightGBM Alpha158 CSI300 workflow with Qlib's own "
                        "model, dataset, recorder and backtest, for several seeds, then the same with "
                        "point-in-time correlation-graph features appended; prints mean and std over seeds "
                        "beside the published row.")
    p.add_argument("--data", metavar="DIR", required=True, help="Qlib CSI300 folder (../shared/data/qlib_cn_csi300)")
    p.add_argument("--seeds", type=seeds_arg, default=(0, 1, 2), help="a count (3 -> 0,1,2) or a list (7,11,13)")
    add_json_option(p)
    add_run_dir_option(p)
    p.add_argument("--no-graph", action="store_true", help="baseline only")
    p.add_argument("--mlflow-dir", metavar="DIR", help="mlflow tracking folder (default: the one store, runs/mlruns)")
    p.add_argument("--threads", type=int, default=1, help="LightGBM threads per model (published 20)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="models fitted at once, each in a process forked from this one (1: one after the other); "
                        "the graph stage runs meanwhile; figures do not depend on it")
    p.add_argument("--kernels", type=int, default=2, help="Qlib expression-engine processes")
    p.add_argument("--cache-dir", metavar="DIR", default="data/qlib/feature_cache",
                   help="where Alpha158's raw frame is cached across runs, keyed by the data folder's files, "
                        "the handler and the expressions (default data/qlib/feature_cache)")
    p.add_argument("--no-cache", action="store_true", help="compute Alpha158 every run and store nothing "
                   "(default: off, the cache is used)")
    p.add_argument("--market", metavar="NAME", default="csi300", help="Qlib market (instruments file)")
    p.add_argument("--instruments", metavar="LIST", help="comma-separated instruments instead of the market (quick checks)")
    p.add_argument("--train", metavar="START:END", help="training segment (default 2010-01-01:2014-12-31)")
    p.add_argument("--valid", metavar="START:END", help="validation segment (default 2015-01-01:2016-12-31)")
    p.add_argument("--test", metavar="START:END", help="test segment (default 2017-01-01:2020-08-01)")
    p.add_argument("--num-boost-round", type=int, default=1000, help="LightGBM rounds (published 1000, early stop 50)")
    p.add_argument("--topk", type=int, default=50, help="TopkDropout: stocks held")
    p.add_argument("--n-drop", type=int, default=5, help="TopkDropout: stocks replaced per day")
    p.add_argument("--graph-window", type=int, default=60, help="trading days per correlation window")
    p.add_argument("--graph-stride", type=int, default=5, help="trading days between graph snapshots")
    p.set_defaults(func=_csi300)
    return p


def _graph_crypto(args: argparse.Namespace) -> int:
    from graphwiz_trader.core.symbols import parse_symbols
    from graphwiz_trader.research.fanout import check_reachable
    from graphwiz_trader.research.reproduce_crypto import (
        CryptoReproductionSettings,
        format_crypto_table,
        run_graph_crypto,
    )

    if args.ray_address:
        check_reachable(args.ray_address)  # before the data and feature steps, not after them
    data = Path(args.data)
    if not data.is_dir():
        raise ConfigError(f"--data {data} does not exist; the Binance candles live in "
                          "../shared/data/binance_spot_2020_2024 (see ../shared/data/README.md)")
    cfg = CryptoReproductionSettings(data=data, seeds=args.seeds, start=args.start, end=args.end,
                            train_len=args.train_len, test_len=args.test_len, stride=args.stride,
                            relative=args.relative, max_folds=args.max_folds, qlib_dir=Path(args.qlib_dir),
                            out=open_run(args).path, graph_window=args.graph_window, graph_stride=args.graph_stride,
                            workers=args.workers, ray_address=args.ray_address,
                            **({"symbols": tuple(parse_symbols(args.symbols))} if args.symbols else {}))
    res = run_graph_crypto(cfg, progress=progress_enabled())
    print(format_crypto_table(res))
    t = res["timings_s"]
    w = t["walkforward"]
    print(f"time: alpha158 {t['alpha158']:.0f}s, graph {t['graph_total']:.0f}s, walk-forward {w['total']:.0f}s "
          f"({w['where']}; fold tasks alpha158 {w['alpha158']:.0f}s + hybrid {w['hybrid']:.0f}s), total "
          f"{t['total']:.0f}s; report {res['outputs'].get('html')}")
    print(f"predictions: {res['outputs']['predictions']} (columns alpha158_seed<s>, hybrid_seed<s>, fold; "
          f"backtest them with graphwiz backtest --source {data} --scores <file> --score-column hybrid_seed"
          f"{cfg.seeds[0]} --center-scores)")
    open_run(args).write_summary(res, args.json)
    return 0


def add_graph_crypto_parser(rsub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``graph-crypto``: Alpha158-only vs Alpha158 + graph on the hourly crypto majors."""
    from graphwiz_trader.research.fanout import add_fanout_options

    p = rsub.add_parser("graph-crypto", help="do graph features raise accuracy on hourly crypto? (claim: 2-15%%)",
                        description="Walk-forward Alpha158-only vs Alpha158 + graph features (read back from the "
                        "graph store) on the 20 hourly majors, same folds and seeds; reports whatever comes out.")
    p.add_argument("--data", metavar="DIR", required=True,
                   help="freqtrade folder (../shared/data/binance_spot_2020_2024)")
    p.add_argument("--symbols", metavar="LIST", help="comma-separated (default: the 20 majors)")
    p.add_argument("--start", metavar="DATE", default="2021-01-01", help="first bar, UTC")
    p.add_argument("--end", metavar="DATE", help="last bar, UTC (default: the data's end)")
    p.add_argument("--train-len", type=int, default=8760, help="training bars per fold")
    p.add_argument("--test-len", type=int, default=720, help="test bars per fold")
    p.add_argument("--stride", type=int, default=720, help="bars between fold starts")
    p.add_argument("--max-folds", type=int, help="stop after this many folds (default: all)")
    p.add_argument("--seeds", type=seeds_arg, default=(0, 1, 2), help="a count (3 -> 0,1,2) or a list")
    p.add_argument("--relative", action="store_true", help="label: beats the cross-sectional mean")
    p.add_argument("--graph-window", type=int, default=720, help="bars per correlation window")
    p.add_argument("--graph-stride", type=int, default=24, help="bars between graph snapshots")
    p.add_argument("--qlib-dir", metavar="DIR", default="data/qlib", help="Qlib bins (content-addressed, reused)")
    add_fanout_options(p)
    add_run_dir_option(p)
    add_json_option(p)
    p.set_defaults(func=_graph_crypto)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``reproduce`` with one subcommand per entry of :data:`REPRODUCTIONS`."""
    p = sub.add_parser("reproduce", help="reproduce published results (qlib-csi300, graph-crypto, paper)")
    rsub = p.add_subparsers(dest="reproduce_target", metavar="TARGET")
    for ref in REPRODUCTIONS:
        mod, _, fn = ref.partition(":")
        getattr(importlib.import_module(mod), fn)(rsub)

    def _help(_: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=_help, no_run_folder=True)
