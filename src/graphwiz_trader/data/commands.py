"""``graphwiz data ...``: download, import, validate, to-qlib; ``graphwiz cache ...``: info, clean."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

from graphwiz_trader.config.loader import load_config_or_default
from graphwiz_trader.core.commandline import add_config_option, add_json_option, add_source_options
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.core.cli_types import (
    non_negative_float_arg,
    positive_float_arg,
    qlib_freq_arg,
    symbols_arg,
    timeframe_arg,
    utc_arg,
)
from graphwiz_trader.core.symbols import parse_symbols
from graphwiz_trader.data.ccxt_source import CcxtBarSource
from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.sources import SourceOptions, load_universe, read_bars
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.core.timeframes import from_qlib_freq
from graphwiz_trader.data.validate import ValidationReport, sort_and_dedupe, validate_bars
from graphwiz_trader.errors import DataError
from graphwiz_trader.core.jsonout import write_json

log = logging.getLogger(__name__)


def settings_from(args: argparse.Namespace) -> TradingSettings:
    """The config named by ``--config``, else ``config/trading_config.yaml`` when present, else defaults."""
    return load_config_or_default(getattr(args, "config", None))


def _store(args: argparse.Namespace) -> ParquetStore:
    return ParquetStore(args.store or settings_from(args).data.store_dir)


def _download(args: argparse.Namespace) -> int:
    cfg = settings_from(args)
    symbols = parse_symbols(args.symbols) or []
    store = _store(args)

    async def run() -> dict[str, int]:
        adapter = CcxtBarSource(args.exchange, cfg.exchanges.get(args.exchange))
        try:
            await adapter.initialize()
            return await adapter.sync_to_store(store, symbols, args.timeframe, args.since)
        finally:
            await adapter.close()

    added = asyncio.run(run())
    for sym, n in added.items():
        print(f"{sym} {args.timeframe}: {n} new candles -> {store.path(sym, args.timeframe)}")
    open_run(args).write_summary({"exchange": args.exchange, "timeframe": args.timeframe, "added": added}, args.json)
    return 0


def _read_for_import(args: argparse.Namespace) -> tuple[dict, ValidationReport, str]:
    """The bars to import, their validation report and where they came from (``--format qlib`` included)."""
    opts = SourceOptions.from_args(args)
    if args.format == "qlib":
        loaded = load_universe(args.source, "qlib", args.timeframe, args.symbols, args.start, args.end,
                               options=opts)
        report = validate_bars(loaded.bars, args.timeframe, calendar=loaded.calendar)
        return loaded.bars, report, loaded.label
    if args.source is None:
        raise DataError(f"--source is required for --format {args.format}")
    bars, report = read_bars(args.source, args.timeframe, args.symbols, fmt=args.format, strict=not args.repair,
                             calendar=opts.calendar, symbol_pattern=opts.symbol_pattern,
                             symbol_column=opts.symbol_column)
    return bars, report, f"{args.format} {args.source}"


def _import(args: argparse.Namespace) -> int:
    store = _store(args)
    bars, report, where = _read_for_import(args)
    print(f"source: {where}; trading calendar {report.calendar}")
    repaired = {}
    if args.repair:
        for sym in list(bars):
            bars[sym], dropped = sort_and_dedupe(bars[sym])
            if dropped:
                repaired[sym] = dropped
        report = validate_bars(bars, args.timeframe, strict=True, calendar=report.calendar)
    rows = {}
    for sym, df in bars.items():
        added, replaced = store.upsert(sym, args.timeframe, df, calendar=report.calendar)
        rows[sym] = {"rows": len(df), "added": added, "replaced": replaced}
        print(f"{sym}: {len(df)} rows ({added} new, {replaced} replaced)"
              + (f", {repaired[sym]} repeated timestamps dropped by --repair" if sym in repaired else ""))
    print(report.summary() if args.verbose_report else f"validation: {'OK' if report.ok else 'ERRORS'}"
          f" ({sum(s.missing_bars for s in report.symbols)} missing bars in total)")
    open_run(args).write_summary({"imported": rows, "repaired": repaired, "validation": report.to_dict()}, args.json)
    return 0


def _validate(args: argparse.Namespace) -> int:
    store = _store(args)
    timeframes = [args.timeframe] if args.timeframe else store.timeframes()
    if not timeframes:
        print(f"store {store.root} is empty")
        return 1
    ok = True
    payload = {}
    for tf in timeframes:
        bars = store.read_many(parse_symbols(args.symbols), tf)
        report = validate_bars(bars, tf, strict=False, calendar=store.calendars(list(bars), tf))
        print(f"== {tf}: {len(bars)} symbols, {report.calendar} calendar ==")
        print(report.summary())
        payload[tf] = report.to_dict()
        ok &= report.ok
    open_run(args).write_summary(payload, args.json)
    if args.strict and not ok:
        print("strict validation failed")
        return 1
    return 0


def _to_qlib(args: argparse.Namespace) -> int:
    store = _store(args)
    freq = args.freq or settings_from(args).qlib.freq
    timeframe = from_qlib_freq(freq)
    bars = store.read_many(parse_symbols(args.symbols), timeframe, args.start, args.end)
    summary = write_qlib_bins(bars, args.out, freq, store.calendars(list(bars), timeframe))
    print(f"Qlib bins: {len(bars)} instruments, {summary['calendar_length']} bars ({summary['start']} .. "
          f"{summary['end']}) at {freq} -> {args.out}; vwap = {summary['vwap']}")
    open_run(args).write_summary(summary, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="download, import, validate market data; write Qlib bins")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", metavar="DIR", help="Parquet store folder (default: data.store_dir of the config)")
        add_config_option(p)
        add_json_option(p)

    p = dsub.add_parser("download", help="fetch candles from an exchange (ccxt), only what the store lacks")
    p.add_argument("--exchange", metavar="ID", default="binance", help="ccxt exchange id")
    p.add_argument("--symbols", metavar="LIST", required=True, type=symbols_arg,
                   help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    p.add_argument("--timeframe", metavar="TF", default="1h", type=timeframe_arg, help="bar size (1m 15m 1h 4h 1d)")
    p.add_argument("--since", metavar="DATE", required=True, type=utc_arg, help="UTC start, e.g. 2024-01-01")
    common(p)
    p.set_defaults(func=_download)

    p = dsub.add_parser("import", help="import freqtrade feather, CSV or Qlib data into the store")
    p.add_argument("--format", choices=["freqtrade", "csv", "qlib"], required=True, help="layout of --source")
    p.add_argument("--source", metavar="DIR",
                   help="folder of <SYMBOL>-<tf>.<ext> files (CSV: also <SYMBOL>.csv, --symbol-pattern, or one "
                        "long file with --symbol-column); Qlib: the data folder (or --provider)")
    p.add_argument("--symbols", metavar="LIST", type=symbols_arg,
                   help="comma-separated, e.g. BTC/USDT or AAPL,MSFT (default: every symbol of the source)")
    p.add_argument("--timeframe", metavar="TF", default="1h", type=timeframe_arg, help="bar size (1m 15m 1h 4h 1d)")
    p.add_argument("--start", metavar="DATE", type=utc_arg, help="first bar, UTC, for --format qlib (default: the data's start)")
    p.add_argument("--end", metavar="DATE", type=utc_arg, help="last bar, UTC, for --format qlib (default: the data's end)")
    add_source_options(p, ("csv", "qlib"))
    p.add_argument("--repair", action="store_true",
                   help="explicitly sort rows and drop repeated timestamps (reported), instead of failing")
    p.add_argument("--verbose-report", action="store_true", help="print the full validation report")
    common(p)
    p.set_defaults(func=_import)

    p = dsub.add_parser("validate", help="check stored bars (duplicates, order, gaps, OHLC, NaNs, jumps)")
    p.add_argument("--timeframe", metavar="TF", type=timeframe_arg, help="only this timeframe (default: all stored)")
    p.add_argument("--symbols", metavar="LIST", type=symbols_arg, help="comma-separated (default: all stored)")
    p.add_argument("--strict", action="store_true", help="exit non-zero when errors are found")
    common(p)
    p.set_defaults(func=_validate)

    p = dsub.add_parser("to-qlib", help="write stored bars as Qlib binary data")
    p.add_argument("--freq", metavar="FREQ", type=qlib_freq_arg,
                   help="Qlib freq: day or <N>min, hourly = 60min (default: qlib.freq of the config, 60min)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the Qlib bins")
    p.add_argument("--symbols", metavar="LIST", type=symbols_arg, help="comma-separated (default: all stored)")
    p.add_argument("--start", metavar="DATE", type=utc_arg, help="first bar, UTC (default: the data's start)")
    p.add_argument("--end", metavar="DATE", type=utc_arg, help="last bar, UTC (default: the data's end)")
    common(p)
    p.set_defaults(func=_to_qlib)
    _register_cache(sub)


def _cache_dirs(args: argparse.Namespace) -> list[Path]:
    return [Path(d) for d in args.dir] if args.dir else [Path(settings_from(args).qlib.provider_uri)]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _cache_info(args: argparse.Namespace) -> int:
    from graphwiz_trader.data.cache import scan_cache

    payload = {}
    for root in _cache_dirs(args):
        entries = scan_cache(root)
        total = sum(e.size_bytes for e in entries)
        print(f"cache {root}: {len(entries)} entries, {_mb(total)} (least recently used first)")
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.last_used))
            print(f"  {e.kind:5s} {_mb(e.size_bytes):>10s}  last used {used} UTC  {e.path}")
        payload[str(root)] = {"entries": len(entries), "size_mb": total / 2**20,
                              "items": [{"path": str(e.path), "kind": e.kind, "size_mb": e.size_bytes / 2**20,
                                         "last_used_epoch_s": e.last_used} for e in entries]}
    write_json(args.json, payload)
    return 0


def _cache_clean(args: argparse.Namespace) -> int:
    """Apply the given bounds (``--older-than``, ``--max-size-mb``), else both bounds of the settings."""
    from graphwiz_trader.data.cache import clean_cache

    if args.older_than is None and args.max_size_mb is None:
        q = settings_from(args).qlib
        max_mb, max_days = q.cache_max_size_mb, q.cache_max_age_days
    else:
        max_mb, max_days = args.max_size_mb, args.older_than
    payload = {}
    for root in _cache_dirs(args):
        report = clean_cache(root, max_mb, max_days, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for ev in report.evicted:
            used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(ev.entry.last_used))
            why = (f"unused for more than {max_days:g} days" if ev.reason == "age"
                   else f"least recently used, cache above {max_mb:g} MB")
            print(f"{verb} {ev.entry.path} ({_mb(ev.entry.size_bytes)}, last used {used} UTC; {why})")
        left = report.size_bytes - (0 if args.dry_run else report.freed_bytes)
        print(f"cache {root}: {report.entries} entries, {_mb(report.size_bytes)}; {verb} {len(report.evicted)} "
              f"({_mb(report.freed_bytes)}){'' if args.dry_run else f', {_mb(left)} left'}")
        payload[str(root)] = report.to_dict()
    write_json(args.json, payload)
    return 0


def _register_cache(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="inspect and bound the feature caches")
    csub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", action="append", metavar="DIR",
                       help="cache folder, repeatable (default: qlib.provider_uri of the config, data/qlib)")
        add_config_option(p)
        add_json_option(p)
        p.set_defaults(no_run_folder=True)

    p = csub.add_parser("info", help="list cache entries (Qlib bins per data slice, Alpha158 frames), size, last use")
    common(p)
    p.set_defaults(func=_cache_info)

    p = csub.add_parser("clean", help="remove cache entries unused for too long, then least recently used ones "
                                      "until the cache fits its size bound")
    p.add_argument("--older-than", type=non_negative_float_arg, metavar="DAYS",
                   help="remove entries unused for more than DAYS days")
    p.add_argument("--max-size-mb", type=positive_float_arg, metavar="N",
                   help="then remove least recently used entries until at most N MB remain (without either "
                        "option: the bounds qlib.cache_max_age_days and qlib.cache_max_size_mb of the config)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    common(p)
    p.set_defaults(func=_cache_clean)
