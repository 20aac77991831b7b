"""``graphwiz paper`` and ``graphwiz live``: the v2 strategy of ``--config`` on the replay, paper or live engine.

- ``graphwiz paper --config C --replay DIR [--start --end] [--cycles N] [--json PATH]``: offline replay of the bars
  in DIR (``--synthetic``: the SYNTHETIC market), fills from the following bars with the backtester's costs; prints
  and writes the replay summary beside equal weight;
- ``graphwiz paper --config C``: live bars from the exchange, simulated fills (state persisted, resumable);
- ``graphwiz live --config C [--sandbox]``: real orders through ccxt; refuses to start without keys, and refuses
  real money unless ``--confirm-real-money`` is given.

Every run journals to ``journal.sqlite`` in its run folder (``--journal`` for another file or a PostgreSQL URL;
``--run-id`` to resume a run); ``graphwiz trading status|pause|resume|kill`` act on it from another shell.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.core.commandline import add_config_option, add_json_option, add_run_dir_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run
from graphwiz_trader.errors import ConfigError

log = logging.getLogger(__name__)

PAPER_HELP = "paper trading: replay history (--replay DIR) or live bars with simulated fills"
LIVE_HELP = "live trading through ccxt (--sandbox, or real money with --confirm-real-money)"


def _settings(args: argparse.Namespace) -> Any:
    from graphwiz_trader.strategies.factory import resolve_settings

    return resolve_settings(None, args.config or "config/trading_config.yaml")


def _journal(args: argparse.Namespace, folder: Any) -> Any:
    from graphwiz_trader.trading.journal import TradeJournal

    return TradeJournal.open(args.journal or folder.file("journal.sqlite"))


def _run_id(args: argparse.Namespace, folder: Any, prefix: str) -> str:
    return args.run_id or f"{prefix}-{folder.path.name}"


def _graph_store(args: argparse.Namespace, settings: Any) -> Any:
    """The graph store to write the live graph and the mirror to, or False (``--no-graph-store``, no graph)."""
    if args.no_graph_store or not settings.strategy.use_graph_features:
        return False
    from graphwiz_trader.graph.store import GraphStore

    return GraphStore.connect(settings.graph)


def _strategy(engine: Any, symbols: list[str], settings: Any, args: argparse.Namespace, journal: Any, run_id: str,
              folder: Any, scores: pd.DataFrame | None = None) -> Any:
    from graphwiz_trader.strategies.factory import create_qlib_strategy_v2
    from graphwiz_trader.trading.graph_mirror import GraphMirror

    store = _graph_store(args, settings)
    s = create_qlib_strategy_v2(engine, symbols, settings=settings, journal=journal, run_id=run_id, scores=scores,
                                graph_store=store, model_dir=folder.path / "models")
    if store is not False and s.graph is not None:
        g = s.graph
        s.mirror = GraphMirror(journal, store, build=lambda: g.build_ids[-1] if g.build_ids else None)
    return s


def _close_store(strategy: Any) -> None:
    store = getattr(strategy.graph, "store", None) if strategy.graph is not None else None
    if store is not None:
        store.close()


def _replay_bars(args: argparse.Namespace, settings: Any, warmup: int) -> tuple[dict[str, pd.DataFrame], str]:
    from graphwiz_trader.core.timeframes import timeframe_delta
    from graphwiz_trader.data.sources import load_universe

    tf = settings.strategy.timeframe
    bar = timeframe_delta(tf)
    symbols = args.symbols or list(settings.strategy.symbols)
    if args.synthetic:
        from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market

        n = max(args.cycles or 24 * 30, 1) + warmup + 2
        m = generate_synthetic_market(SyntheticMarketSettings(n_assets=args.synthetic_assets, n_bars=n, timeframe=tf,
                                                              seed=args.seed))
        return dict(m.bars), m.label
    first = args.start - (warmup + 2) * bar if args.start is not None else None
    loaded = load_universe(args.replay, args.format, tf, symbols, first, args.end)
    label = f"REAL DATA: {len(loaded.bars)} pairs, {tf} bars from {args.replay}"
    return loaded.bars, label


def _paper(args: argparse.Namespace) -> int:
    from graphwiz_trader.strategies.session import replay_engine, replay_summary, run_strategy

    settings = _settings(args)
    folder = open_run(args)
    folder.write_config(settings)
    journal = _journal(args, folder)
    try:
        if args.replay is None and not args.synthetic:
            return _paper_live(args, settings, folder, journal)
        if args.replay is not None and args.synthetic:
            raise ConfigError("give --replay DIR or --synthetic, not both")
        from graphwiz_trader.graph.pipeline import GraphBuildSettings
        from graphwiz_trader.strategies.core import warmup_bars_for
        run_id = _run_id(args, folder, "replay")
        spec = GraphBuildSettings.from_settings(settings.graph) if settings.strategy.use_graph_features else None
        warmup = warmup_bars_for(settings.strategy, spec, 1 if args.scores else None)
        bars, label = _replay_bars(args, settings, warmup)
        symbols = sorted(bars)
        idx = pd.DatetimeIndex(sorted(set().union(*[df.index for df in bars.values()])))
        start = args.start if args.start is not None else (idx[min(warmup, len(idx) - 1)] if len(idx) else None)
        engine = replay_engine(settings, bars, start, args.end)
        scores = None
        if args.scores:
            from graphwiz_trader.backtest.scores import read_score_file

            scores = _score_panel(read_score_file(args.scores), symbols, args.score_column)
        strategy = _strategy(engine, symbols, settings, args, journal, run_id, folder, scores)
        print(label)
        try:
            run = asyncio.run(run_strategy(strategy, args.cycles, progress=progress_enabled()))
            summary = replay_summary(strategy, run, bars)
        finally:
            _close_store(strategy)
        if len(run["cycles"]):
            folder.write_frame("cycles", run["cycles"])
        _print_summary(summary)
        folder.write_summary({"config": str(args.config), "data": label, "journal": str(args.journal or
                              folder.path / "journal.sqlite"), **summary}, args.json)
        print(f"run folder: {folder.path}")
        return 0
    finally:
        journal.close()


def _score_panel(panel: pd.DataFrame, symbols: list[str], column: str | None) -> pd.DataFrame:
    """A ``(datetime, instrument)`` score file as a ``datetime x symbol`` panel of the replayed symbols."""
    from graphwiz_trader.core.symbols import to_qlib_instrument

    cols = [c for c in panel.columns if c != "fold"]
    col = column or (cols[0] if len(cols) == 1 else None)
    if col is None or col not in panel.columns:
        raise ConfigError(f"--score-column must name one of {', '.join(map(str, cols))}")
    wide = panel[col].unstack("instrument")
    by_code = {to_qlib_instrument(s): s for s in symbols}
    wide = wide[[c for c in wide.columns if c in by_code]].rename(columns=by_code)
    idx = pd.DatetimeIndex(wide.index)
    wide.index = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return wide


def _paper_live(args: argparse.Namespace, settings: Any, folder: Any, journal: Any) -> int:
    from graphwiz_trader.strategies.session import cost_model, run_strategy
    from graphwiz_trader.trading.engines.paper import PaperTradingEngine

    exchange_id, ex = _exchange(settings, args.exchange)
    symbols = args.symbols or list(settings.strategy.symbols)
    run_id = _run_id(args, folder, "paper")
    engine = PaperTradingEngine(symbols, state_path=args.state or folder.file("paper_state.json"),
                                exchange_id=exchange_id, settings=ex, timeframe=settings.strategy.timeframe,
                                initial_cash_quote=settings.strategy.initial_capital_quote,
                                costs=cost_model(settings.execution),
                                max_participation=settings.execution.max_participation,
                                ppo_model=str(settings.execution.ppo_model) if settings.execution.ppo_model else None)
    strategy = _strategy(engine, symbols, settings, args, journal, run_id, folder)
    print(f"paper trading {', '.join(symbols)} on live {exchange_id} bars, run {run_id} (Ctrl-C stops; "
          f"resume with --run-id {run_id} --journal {args.journal or folder.path / 'journal.sqlite'})")
    try:
        run = asyncio.run(run_strategy(strategy, args.cycles))
    finally:
        _close_store(strategy)
    folder.write_summary({"run_id": run_id, "engine": "paper", "cycles": len(run["cycles"]),
                          "stats": strategy.stats}, args.json)
    return 0


def _exchange(settings: Any, name: str | None) -> tuple[str, Any]:
    names = list(settings.exchanges)
    exchange_id = name or (names[0] if names else None)
    if exchange_id is None or exchange_id not in settings.exchanges:
        raise ConfigError(f"exchange {exchange_id!r} is not configured under exchanges: (configured: "
                          f"{', '.join(names) or 'none'})")
    return exchange_id, settings.exchanges[exchange_id]


def check_live_allowed(ex: Any, exchange_id: str, sandbox: bool, confirm_real_money: bool) -> None:
    """Refuse live trading without keys, and real money without the explicit confirmation flag."""
    if ex.api_key is None or ex.secret is None:
        raise ConfigError(f"live trading needs exchanges.{exchange_id}.api_key and secret; set them from the "
                          f"environment (e.g. {exchange_id.upper()}_API_KEY / {exchange_id.upper()}_API_SECRET in "
                          f".env); nothing was started")
    if not sandbox and not confirm_real_money:
        raise ConfigError(f"refusing to trade real money on {exchange_id}: pass --sandbox for the testnet, or "
                          "--confirm-real-money to accept that real orders will be sent")


def _live(args: argparse.Namespace) -> int:
    from graphwiz_trader.strategies.session import run_strategy
    from graphwiz_trader.trading.engines.live import LiveTradingEngine

    settings = _settings(args)
    exchange_id, ex = _exchange(settings, args.exchange)
    sandbox = bool(args.sandbox or ex.sandbox)
    check_live_allowed(ex, exchange_id, sandbox, args.confirm_real_money)
    ex = ex.model_copy(update={"sandbox": sandbox})
    folder = open_run(args)
    folder.write_config(settings)
    journal = _journal(args, folder)
    try:
        symbols = args.symbols or list(settings.strategy.symbols)
        run_id = _run_id(args, folder, "live")
        engine = LiveTradingEngine(symbols, settings=ex, exchange_id=exchange_id,
                                   timeframe=settings.strategy.timeframe, journal=journal, run_id=run_id,
                                   state_path=args.state or folder.file("live_state.json"))
        strategy = _strategy(engine, symbols, settings, args, journal, run_id, folder)
        print(f"LIVE trading {', '.join(symbols)} on {exchange_id} ({'sandbox' if sandbox else 'REAL MONEY'}), "
              f"run {run_id}")
        try:
            run = asyncio.run(run_strategy(strategy, args.cycles))
        finally:
            _close_store(strategy)
        folder.write_summary({"run_id": run_id, "engine": "live", "sandbox": sandbox, "cycles": len(run["cycles"]),
                              "stats": strategy.stats}, args.json)
        return 0
    finally:
        journal.close()


def _print_summary(s: dict[str, Any]) -> None:
    print(f"{s['engine']} run {s['run_id']}: {s['cycles']} cycles"
          + (f" from {s['period']['first_decision']} to {s['period']['last_decision']}" if "period" in s else ""))
    for name in ("strategy_metrics", "equal_weight_metrics"):
        m = s.get(name)
        if m:
            print(f"  {name.replace('_metrics', ''):13s} equity {m['final_equity']:.2f}  return "
                  f"{100 * m.get('total_return', float('nan')):.2f}%  Sharpe {m.get('sharpe', float('nan')):.2f} "
                  f"[{m.get('sharpe_ci_low', float('nan')):.2f}, {m.get('sharpe_ci_high', float('nan')):.2f}]  "
                  f"max DD {100 * m.get('max_drawdown', float('nan')):.1f}%")
    c = s.get("counts", {})
    print(f"  orders {c.get('orders', 0)}, fills {c.get('fills', 0)}, rejected {c.get('rejected', 0)}, breaker "
          f"events {c.get('breaker_events', 0)}, skipped cycles {c.get('skipped_cycles', 0)}, failed attempts "
          f"{c.get('failed_attempts', 0)}")
    if "cycle_seconds" in s:
        print(f"  cycle seconds: p50 {s['cycle_seconds']['p50']:.3f}, p95 {s['cycle_seconds']['p95']:.3f}")


def _common(p: argparse.ArgumentParser) -> None:
    from graphwiz_trader.core.cli_types import symbols_arg

    add_config_option(p)
    p.add_argument("--symbols", metavar="LIST", type=symbols_arg,
                   help="comma-separated, e.g. BTC/USDT,ETH/USDT (default: strategy.symbols of --config)")
    p.add_argument("--cycles", type=int, default=None, help="stop after N cycles (default: run to the end)")
    p.add_argument("--journal", metavar="PATH", default=None,
                   help="trade journal: a SQLite file or a postgresql+psycopg:// URL (default: journal.sqlite in "
                        "the run folder)")
    p.add_argument("--run-id", metavar="ID", default=None,
                   help="run id in the journal; an existing one resumes that run (default: from the run folder)")
    p.add_argument("--exchange", metavar="NAME", default=None,
                   help="exchange of --config's exchanges section (default: the first)")
    p.add_argument("--state", metavar="PATH", default=None,
                   help="engine state file (paper: cash, positions, open orders; live: baseline balances) "
                        "(default: in the run folder)")
    p.add_argument("--no-graph-store", action="store_true",
                   help="build the live graph in memory only (nothing written to the graph store, no mirror)")
    add_run_dir_option(p)
    add_json_option(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``paper`` and ``live`` to the ``graphwiz`` app."""
    from graphwiz_trader.core.cli_types import utc_arg

    p = subparsers.add_parser("paper", help=PAPER_HELP, description=__doc__.split("\n\n")[1] if __doc__ else None)
    _common(p)
    p.add_argument("--replay", metavar="DIR", default=None,
                   help="replay the bars in DIR offline (freqtrade layout unless --format)")
    p.add_argument("--format", choices=["freqtrade", "csv", "store"], default="freqtrade",
                   help="layout of --replay")
    p.add_argument("--synthetic", action="store_true", help="replay the SYNTHETIC market instead of real bars")
    p.add_argument("--synthetic-assets", type=int, default=12, help="symbols of the synthetic market")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic market")
    p.add_argument("--start", metavar="DATE", type=utc_arg, default=None,
                   help="first replayed bar, UTC; the warm-up is loaded before it (default: right after the warm-up)")
    p.add_argument("--end", metavar="DATE", type=utc_arg, default=None,
                   help="last replayed bar, UTC, inclusive (default: the data's end)")
    p.add_argument("--scores", metavar="FILE", type=Path, default=None,
                   help="trade a fixed score panel (predictions.parquet) instead of the model")
    p.add_argument("--score-column", metavar="NAME", default=None,
                   help="column of --scores (default: its only column besides fold)")
    p.set_defaults(func=_paper)

    q = subparsers.add_parser("live", help=LIVE_HELP, description=__doc__.split("\n\n")[1] if __doc__ else None)
    _common(q)
    q.add_argument("--sandbox", action="store_true", help="trade on the exchange's testnet (sandbox keys)")
    q.add_argument("--confirm-real-money", action="store_true",
                   help="required to send real orders with real money (without --sandbox)")
    q.set_defaults(func=_live)
