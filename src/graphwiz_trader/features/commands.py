"""``graphwiz features``: Alpha158 (+ extras) for symbols from files, the store or the synthetic market."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from graphwiz_trader.config.loader import load_config_or_default
from graphwiz_trader.core.commandline import (
    add_config_option,
    add_data_options,
    add_json_option,
    resolve_format,
)
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.core.timeframes import to_qlib_freq
from graphwiz_trader.core.utc import to_utc
from graphwiz_trader.data.qlib_bins import prepare_qlib_dir
from graphwiz_trader.data.sources import LoadedBars, SourceOptions, load_universe
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor


def _features(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    warmup = warmup_bars(args) if args.start else 0
    loaded = load_universe(args.source, resolve_format(args), args.timeframe, args.symbols, args.start, args.end,
                           warmup_bars=warmup, options=SourceOptions.from_args(args))
    bars, label = loaded.bars, loaded.label
    print(f"data: {label}: {len(bars)} symbols" + (f" (with up to {warmup} warm-up bars before --start)"
                                                    if warmup else ""))
    freq = to_qlib_freq(args.timeframe)
    qlib = load_config_or_default(args.config).qlib
    qdir = prepare_qlib_dir(bars, args.qlib_dir or qlib.provider_uri, freq, calendar=loaded.calendar)
    extractor = AlphaFeatureExtractor(qdir, freq=freq, extras={} if args.no_extras else None,
                                      mlflow_dir=args.mlflow_dir or qlib.mlflow_dir)
    frame = extractor.extract(list(bars))
    n_alpha = frame.shape[1]
    members = _members(loaded)
    if args.graph:
        frame = frame.join(_graph_columns(args, bars, members), how="left")
    if members is not None:
        frame = members_only(frame, members)
    if args.start:
        lo = to_utc(args.start, "--start").tz_localize(None)      # the frame's times are tz-naive UTC
        frame = frame[frame.index.get_level_values("datetime") >= lo]
    out = open_run(args).write_frame("features", frame)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(out)
    secs = time.perf_counter() - t0
    print(f"features: {frame.shape[0]} rows x {frame.shape[1]} columns ({n_alpha} Alpha158+extras"
          f"{', ' + str(frame.shape[1] - n_alpha) + ' graph' if args.graph else ''}) -> {out} "
          f"in {secs:.1f}s{' (Alpha158 from cache)' if extractor.last_from_cache else ''}")
    open_run(args).write_summary({"rows": frame.shape[0], "columns": list(frame.columns), "seconds": secs,
                           "from_cache": extractor.last_from_cache, "data": label, "out": str(out)}, args.json)
    return 0


def _members(loaded: LoadedBars) -> pd.DataFrame | None:
    """The point-in-time membership mask (bar times x symbols) of an index universe, or None for a fixed one."""
    if loaded.membership is None:
        return None
    from graphwiz_trader.data.universe import membership_mask

    times = pd.DatetimeIndex(sorted(set().union(*(df.index for df in loaded.bars.values()))))
    return membership_mask(loaded.membership, times, list(loaded.bars))


def _graph_columns(args: argparse.Namespace, bars: dict[str, pd.DataFrame], members: pd.DataFrame | None) -> pd.DataFrame:
    """Graph features read back from the store; on an index universe, a node only while it is a member."""
    from graphwiz_trader.features.graph_pipeline import graph_features_for_bars, graph_features_for_panel

    if members is None:
        return graph_features_for_bars(bars, window=args.graph_window, stride=args.graph_stride)
    from graphwiz_trader.graph.builders.panel import close_panel
    from graphwiz_trader.graph.pipeline import GraphBuildSettings

    given = {"window": args.graph_window, "stride": args.graph_stride}
    spec = GraphBuildSettings.from_settings(load_config_or_default(args.config).graph, exchange=args.market or "qlib",
                                            **{k: v for k, v in given.items() if v is not None})
    return graph_features_for_panel(close_panel(bars), spec, members)


def members_only(frame: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Rows of a ``(datetime, instrument)`` frame (tz-naive UTC times) where the instrument is a member then."""
    m = members.copy()
    m.index = pd.DatetimeIndex(m.index).tz_convert(None)
    stacked = m.stack()
    keep = stacked.reindex(frame.index, fill_value=False).to_numpy(dtype=bool)
    return frame[keep]


def warmup_bars(args: argparse.Namespace) -> int:
    """Bars loaded before ``--start``: Alpha158's look-back + 1; with ``--graph`` also the correlation window + 1
    and the regime model's first fit (``min_train`` + 2). The rows before ``--start`` are inputs only: the frame
    written starts at ``--start`` (end rule: ``--end`` inclusive, as everywhere)."""
    from graphwiz_trader.features.pipeline import feature_warmup_bars

    window = (args.graph_window or load_config_or_default(args.config).graph.corr_window) if args.graph else None
    return feature_warmup_bars(args.timeframe, window)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="Alpha158 + extra expressions (and graph features with --graph)",
                       description="Qlib's Alpha158 (plus four extra expressions) for every bar of the chosen "
                                   "symbols; the frame goes to features.parquet in the run folder.")
    add_data_options(p)
    p.add_argument("--out", metavar="PATH", help="also write the feature frame to this Parquet file")
    p.add_argument("--qlib-dir", metavar="DIR",
                   help="where Qlib bins are written, content-addressed and reused (default: qlib.provider_uri)")
    p.add_argument("--mlflow-dir", metavar="DIR",
                   help="the mlflow store Qlib records into (default: qlib.mlflow_dir, else runs/mlruns)")
    add_config_option(p)
    p.add_argument("--no-extras", action="store_true", help="plain Alpha158 (158 columns)")
    p.add_argument("--graph", action="store_true",
                   help="append point-in-time graph features read back from the graph store")
    from graphwiz_trader.config.settings import GraphSettings

    d = GraphSettings()  # the one source of the graph defaults
    p.add_argument("--graph-window", type=int, help=f"bars per correlation window (default: graph.corr_window, "
                   f"{d.corr_window})")
    p.add_argument("--graph-stride", type=int, help=f"bars between snapshots (default: graph.corr_stride, "
                   f"{d.corr_stride})")
    add_json_option(p)
    p.set_defaults(func=_features)
