"""Speed of the walk-forward max-Sharpe optimiser: one reused parameterised problem against the peer.

Row (target from issue 12):
  daily max-Sharpe, 1,401 decisions over 20 assets (Ledoit-Wolf 60 days, reversal scores)   <= 2 s

Runs ``rolling_optimise`` twice on the same data in the same process: with the reused compiled
cvxpy problem (``reuse_max_sharpe_problem: true``, the default; its compilation is timed too, the
cache is emptied first) and with a fresh PyPortfolioOpt ``EfficientFrontier`` per decision (the
peer, ``reuse_max_sharpe_problem: false``). Both solve with the same Clarabel tolerances
(``fast_sharpe.CLARABEL_TOLERANCES``). Prints both wall times, their ratio and the largest absolute
difference between the two weight frames, CPU seconds and the load average (wall time on a shared
machine depends on what else runs).

Uses the real Binance daily candles under <repo>/../shared/data/binance_spot_2020_2024 when present
(says so), else synthetic bars of the same shape (says so).

    python benchmarks/bench_portfolio.py [--json runs/bench_portfolio.json] [--repeat 3]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backtest import DATA, MAX_SHARPE_TARGET_S, daily_bars, max_sharpe_setup  # one home for the row's inputs

from graphwiz_trader.core.jsonout import write_json
from graphwiz_trader.portfolio import (
    OptimiserSettings,
    PortfolioConstraints,
    fast_sharpe,
    rolling_optimise,
)

TARGET_SECONDS = MAX_SHARPE_TARGET_S


def _run(close: pd.DataFrame, scores: pd.DataFrame, settings: OptimiserSettings,
         cons: PortfolioConstraints, repeat: int) -> tuple[float, float, pd.DataFrame, pd.DataFrame]:
    """Best wall seconds of ``repeat`` runs (the compiled-problem cache emptied before each), CPU seconds
    of the best run, and its weights and diagnostics."""
    best, cpu, out = float("inf"), 0.0, None
    for _ in range(repeat):
        fast_sharpe.clear_cache()
        t, c = time.perf_counter(), time.process_time()
        rolled = rolling_optimise(close, close.index, scores, settings, cons)
        wall = time.perf_counter() - t
        if wall < best:
            best, cpu, out = wall, time.process_time() - c, rolled
    assert out is not None
    return best, cpu, out.weights, out.diagnostics


def bench(bars: dict[str, pd.DataFrame], repeat: int) -> dict[str, object]:
    _, close, scores, fast_settings, cons = max_sharpe_setup(bars)
    peer_settings = fast_settings.model_copy(update={"reuse_max_sharpe_problem": False})

    fast_s, fast_cpu, fast_w, fast_d = _run(close, scores, fast_settings, cons, repeat)
    problems = [fast_sharpe.max_sharpe_problem(s) for s in fast_sharpe.cached_structures()]
    solves = sum(p.solves for p in problems)
    failures = sum(p.failures for p in problems)
    peer_s, peer_cpu, peer_w, peer_d = _run(close, scores, peer_settings, cons, 1)
    if not fast_w.index.equals(peer_w.index):
        raise AssertionError("the two runs decided at different times")
    diff = float(np.abs(fast_w.to_numpy() - peer_w.to_numpy()).max())
    solved = fast_d["method"] == "max_sharpe"
    return {"decisions": len(fast_w), "assets": close.shape[1],
            "max_sharpe_decisions": int(solved.sum()),
            "same_method_every_decision": bool((fast_d["method"] == peer_d["method"]).all()),
            "fast_seconds": fast_s, "fast_cpu_seconds": fast_cpu,
            "peer_seconds": peer_s, "peer_cpu_seconds": peer_cpu,
            "speedup": peer_s / fast_s, "max_abs_weight_difference": diff,
            "compiled_problems": len(problems), "fast_solves": solves, "fast_failures_to_peer": failures,
            "target_seconds": TARGET_SECONDS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="folder with 1d/ freqtrade candles")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the reused-problem run (the peer runs once)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = args.data if args.data.is_dir() else None

    bars, label = daily_bars(data)
    r = bench(bars, max(1, args.repeat))
    print(f"daily max-Sharpe, {r['decisions']} decisions over {r['assets']} assets ({label}), "
          f"Ledoit-Wolf 60 days, reversal scores, caps 0.25, cash buffer 0.02:")
    print(f"  reused parameterised problem: {r['fast_seconds']:.2f} s wall, {r['fast_cpu_seconds']:.2f} s CPU "
          f"({r['compiled_problems']} compiled problem(s), {r['fast_solves']} solves, "
          f"{r['fast_failures_to_peer']} handed to PyPortfolioOpt)  [target <= {TARGET_SECONDS:g} s]")
    print(f"  PyPortfolioOpt per decision (peer): {r['peer_seconds']:.2f} s wall, {r['peer_cpu_seconds']:.2f} s CPU")
    print(f"  speed-up {r['speedup']:.1f}x; max |weight difference| {r['max_abs_weight_difference']:.2e} "
          f"over {r['decisions']} decisions ({r['max_sharpe_decisions']} solved max-Sharpe, same method at every "
          f"decision: {r['same_method_every_decision']})")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    write_json(args.json, {"benchmark": "bench_portfolio", "python": sys.version.split()[0],
                           "machine": platform.platform(), "cpus": os.cpu_count(), "load_average": list(load),
                           "rows": {"daily_max_sharpe_rolling": {**r, "data": label}}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
