"""``graphwiz features``: Alpha158 (+ extras) for symbols from files, the store or the synthetic market."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from graphwiz_trader.data.qlib_bins import prepare_qlib_dir
from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.core.timeframes import to_qlib_freq
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor
from graphwiz_trader.jsonout import write_json


def _features(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    bars, label = load_bars(args.source, args.format, args.timeframe, args.symbols, args.start, args.end)
    print(f"data: {label}: {len(bars)} symbols")
    freq = to_qlib_freq(args.timeframe)
    qdir = prepare_qlib_dir(bars, args.qlib_dir, freq)
    extractor = AlphaFeatureExtractor(qdir, freq=freq, extras={} if args.no_extras else None,
                                      mlflow_dir=Path(args.qlib_dir) / "mlruns")
    frame = extractor.extract(list(bars))
    n_alpha = frame.shape[1]
    if args.graph:
        from graphwiz_trader.features.graph_pipeline import graph_features_for_bars

        frame = frame.join(graph_features_for_bars(bars, window=args.graph_window, stride=args.graph_stride),
                           how="left")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out)
    secs = time.perf_counter() - t0
    print(f"features: {frame.shape[0]} rows x {frame.shape[1]} columns ({n_alpha} Alpha158+extras"
          f"{', ' + str(frame.shape[1] - n_alpha) + ' graph' if args.graph else ''}) -> {out} "
          f"in {secs:.1f}s{' (Alpha158 from cache)' if extractor.last_from_cache else ''}")
    write_json(args.json, {"rows": frame.shape[0], "columns": list(frame.columns), "seconds": secs,
                           "from_cache": extractor.last_from_cache, "data": label, "out": str(out)})
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="Alpha158 + extra expressions (and graph features with --graph)")
    p.add_argument("--source", help="folder of files (freqtrade/csv) or store folder")
    p.add_argument("--format", choices=["freqtrade", "csv", "store", "synthetic"], default="freqtrade")
    p.add_argument("--timeframe", default="1h")
    p.add_argument("--symbols", help="comma-separated (default: all)")
    p.add_argument("--start", help="UTC start")
    p.add_argument("--end", help="UTC end")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.add_argument("--qlib-dir", default="data/qlib", help="where Qlib bins are written (content-addressed)")
    p.add_argument("--no-extras", action="store_true", help="plain Alpha158 (158 columns)")
    p.add_argument("--graph", action="store_true",
                   help="append point-in-time graph features read back from the graph store")
    p.add_argument("--graph-window", type=int, default=720, help="bars per correlation window")
    p.add_argument("--graph-stride", type=int, default=24, help="bars between snapshots")
    p.add_argument("--json", metavar="PATH", help="write figures as JSON")
    p.set_defaults(func=_features)
