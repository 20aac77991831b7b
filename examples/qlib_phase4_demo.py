"""Phase 4 demo: smart execution (MARKET, TWAP, VWAP, Almgren-Chriss, PPO) on the impact simulator.

Offline, on the deterministic synthetic market (labelled SYNTHETIC):
1. plans one parent order (2% of the mean hourly volume, 6 hours) with every engine and prints the
   child orders and their fills (average price, implementation shortfall vs arrival, slippage vs the
   interval VWAP, fill rate);
2. trains a small PPO executor on the training symbols/dates (or loads --model);
3. compares all engines on held-out parent orders (later dates, other symbols) with 95% CIs.

    python examples/qlib_phase4_demo.py [--ppo-steps 30000] [--model models/ppo_execution_synthetic.zip]
                                        [--orders 400] [--json PATH]

For the full evaluation: `graphwiz execution train-ppo` then `graphwiz execution evaluate --model ...`
(add --data ../shared/data/binance_spot_2020_2024/1h for real Binance bars).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.execution import ExecutionEngine, ExecutionStrategy, build_market_arrays
from graphwiz_trader.execution.commands import SPLITS, SYNTHETIC_N_BARS
from graphwiz_trader.execution.evaluation import format_table, run_orders, sample_parent_orders, summarize
from graphwiz_trader.execution.ppo import PPOExecutionPolicy, PPOTrainingSettings, check_disjoint, train_ppo
from graphwiz_trader.core.jsonout import write_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ppo-steps", type=int, default=30_000, help="PPO training steps when no --model is given")
    ap.add_argument("--model", default=None, help="a trained PPO model (.zip) instead of training one")
    ap.add_argument("--orders", type=int, default=400, help="held-out parent orders in the comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()

    market = generate_synthetic_market(n_bars=SYNTHETIC_N_BARS)
    print(market.label)
    split = SPLITS["synthetic"]
    cut = pd.Timestamp(split["split"], tz="UTC")
    markets = {s: build_market_arrays(df, s) for s, df in market.bars.items()}

    # 2. the PPO executor: trained on SYN00..07 before the split, or loaded
    if args.model:
        policy = PPOExecutionPolicy.load(args.model)
    else:
        out = Path(tempfile.mkdtemp(prefix="phase4_")) / "ppo_execution_demo.zip"
        print(f"training PPO for {args.ppo_steps:,} steps on {', '.join(split['train_symbols'])} before {cut.date()} ...")
        res = train_ppo(markets, out, symbols=split["train_symbols"], train_start=None, train_end=cut,
                        config=PPOTrainingSettings(total_timesteps=args.ppo_steps, seed=args.seed),
                        data_source="synthetic", data_label=market.label, progress=False)
        print(f"  {res.train_seconds:.1f} s, saved {res.model_path}")
        policy = PPOExecutionPolicy.load(res.model_path)
    check_disjoint(policy.metadata, split["eval_symbols"], cut)
    engine = ExecutionEngine(markets, ppo_policy=policy, data_label=market.label)
    sim = engine.simulator(seed=args.seed)

    # 1. one parent order, every engine
    sym, start = "SYN08/USDT", pd.Timestamp("2022-10-03 09:00", tz="UTC")
    m = engine.market(sym)
    qty = 0.02 * float(m.mean_volume[m.last_closed_index(start)])
    print(f"\nparent order: buy {qty:,.1f} {sym.split('/')[0]} (2% of mean hourly volume) from {start}, 6 bars")
    single = []
    for strat in ExecutionStrategy:
        plan = engine.create_execution_plan(sym, "buy", qty, strat, start, 6)
        res = engine.execute(plan, sim)
        mt = res.metrics
        kids = " ".join(f"{f.time_utc:%H}h:{f.quantity_base:,.0f}" for f in res.fills)
        print(f"  {strat.value:<15} IS {mt.implementation_shortfall_bps:7.2f} bps  vs VWAP {mt.vwap_slippage_bps:7.2f} bps"
              f"  avg {mt.average_price_quote:.6g}  fill {mt.fill_rate:.2f}  children {kids}")
        single.append({"strategy": strat.value, **mt.to_dict()})

    # 3. held-out comparison
    orders = sample_parent_orders(markets, split["eval_symbols"], cut, None, args.orders, 6, seed=args.seed)
    results = run_orders(engine, sim, orders, list(ExecutionStrategy), 6, progress=False)
    summary = summarize(results, n_boot=1000, seed=args.seed)
    print(f"\nheld-out comparison: {len(orders)} orders on {', '.join(split['eval_symbols'])} from {cut.date()} "
          f"(0.1%..5% of hourly volume)")
    print(format_table(summary))
    print(f"\n({time.perf_counter() - t0:.1f} s) {market.label}")
    write_json(args.json, {"label": market.label, "single_order": single, "summary": summary,
                           "ppo_model": policy.metadata})
    return 0


if __name__ == "__main__":
    sys.exit(main())
