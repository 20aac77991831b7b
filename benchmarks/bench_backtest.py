"""Speed of the backtester (against vectorbt, in the same run) and of the walk-forward max-Sharpe optimiser.

Rows (targets from issue 12):
  backtest: 46 pairs x 35k hourly bars, hourly rebalancing with costs   no slower than vectorbt
  daily max-Sharpe over 4 years of 20 assets                            <= 2 s

The backtest row also times vectorbt's ``Portfolio.from_orders(size_type="targetpercent")`` on the same
closes, opens and target weights, in its own virtualenv (benchmarks/peers/: vectorbt 1.2.0 needs
pandas >= 3 and numba; built once with python3.11 and cached in benchmarks/peers/.venv-vectorbt), and
prints both times and their ratio. The peer's row says SKIPPED with the reason when its venv cannot be
built. ``--no-peer`` leaves it out.

Uses the real Binance candles in <repo>/../shared/data/binance_spot_2020_2024 when present (says so),
else synthetic bars of the same shape (says so). Prints wall seconds (best of --repeat), CPU seconds of
this process and the machine's load average (before and after), because wall time on a shared machine
depends on what else runs.

    python benchmarks/bench_backtest.py [--json runs/bench_backtest.json] [--repeat 3] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphwiz_trader.backtest import BacktestSettings, CostModel, MarketPanel, run_backtest
from graphwiz_trader.backtest.runner import trim_to_common_end
from graphwiz_trader.backtest.scores import cross_sectional_reversal
from graphwiz_trader.core.jsonout import write_json
from graphwiz_trader.data.sources import load_universe
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.portfolio import OptimiserSettings, PortfolioConstraints, rolling_optimise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "binance_spot_2020_2024"
MAJORS = ("BTC", "ETH", "BNB", "XRP", "ADA", "DOGE", "LTC", "LINK", "TRX", "BCH", "ETC", "EOS", "XLM", "XTZ",
          "ATOM", "ALGO", "FET", "FTM", "HBAR", "STX")


def _timed(fn, repeat: int = 1):
    """Best wall seconds, best CPU seconds of this process, and the last result, over ``repeat`` calls."""
    best, out, cpu = float("inf"), None, float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
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


def backtest_targets(panel: MarketPanel) -> pd.DataFrame:
    """Random long-only targets on the listed pairs, re-drawn every hour around equal weight (log-normal
    tilts, sd 0.05, 98% invested), so every pair trades every hour without costs eating the book."""
    rng = np.random.default_rng(0)
    listed = np.isfinite(panel.close)
    w = np.exp(0.05 * rng.standard_normal(panel.close.shape)) * listed
    w = w / w.sum(axis=1, keepdims=True).clip(1e-12) * 0.98
    return pd.DataFrame(w, index=panel.index, columns=list(panel.symbols))


def bench_backtest(bars: dict[str, pd.DataFrame], repeat: int) -> dict[str, object]:
    panel = MarketPanel.from_bars(bars)
    targets = backtest_targets(panel)
    # default costs: 10 bps taker, 1 bp half-spread, 2 bps slippage, sqrt impact, 10 USDT minimum order
    settings = BacktestSettings(rebalance=1, initial_capital=1_000_000.0)
    wall, cpu, res = _timed(lambda: run_backtest(bars, targets, settings), repeat)
    wall_engine, cpu_engine, _ = _timed(lambda: run_backtest(panel, targets, settings), repeat)
    fills = int(np.count_nonzero(res.trade_units.to_numpy()))
    return {"seconds": wall, "cpu_seconds": cpu, "engine_only_seconds": wall_engine, "engine_only_cpu_seconds":
            cpu_engine, "bars": len(panel.index), "pairs": len(panel.symbols), "fills": fills,
            "final_equity": float(res.equity.iloc[-1]), "target": "no slower than vectorbt"}


# the equivalence run: only a proportional fee, which both engines charge the same way
FEE_ONLY = CostModel(taker_fee_bps=10.0, maker_fee_bps=10.0, half_spread_bps=0.0, slippage_bps=0.0,
                     impact_coef_bps=0.0, min_order_notional=0.0)


def bench_vectorbt(bars: dict[str, pd.DataFrame], repeat: int, ours: dict[str, object]) -> dict[str, object]:
    """vectorbt on the same inputs, in its own venv; both times, their ratio and the equivalence check.

    vectorbt gets the panel's closes and opens and, at bar t, the weights decided at bar t-1's close
    (``size_type="targetpercent"``, ``price=open``): one portfolio of all pairs sharing one cash balance
    (``group_by=True, cash_sharing=True``), sells before buys in each bar (``call_seq="auto"``), each
    asset valued at the open when sizing -- the project's fill rule. Cost models differ: the timed run
    gives vectorbt the same fee (10 bps) and the half-spread + slippage (3 bps) as its price slippage,
    but vectorbt has no square-root impact and no minimum order notional. Both get no order where the
    project's engine cannot fill (no open or zero volume: vectorbt would trade a zero-volume bar). The
    equivalence run uses a 10 bps fee and nothing else on both sides and compares the equity curves.
    """
    from peers.peer_env import PeerUnavailable, run_peer

    panel = MarketPanel.from_bars(bars)
    targets = backtest_targets(panel)
    applied = np.full(panel.close.shape, np.nan)
    applied[1:] = targets.to_numpy()[:-1]  # decided at t-1's close, filled at t's open
    applied[~(np.isfinite(panel.open) & (panel.volume > 0))] = np.nan  # no order where the engine cannot fill
    capital = 1_000_000.0
    fee = FEE_ONLY.fee_bps / 1e4
    c = BacktestSettings().costs
    equal = run_backtest(panel, targets, BacktestSettings(rebalance=1, initial_capital=capital, costs=FEE_ONLY))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_vectorbt_") as tmp:
        folder = Path(tmp)
        np.save(folder / "close.npy", panel.close)
        np.save(folder / "open.npy", panel.open)
        np.save(folder / "targets.npy", applied)
        (folder / "params.json").write_text(json.dumps({
            "init_cash": capital, "repeat": repeat,
            "runs": {"timed": {"fees": c.fee_bps / 1e4, "slippage": (c.half_spread_bps + c.slippage_bps) / 1e4},
                     "fee_only": {"fees": fee, "slippage": 0.0, "equity": True}}}))
        try:
            peer = run_peer("vectorbt", "vectorbt_backtest.py", folder)
        except PeerUnavailable as exc:
            return {"status": "SKIPPED", "reason": str(exc)}
    load_after = os.getloadavg()
    timed, same = peer["runs"]["timed"], peer["runs"]["fee_only"]
    theirs = np.asarray(same.pop("equity"), dtype=float)
    mine = equal.equity.to_numpy()
    return {
        "status": "ok", "versions": {k: peer[k] for k in ("vectorbt", "numpy", "pandas", "numba") if k in peer},
        "seconds": timed["seconds"], "cpu_seconds": timed["cpu_seconds"],
        "first_call_seconds": timed["first_call_seconds"], "repeat": timed["repeat"],
        "orders": timed["orders"], "final_equity": timed["final_equity"],
        "ratio_engine_only": ours["engine_only_seconds"] / timed["seconds"],
        "ratio_engine_only_cpu": ours["engine_only_cpu_seconds"] / timed["cpu_seconds"],
        "ratio_with_panel_build": ours["seconds"] / timed["seconds"],
        "load_average_before": list(load_before), "load_average_after": list(load_after),
        "fee_only_check": {
            "fee_bps": FEE_ONLY.fee_bps, "final_equity_graphwiz": float(mine[-1]), "final_equity_vectorbt":
            same["final_equity"], "final_equity_relative_difference": float(mine[-1] / same["final_equity"] - 1.0),
            "max_relative_difference_along_the_curve": float(np.max(np.abs(mine / theirs - 1.0)))},
    }


def print_peer(vb: dict[str, object]) -> None:
    if vb["status"] != "ok":
        print(f"vectorbt: SKIPPED ({vb['reason']})")
        return
    eq = vb["fee_only_check"]
    print(f"vectorbt {vb['versions'].get('vectorbt', '?')} Portfolio.from_orders(targetpercent, group_by, "
          f"cash_sharing, call_seq=auto) on the same targets: {vb['seconds']:.3f} s wall ({vb['cpu_seconds']:.3f} s "
          f"CPU), best of {vb['repeat']} after a numba warm-up call ({vb['first_call_seconds']:.1f} s)")
    print(f"ratio graphwiz / vectorbt: engine {vb['ratio_engine_only']:.2f} wall, {vb['ratio_engine_only_cpu']:.2f} "
          f"CPU; with the panel build {vb['ratio_with_panel_build']:.2f} wall  [target <= 1]  (load average "
          f"before/after the peer "
          f"{vb['load_average_before'][0]:.2f} / {vb['load_average_after'][0]:.2f})")
    print(f"same result check ({eq['fee_bps']:g} bps fee only, both): final equity graphwiz "
          f"{eq['final_equity_graphwiz']:,.2f} vs vectorbt {eq['final_equity_vectorbt']:,.2f} "
          f"({eq['final_equity_relative_difference']:+.2e} relative; largest gap along the curve "
          f"{eq['max_relative_difference_along_the_curve']:.2e})")


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
    ap.add_argument("--no-peer", action="store_true", help="skip vectorbt (no peer venv is built or run)")
    ap.add_argument("--only", choices=("backtest", "max_sharpe"), default=None,
                    help="run one row (default: both)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = args.data if args.data.is_dir() else None

    rows: dict[str, object] = {}
    if args.only in (None, "backtest"):
        hb, hlabel = hourly_bars(data)
        bt = bench_backtest(hb, args.repeat)
        print(f"backtest: {bt['pairs']} pairs x {bt['bars']} hourly bars, hourly rebalancing with costs "
              f"({hlabel}): engine {bt['engine_only_seconds']:.3f} s wall ({bt['engine_only_cpu_seconds']:.3f} s "
              f"CPU), with the panel build from the bars {bt['seconds']:.3f} s wall, {bt['fills']} fills, best of "
              f"{args.repeat}")
        if args.no_peer:
            bt["vectorbt"] = {"status": "SKIPPED", "reason": "--no-peer"}
        else:
            bt["vectorbt"] = bench_vectorbt(hb, args.repeat, bt)
        print_peer(bt["vectorbt"])
        rows["backtest_46x35k_hourly"] = {**bt, "data": hlabel}
    if args.only in (None, "max_sharpe"):
        db, dlabel = daily_bars(data)
        ms = bench_max_sharpe(db)
        print(f"daily max-Sharpe over 4 years of {ms['assets']} assets ({dlabel}): {ms['seconds']:.2f} s wall, "
              f"{ms['cpu_seconds']:.2f} s CPU, {ms['decisions']} decisions (Ledoit-Wolf 60 days, reversal scores) "
              f"[target <= {MAX_SHARPE_TARGET_S:g} s; benchmarks/bench_portfolio.py compares it with PyPortfolioOpt "
              f"per decision]")
        rows["daily_max_sharpe_4y_20"] = {**ms, "data": dlabel}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    write_json(args.json, {"benchmark": "bench_backtest", "python": sys.version.split()[0],
                           "machine": platform.platform(), "cpus": os.cpu_count(), "load_average": list(load),
                           "loadavg": Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists()
                           else None,
                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
