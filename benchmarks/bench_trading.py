"""Speed and memory of the trading loop: the v2 strategy replayed hour by hour through the ReplayEngine.

Rows (targets from the issue, on the 2-core machine):
  replay, 20 majors, one year hourly (8,760 cycles), v2 with graph, max-Sharpe and TWAP   <= 10 min
  one cycle for 20 symbols (graph update, features, predict, optimise, plan), retraining excluded   <= 2 s at p95
  memory over the cycles: flat, <= 10% RSS growth after the first 500 cycles

The strategy is the shipped configuration (config/trading_config.yaml) with 20 symbols, a one-bar label and a
decision at every bar (every cycle optimises and plans), TWAP execution for every order, breakers wide open (so
the strategy trades all year and no cycle is spared the work), the hybrid model trained on the warm-up before the first cycle (and retrained every
``retrain_interval_hours`` on data up to then), the live graph written to an embedded graph store, the trade journal
in SQLite and its mirror into the store. Same-run peer: the vectorised backtester run on the targets the replay
decided (same bars, costs and capital), and equal weight through it.

Real Binance candles (<repo>/../shared/data/binance_spot_2020_2024/1h, the year ending 2024-05-07) by default;
``--synthetic`` uses the SYNTHETIC market of the same shape. ``--cycles N`` runs fewer cycles and extrapolates the
year from the measured mean cycle (said so in the output). Wall time on a shared machine depends on what else
runs: the load average and this process's CPU seconds are printed beside it.

    python benchmarks/bench_trading.py [--synthetic] [--cycles 8760] [--json runs/bench_trading.json]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "binance_spot_2020_2024"
MAJORS = ("BTC", "ETH", "BNB", "XRP", "ADA", "DOGE", "LTC", "LINK", "TRX", "BCH", "ETC", "EOS", "XLM", "XTZ",
          "ATOM", "ALGO", "FET", "FTM", "HBAR", "STX")
YEAR_END = pd.Timestamp("2024-05-07 23:00", tz="UTC")
YEAR = 8760


def settings_for(symbols: list[str], work: Path):
    from graphwiz_trader.config import load_config

    cfg = load_config(REPO / "config" / "trading_config.yaml", env={})
    return cfg.model_copy(update={
        "graph": cfg.graph.model_copy(update={"data_dir": work / "graph", "uri": None}),
        "qlib": cfg.qlib.model_copy(update={"provider_uri": work / "qlib"}),
        "strategy": cfg.strategy.model_copy(update={"symbols": tuple(symbols), "decision_every_bars": 1,
                                                    "horizon_bars": 1, "optimization_method": "max_sharpe"}),
        "execution": cfg.execution.model_copy(update={"default_strategy": "TWAP", "small_strategy": "TWAP",
                                                      "large_order_adv_fraction": 100.0}),
        # breakers wide open: the strategy keeps trading all year, so every cycle does the full work (a tripped
        # drawdown breaker would leave most cycles without orders or fills and flatter the timing)
        "risk": cfg.risk.model_copy(update={"max_drawdown": 0.9, "daily_loss_limit": 0.5, "min_model_accuracy": None,
                                            "min_model_ic": None, "stop_loss": None}),
    })


def load_bars(synthetic: bool, cycles: int, warmup: int) -> tuple[dict[str, pd.DataFrame], pd.Timestamp, str]:
    if not synthetic and (DATA / "1h").is_dir():
        from graphwiz_trader.data.sources import load_universe

        start = YEAR_END - pd.Timedelta(hours=YEAR - 1)
        end = start + pd.Timedelta(hours=cycles - 1)
        bars = load_universe(DATA, "freqtrade", "1h", [f"{b}/USDT" for b in MAJORS],
                             start - pd.Timedelta(hours=warmup + 24), end).bars
        return bars, start, f"real: {len(bars)} Binance majors, 1h, replay from {start} ({DATA / '1h'})"
    if not synthetic:
        print(f"real hourly data not found at {DATA}; using the SYNTHETIC market (--synthetic)")
    from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market

    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=20, n_clusters=4, n_bars=warmup + 24 + cycles,
                                                          seed=7))
    bars = dict(m.bars)
    start = next(iter(bars.values())).index[warmup + 24]
    return bars, start, f"SYNTHETIC 20 x {warmup + 24 + cycles} hourly bars, replay from {start}"


async def replay(strategy, cycles: int, rss_every: int = 1) -> dict:
    proc = psutil.Process()
    t0, c0 = time.perf_counter(), time.process_time()
    start = await strategy.start()
    t_start = time.perf_counter() - t0
    rows, targets = [], {}
    try:
        for k in range(cycles):
            t = time.perf_counter()
            r = await strategy.run_cycle()
            dt = time.perf_counter() - t
            if r["status"] == "done":
                break
            tm = r.get("timings", {})
            rows.append({"as_of": r["as_of"], "seconds": dt, "retrain": tm.get("retrain", 0.0),
                         "rss_mb": proc.memory_info().rss / 1e6 if k % rss_every == 0 else np.nan,
                         "orders": len(r["orders"]), "fills": r["trades_executed"], "status": r["status"],
                         "equity": r["equity"], "halted": bool(r["risk_state"].get("halted")),
                         **{f"t_{s}": v for s, v in tm.items()}})
            if r["target_weights"]:
                targets[r["as_of"]] = r["target_weights"]
    finally:
        await strategy.close()
    return {"start": start, "start_seconds": t_start, "cycles": pd.DataFrame(rows).set_index("as_of"),
            "targets": pd.DataFrame(targets).T.sort_index(), "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", action="store_true", help="the SYNTHETIC market instead of real Binance bars")
    ap.add_argument("--cycles", type=int, default=YEAR, help="cycles to run (fewer: the year is extrapolated)")
    ap.add_argument("--json", metavar="PATH", default=None, help="write the figures here")
    ap.add_argument("--keep", metavar="DIR", default=None, help="work folder to keep (default: a temp folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from graphwiz_trader.backtest.engine import run_backtest
    from graphwiz_trader.backtest.settings import BacktestSettings
    from graphwiz_trader.graph.pipeline import GraphBuildSettings
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.strategies import create_qlib_strategy_v2
    from graphwiz_trader.strategies.core import warmup_bars_for
    from graphwiz_trader.strategies.session import cost_model, replay_summary
    from graphwiz_trader.trading.engines.replay import ReplayEngine
    from graphwiz_trader.trading.graph_mirror import GraphMirror
    from graphwiz_trader.trading.journal import TradeJournal

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_trading_"))
    work.mkdir(parents=True, exist_ok=True)
    probe = settings_for(["BTC/USDT"], work)
    warmup = warmup_bars_for(probe.strategy, GraphBuildSettings.from_settings(probe.graph))
    bars, start, label = load_bars(args.synthetic, args.cycles, warmup)
    symbols = sorted(bars)
    cfg = settings_for(symbols, work)
    print(label)
    print(f"{len(symbols)} symbols; warm-up {warmup} bars; {args.cycles} cycles; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; {psutil.cpu_count()} CPUs")
    costs = cost_model(cfg.execution)
    engine = ReplayEngine(bars, start=start, costs=costs, max_participation=cfg.execution.max_participation,
                          initial_cash_quote=cfg.strategy.initial_capital_quote)
    journal = TradeJournal.open(work / "journal.sqlite")
    store = GraphStore.connect(cfg.graph)
    try:
        s = create_qlib_strategy_v2(engine, symbols, settings=cfg, journal=journal, run_id="bench",
                                    graph_store=store, model_dir=work / "models")
        s.mirror = GraphMirror(journal, store, build=lambda: s.graph.build_ids[-1] if s.graph.build_ids else None)
        out = asyncio.run(replay(s, args.cycles))
        cyc = out["cycles"]
        summary = replay_summary(s, {"start": out["start"], "cycles": cyc, "seconds": out["wall"]}, bars)
    finally:
        store.close()
        journal.close()
    n = len(cyc)
    cyc.to_parquet(work / "cycles.parquet")
    print(f"per-cycle seconds, stages and RSS: {work / 'cycles.parquet'}")
    retrain = cyc["retrain"] > 0
    per = cyc.loc[~retrain, "seconds"]
    p95 = float(per.quantile(0.95))
    loop = float(cyc["seconds"].sum())
    mean_cycle = float(cyc["seconds"].mean())
    # a full year: the start, the cycles without retraining, and the retrainings due in a year (each as long as
    # those measured, or as the model's training in start() when none fell into the cycles run)
    hours = cfg.strategy.retrain_interval_hours
    due = int((YEAR - 1) // hours) if hours else 0
    t_retrain = (float(cyc.loc[retrain, "retrain"].mean()) if retrain.any()
                 else float(out["start"]["timings"].get("model", 0.0)))
    mean_plain = float(per.mean())
    est_year = (out["start_seconds"] + loop if n >= YEAR
                else out["start_seconds"] + mean_plain * YEAR + due * t_retrain)
    rss = cyc["rss_mb"].dropna()
    growth = None
    if n > 600:
        base = float(rss.iloc[:520].iloc[480:].median())
        late = float(rss.iloc[-50:].median())
        growth = late / base - 1.0
    t_bt = time.perf_counter()
    tg = out["targets"]
    bt = BacktestSettings(initial_capital=cfg.strategy.initial_capital_quote, costs=costs, rebalance=1)
    res = run_backtest(bars, tg, bt)
    t_bt = time.perf_counter() - t_bt
    stages = {c[2:]: float(cyc.loc[~retrain, c].mean()) for c in cyc.columns if c.startswith("t_") and c != "t_total"}
    rows = [
        ("replay, one year hourly (8,760 cycles)" + (" [extrapolated]" if n < YEAR else ""), est_year, 600.0),
        ("one cycle, p95 (retraining excluded)", p95, 2.0),
    ]
    print(f"\nstart (history, graph warm-up, model training): {out['start_seconds']:.1f} s; "
          f"{n} cycles in {loop:.1f} s (mean {mean_cycle:.3f} s, p50 {float(per.median()):.3f} s, p95 {p95:.3f} s); "
          f"{int(retrain.sum())} retrainings, {float(cyc.loc[retrain, 'retrain'].sum()):.1f} s; CPU {out['cpu']:.1f} s")
    if n < YEAR:
        print(f"year extrapolated: start {out['start_seconds']:.1f} s + {YEAR} x {mean_plain:.4f} s + {due} retrainings "
              f"x {t_retrain:.1f} s")
    print("mean seconds per stage (retraining excluded): " + ", ".join(f"{k} {v:.4f}" for k, v in stages.items()))
    for what, sec, target in rows:
        print(f"  {what:<60s} {sec:9.2f} s  target <= {target:g} s  {'ok' if sec <= target else 'NOT MET'}")
    if growth is not None:
        print(f"  memory: RSS {float(rss.iloc[500]):.0f} MB at cycle 500, {float(rss.iloc[-1]):.0f} MB at the end "
              f"({100 * growth:+.1f}%; target <= +10%) {'ok' if growth <= 0.10 else 'NOT MET'}")
    else:
        print(f"  memory: {n} cycles is too few to measure growth after the first 500")
    print(f"  peer: the vectorised backtest of the same {len(tg)} target rows takes {t_bt:.2f} s; the replay loop "
          f"is {loop / max(t_bt, 1e-9):.0f}x that (per cycle it also builds the graph, features and scores, "
          "optimises, checks risk and journals)")
    sm, ew = summary.get("strategy_metrics", {}), summary.get("equal_weight_metrics", {})
    print(f"  replay: equity {sm.get('final_equity', float('nan')):.2f}, Sharpe {sm.get('sharpe', float('nan')):.2f} "
          f"[{sm.get('sharpe_ci_low', float('nan')):.2f}, {sm.get('sharpe_ci_high', float('nan')):.2f}]; equal weight "
          f"{ew.get('final_equity', float('nan')):.2f}, Sharpe {ew.get('sharpe', float('nan')):.2f}; the backtester on "
          f"the replay's targets (each filled whole at the next open, no TWAP smoothing): equity "
          f"{float(res.equity.iloc[-1]):.2f}")
    print(f"  counts: {summary.get('counts')}")
    payload = {"label": label, "symbols": symbols, "cycles": n, "start_seconds": out["start_seconds"],
               "loop_seconds": loop, "mean_cycle_seconds": mean_cycle, "p50_cycle_seconds": float(per.median()),
               "p95_cycle_seconds": p95, "estimated_year_seconds": est_year, "extrapolated": n < YEAR,
               "retrainings": int(retrain.sum()), "retrainings_per_year": due, "retrain_seconds_each": t_retrain, "retrain_seconds": float(cyc.loc[retrain, "retrain"].sum()),
               "stage_means": stages, "rss_growth_after_500": growth, "cpu_seconds": out["cpu"],
               "load_average": os.getloadavg(), "peer_backtest_seconds": t_bt, "summary": summary,
               "backtest_of_targets_final_equity": float(res.equity.iloc[-1])}
    if args.json:
        from graphwiz_trader.core.jsonout import write_json

        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
