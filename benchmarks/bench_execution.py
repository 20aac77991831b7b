"""Execution benchmark: raw RL-environment speed and PPO training time (synthetic market, offline).

Rows (targets on the 2-core machine):
  ExecutionEnvironment.step, raw (resets included)        >= 50,000 steps/s
  PPO training, 100k steps (stable-baselines3, 1 torch thread, 4 env copies)   <= 300 s
  simulator, parent orders worked per second (5-strategy evaluation loop)      (reported, no target)

The machine is shared: CPU seconds and the 1-minute load average are printed next to wall time.
Run: .venv/bin/python benchmarks/bench_execution.py [--json PATH] [--ppo-steps 100000] [--skip-ppo]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import measure  # noqa: E402

from graphwiz_trader.data.synthetic import generate_synthetic_market  # noqa: E402
from graphwiz_trader.execution import ExecutionEnvironment, ExecutionStrategy, build_market_arrays  # noqa: E402
from graphwiz_trader.execution.engine import ExecutionEngine  # noqa: E402
from graphwiz_trader.execution.evaluation import run_orders, sample_parent_orders  # noqa: E402
from graphwiz_trader.execution.ppo import PPOTrainingSettings, train_ppo  # noqa: E402
from graphwiz_trader.core.jsonout import write_json  # noqa: E402


def bench_env(markets: dict, n_steps: int) -> dict:
    env = ExecutionEnvironment(markets, volume_fraction_range=(0.001, 0.05), time_horizon=6)
    actions = np.random.default_rng(0).random((4096, 1)).astype(np.float32)
    env.reset(seed=0)
    for k in range(2000):  # warm-up
        if env.step(actions[k & 4095])[2]:
            env.reset()
    resets = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for k in range(n_steps):
        if env.step(actions[k & 4095])[2]:
            env.reset()
            resets += 1
    sec = time.perf_counter() - t0
    return {"what": "ExecutionEnvironment.step raw (resets included)", "steps": n_steps, "resets": resets,
            "seconds": sec, "cpu_seconds": time.process_time() - c0, "steps_per_s": n_steps / sec,
            "target_steps_per_s": 50_000, "ok": n_steps / sec >= 50_000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--env-steps", type=int, default=300_000)
    ap.add_argument("--ppo-steps", type=int, default=100_000)
    ap.add_argument("--skip-ppo", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    market = generate_synthetic_market(n_bars=24 * 360)
    print(market.label)
    markets = {s: build_market_arrays(df, s) for s, df in market.bars.items()}
    rows = []

    env_row = bench_env(markets, args.env_steps)
    rows.append(env_row)
    print(f"env: {env_row['steps_per_s']:,.0f} steps/s ({env_row['steps']:,} steps in {env_row['seconds']:.2f} s, "
          f"cpu {env_row['cpu_seconds']:.2f} s)  target >= 50,000  {'ok' if env_row['ok'] else 'MISSED'}")

    engine = ExecutionEngine(markets)
    sim = engine.simulator(seed=0)
    syms = list(markets)[8:]
    orders = sample_parent_orders(markets, syms, None, None, 500, 6, seed=0)
    strategies = [ExecutionStrategy.MARKET, ExecutionStrategy.TWAP, ExecutionStrategy.VWAP,
                  ExecutionStrategy.ALMGREN_CHRISS]
    t0 = time.perf_counter()
    run_orders(engine, sim, orders, strategies, 6, progress=False)
    sec = time.perf_counter() - t0
    rows.append({"what": "plan + simulate, 500 orders x 4 strategies", "seconds": sec,
                 "plans_per_s": 2000 / sec})
    print(f"simulator: {2000 / sec:,.0f} plans executed/s (500 orders x 4 static strategies in {sec:.2f} s)")

    if not args.skip_ppo:
        cfg = PPOTrainingSettings(total_timesteps=args.ppo_steps, seed=0)
        out = Path(tempfile.mkdtemp(prefix="bench_exec_")) / "ppo.zip"
        c0 = time.process_time()
        with measure() as m:
            res = train_ppo(markets, out, symbols=list(markets)[:8], train_start=None, train_end=None, config=cfg,
                            data_source="synthetic", data_label=market.label, progress=False)
        cpu = time.process_time() - c0
        row = {"what": f"PPO training {args.ppo_steps:,} steps", "seconds": m.seconds, "learn_seconds": res.train_seconds,
               "cpu_seconds": cpu, "peak_rss_gb": m.peak_rss_gb, "torch_threads": cfg.torch_threads,
               "n_envs": cfg.n_envs, "target_s": 300, "ok": m.seconds <= 300,
               "load_avg_1min": os.getloadavg()[0]}
        rows.append(row)
        print(f"PPO: {args.ppo_steps:,} steps in {m.seconds:.1f} s wall (learn {res.train_seconds:.1f} s, cpu {cpu:.1f} s, "
              f"{cfg.torch_threads} torch thread, {cfg.n_envs} envs, peak {m.peak_rss_gb:.2f} GB)  target <= 300 s  "
              f"{'ok' if row['ok'] else 'MISSED'}")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    write_json(args.json, {"rows": rows, "cpu_count": os.cpu_count(), "load_avg": list(load), "label": market.label})
    return 0 if all(r.get("ok", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
