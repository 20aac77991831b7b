"""v2 end to end on real data: 30 days of 10 Binance pairs replayed hour by hour with the shipped configuration
(hybrid model trained on the 90-day warm-up only, live graph written to the store, max-Sharpe, execution by size);
trades happen, and the journal and the graph store hold them."""

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from graphwiz_trader.config import load_config
from graphwiz_trader.data.sources import load_universe
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.strategies.session import cost_model, replay_summary, run_strategy
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.graph_mirror import GraphMirror
from graphwiz_trader.trading.journal import TradeJournal

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "binance_spot_2020_2024" / "1h"
PAIRS = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "SOL/USDT", "DOGE/USDT", "LTC/USDT",
         "LINK/USDT", "AVAX/USDT"]
START, END = pd.Timestamp("2023-09-01", tz="UTC"), pd.Timestamp("2023-09-30 23:00", tz="UTC")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not REAL.is_dir(), reason=f"real Binance data not found at {REAL}")]


def test_thirty_days_of_ten_real_pairs_trade_and_the_journal_and_graph_hold_the_trades(tmp_path):
    from graphwiz_trader.graph.store import GraphStore

    cfg = load_config(ROOT / "config" / "trading_config.yaml", env={})
    graph = cfg.graph.model_copy(update={"data_dir": tmp_path / "graph", "uri": None})
    cfg = cfg.model_copy(update={"graph": graph,
                                 "qlib": cfg.qlib.model_copy(update={"provider_uri": tmp_path / "qlib"}),
                                 "strategy": cfg.strategy.model_copy(update={"symbols": tuple(PAIRS)})})
    warm = cfg.strategy.train_window_bars + 10
    bars = load_universe(REAL, "freqtrade", "1h", PAIRS, START - pd.Timedelta(hours=warm), END).bars
    engine = ReplayEngine(bars, start=START, end=END, costs=cost_model(cfg.execution),
                          max_participation=cfg.execution.max_participation,
                          initial_cash_quote=cfg.strategy.initial_capital_quote)
    journal = TradeJournal.open(tmp_path / "journal.sqlite")
    store = GraphStore.connect(graph)
    try:
        s = create_qlib_strategy_v2(engine, PAIRS, settings=cfg, journal=journal, run_id="real30",
                                    graph_store=store, model_dir=tmp_path / "models")
        s.mirror = GraphMirror(journal, store, build=lambda: s.graph.build_ids[-1] if s.graph.build_ids else None)
        run = asyncio.run(run_strategy(s))
        summary = replay_summary(s, run, bars)
        cycles = run["cycles"]
        assert len(cycles) == 30 * 24 and cycles.index[0] == START
        # a cycle is skipped only for a stated reason (a breaker, stale data), never silently
        skipped = cycles[cycles["status"] != "ok"]
        assert skipped["halted"].all() or not len(skipped)
        fills = journal.fills_frame("real30")
        assert summary["counts"]["orders"] > 20 and len(fills) > 20
        assert (fills["ts_utc"] > fills["cycle"].map(lambda c: cycles.index[c])).all()   # filled after the decision
        mv = journal.model_versions_frame("real30")
        assert pd.Timestamp(mv["version"].iloc[0].split("-")[1]) < START.tz_localize(None)   # trained before START
        # the live graph: one snapshot per 24 bars written, each its own build
        assert len(s.graph.build_ids) in (30, 31)
        # the mirror: every journaled fill is a Trade of the run, linked to its asset
        n_trades = store.query("MATCH (t:Trade {run: $run})-[:OF]->(:Asset) RETURN count(t) AS n", run="real30")[0]["n"]
        assert n_trades == len(fills)
        n_signals = store.query("MATCH (g:Signal {run: $run})-[:FOR]->(:Asset) RETURN count(g) AS n", run="real30")[0]["n"]
        assert n_signals == len(journal.signals_frame("real30"))
        print(summary["strategy_metrics"], summary.get("equal_weight_metrics"), summary["counts"],
              summary.get("cycle_seconds"))
    finally:
        store.close()
        journal.close()
