"""Speed of the backtester and of the walk-forward max-Sharpe optimiser.

Rows (targets from the issue):
  backtest alone: 46 pairs x 35k hourly bars, hourly rebalancing with costs   <= 2 s
  daily max-Sharpe over 4 years of 20 assets                                  <= 30 s

Uses the real Binance candles in <repo>/../shared/data/binance_spot_2020_2024 when present (says so),
else synthetic bars of the same shape (says so). Prints wall seconds (best of --repeat for the
backtest), CPU seconds of this process and the machine's load average, because wall time on a
shared machine depends on what else runs.

    python benchmarks/bench_backtest.py [--json runs/bench_backtest.json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.backtest import BacktestSettings, MarketPanel, run_backtest
from graphwiz_trader.backtest.runner import trim_to_common_end
from graphwiz_trader.data.sources import load_universe
from graphwiz_trader.backtest.scores import cross_sectional_reversal
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.core.jsonout import write_json
from graphwiz_trader.portfolio import OptimiserSettings, PortfolioConstraints, rolling_optimise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "binance_spot_2020_2024"
MAJORS = ("BTC", "ETH", "BNB", "XRP", "ADA", "DOGE", "LTC", "LINK", "TRX", "BCH", "ETC", "EOS", "XLM", "XTZ",
          "ATOM", "ALGO", "FET", "FTM", "HBAR", "STX")


def _timed(fn, repeat: int = 1):
    best, out, cpu = float("inf"), None, 0.0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        cpu = time.process_time() - c
    return best, cpu, out


def hourly_bars(data: Path | None) -> tuple[dict[str, pd.DataFrame], str]:
    if data is not None and (data / "1h").is_dir():
        bars = trim_to_common_end(load_universe(data, "freqtrade", "1h").bars)
        return bars, f"real: {len(bars)} Binance pairs, 1h, from {data / '1h'}"
    print(f"real hourly data not found at {data}; using synthetic bars of the same shape (46 x 35,000)")
    m = generate_synthetic_market(n_assets=46, n_bars=35_000, seed=7)
    return dict(m.bars), "SYNTHETIC 46 x 35,000 hourly bars"


def daily_bars(data: Path | None) -> tuple[dict[str, pd.DataFrame], str]:
    if data is not None and (data / "1d").is_dir():
        bars = load_universe(data, "freqtrade", "1d", [f"{b}/USDT" for b in MAJORS], start="2020-05-11",
                             end="2024-05-10").bars
        return bars, f"real: {len(bars)} Binance majors, 1d, 2020-05-11..2024-05-10, from {data / '1d'}"
    print(f"real daily data not found at {data}; using synthetic bars of the same shape (20 x 1,461)")
    m = generate_synthetic_market(n_assets=20, n_bars=1461, timeframe="1d", seed=7)
    return dict(m.bars), "SYNTHETIC 20 x 1,461 daily bars"


def bench_backtest(bars: dict[str, pd.DataFrame], repeat: int) -> dict[str, object]:
    panel = MarketPanel.from_bars(bars)
    # random long-only targets on the listed pairs, re-drawn every hour around equal weight
    # (log-normal tilts, sd 0.05), so every pair trades every hour without costs eating the book
    rng = np.random.default_rng(0)
    listed = np.isfinite(panel.close)
    w = np.exp(0.05 * rng.standard_normal(panel.close.shape)) * listed
    w = w / w.sum(axis=1, keepdims=True).clip(1e-12) * 0.98
    targets = pd.DataFrame(w, index=panel.index, columns=list(panel.symbols))
    # default costs: 10 bps taker, 1 bp half-spread, 2 bps slippage, sqrt impact, 10 USDT minimum order
    settings = BacktestSettings(rebalance=1, initial_capital=1_000_000.0)
    wall, cpu, res = _timed(lambda: run_backtest(bars, targets, settings), repeat)
    wall_engine, cpu_engine, _ = _timed(lambda: run_backtest(panel, targets, settings), repeat)
    fills = int(np.count_nonzero(res.trade_units.to_numpy()))
    return {"seconds": wall, "cpu_seconds": cpu, "engine_only_seconds": wall_engine, "engine_only_cpu_seconds":
            cpu_engine, "bars": len(panel.index), "pairs": len(panel.symbols), "fills": fills,
            "target_seconds": 2.0}


MAX_SHARPE_TARGET_S = 2.0  # issue 12


def max_sharpe_setup(bars: dict[str, pd.DataFrame]) -> tuple[MarketPanel, pd.DataFrame, pd.DataFrame,
                                                             OptimiserSettings, PortfolioConstraints]:
    """The daily max-Sharpe row's inputs (also bench_portfolio.py's): panel, closes, reversal scores, the
    optimiser (Ledoit-Wolf over 60 days) and the caps."""
    panel = MarketPanel.from_bars(bars)
    close = panel.close_frame()
    scores = cross_sectional_reversal(close, 1)
    settings = OptimiserSettings(method="max_sharpe", cov_window_bars=60, periods_per_year=365.0)
    cons = PortfolioConstraints(max_position_weight=0.25, cash_buffer=0.02)
    return panel, close, scores, settings, cons


def bench_max_sharpe(bars: dict[str, pd.DataFrame]) -> dict[str, object]:
    panel, close, scores, settings, cons = max_sharpe_setup(bars)

    def run():
        rolled = rolling_optimise(close, close.index, scores, settings, cons)
        return rolled, run_backtest(panel, rolled.weights, BacktestSettings(periods_per_year=365.0))

    wall, cpu, (rolled, res) = _timed(run)
    return {"seconds": wall, "cpu_seconds": cpu, "decisions": len(rolled.weights), "assets": len(panel.symbols),
            "days": len(panel.index), "fallbacks": rolled.fallback_counts(),
            "sharpe_net_of_costs": res.metrics()["sharpe"], "target_seconds": MAX_SHARPE_TARGET_S}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder with 1h/ and 1d/ freqtrade candles")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the backtest row")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = args.data if args.data.is_dir() else None

    hb, hlabel = hourly_bars(data)
    bt = bench_backtest(hb, args.repeat)
    print(f"backtest alone: {bt['pairs']} pairs x {bt['bars']} hourly bars, hourly rebalancing with costs "
          f"({hlabel}): {bt['seconds']:.2f} s wall (engine only {bt['engine_only_seconds']:.2f} s), "
          f"{bt['cpu_seconds']:.2f} s CPU, {bt['fills']} fills  [target <= 2 s]")
    db, dlabel = daily_bars(data)
    ms = bench_max_sharpe(db)
    print(f"daily max-Sharpe over 4 years of {ms['assets']} assets ({dlabel}): {ms['seconds']:.2f} s wall, "
          f"{ms['cpu_seconds']:.2f} s CPU, {ms['decisions']} decisions (Ledoit-Wolf 60 days, reversal scores) "
          f"[target <= {MAX_SHARPE_TARGET_S:g} s; benchmarks/bench_portfolio.py compares it with PyPortfolioOpt "
          f"per decision]")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    write_json(args.json, {"benchmark": "bench_backtest", "python": sys.version.split()[0],
                           "machine": platform.platform(), "cpus": os.cpu_count(), "load_average": list(load),
                           "rows": {"backtest_46x35k_hourly": {**bt, "data": hlabel},
                                    "daily_max_sharpe_4y_20": {**ms, "data": dlabel}}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
