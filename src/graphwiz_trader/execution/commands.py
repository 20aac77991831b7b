"""``graphwiz execution ...``: train the PPO executor and compare all engines out of sample.

    graphwiz execution train-ppo [--data DIR] [--timesteps 100000] [--seed 0] [--out models/ppo_execution_synthetic.zip]
    graphwiz execution evaluate  [--data DIR] --json PATH [--model models/ppo_execution_synthetic.zip]

Without ``--data`` both run on the deterministic synthetic market (labelled SYNTHETIC). With ``--data``
(a folder of freqtrade ``<BASE>_USDT-1h.feather`` files, e.g. ../shared/data/binance_spot_2020_2024/1h)
they read real bars. Default splits keep training and evaluation disjoint in both dates and symbols:

synthetic: train SYN00..SYN07 before 2022-09-01; evaluate SYN08..SYN11 from 2022-09-01.
real:      train BTC ETH BNB XRP ADA DOGE LTC LINK TRX BCH before 2023-01-01;
           evaluate ETC EOS XLM XTZ ATOM ALGO FET FTM HBAR STX THETA from 2023-01-01.

Costs come from a parametric impact simulator whose constants (eta, gamma, alpha) are equity-literature
values, not fitted to crypto. ``evaluate`` therefore also prints (and writes under ``sensitivity``) each
engine's mean shortfall for eta and gamma at 0.5x, 1x and 2x (a 3 x 3 grid on a subset of the orders).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.core.symbols import parse_symbols
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.config.settings import ExecutionSettings
from graphwiz_trader.core.commandline import add_json_option
from graphwiz_trader.core.progress import progress_enabled
from graphwiz_trader.core.runs import open_run

log = logging.getLogger(__name__)

SYNTHETIC_N_BARS = 24 * 360
SPLITS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "train_symbols": [f"SYN{i:02d}/USDT" for i in range(8)],
        "eval_symbols": [f"SYN{i:02d}/USDT" for i in range(8, 12)],
        "train_start": None, "split": "2022-09-01", "eval_end": None, "n_orders": 1500,
    },
    "real": {
        "train_symbols": ["BTC/USDT", "ETH/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "LTC/USDT",
                          "LINK/USDT", "TRX/USDT", "BCH/USDT"],
        "eval_symbols": ["ETC/USDT", "EOS/USDT", "XLM/USDT", "XTZ/USDT", "ATOM/USDT", "ALGO/USDT", "FET/USDT",
                         "FTM/USDT", "HBAR/USDT", "STX/USDT", "THETA/USDT"],
        "train_start": None, "split": "2023-01-01", "eval_end": None, "n_orders": 3000,
    },
}


def _ts(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    t = pd.Timestamp(text)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def load_source(data: str | None, symbols: list[str]) -> tuple[dict[str, pd.DataFrame], str, str]:
    """(bars, source name, label). ``data=None`` = synthetic market (all its symbols)."""
    if data is None:
        from graphwiz_trader.data.synthetic import generate_synthetic_market

        m = generate_synthetic_market(n_bars=SYNTHETIC_N_BARS)
        missing = [s for s in symbols if s not in m.bars]
        if missing:
            from graphwiz_trader.errors import UnknownSymbolError

            raise UnknownSymbolError(missing, where="the synthetic market", available=m.symbols)
        return {s: m.bars[s] for s in symbols}, "synthetic", m.label
    from graphwiz_trader.execution.market import load_bars_dir

    bars = load_bars_dir(data, symbols)
    return bars, "real", f"REAL DATA: Binance spot hourly bars from {data}"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", default=None,
                   help="folder of <BASE>_USDT-1h.feather files (default: the SYNTHETIC market)")
    p.add_argument("--symbols", metavar="LIST", default=None, help="comma-separated symbols (default: the source's split)")
    p.add_argument("--start", metavar="DATE", default=None, help="first bar time (UTC) of the window")
    p.add_argument("--end", metavar="DATE", default=None, help="end (exclusive, UTC) of the window")
    p.add_argument("--horizon", type=int, default=ExecutionSettings().horizon_bars,
                   help="execution horizon in 1h bars (default: execution.horizon_bars of the settings)")
    p.add_argument("--risk-aversion", type=float, default=None,
                   help="risk aversion per bps (objective E[IS] + lambda Var[IS]); default 1e-5")
    p.add_argument("--seed", type=int, default=0, help="seed of the order sample and of PPO training")
    add_json_option(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``graphwiz execution train-ppo|evaluate``."""
    p = subparsers.add_parser("execution", help="execution engines: train PPO, evaluate against MARKET/TWAP/VWAP/AC")
    sub = p.add_subparsers(dest="execution_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1], no_run_folder=True)

    t = sub.add_parser("train-ppo", help="train the PPO executor on the training split and save it under models/")
    _common(t)
    t.add_argument("--timesteps", type=int, default=100_000, help="PPO environment steps")
    t.add_argument("--n-envs", type=int, default=4, help="parallel environments")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default 1: fastest for this small MLP on 2 cores)")
    t.add_argument("--out", metavar="PATH", default=None, help="model path (default models/ppo_execution_<source>.zip)")
    t.set_defaults(func=cmd_train_ppo)

    e = sub.add_parser("evaluate", help="compare engines on held-out parent orders (mean IS with 95%% CIs) in a "
                                        "parametric impact simulator, with an eta x gamma sensitivity table")
    _common(e)
    e.add_argument("--model", metavar="PATH", default=None, help="trained PPO model (.zip); PPO is skipped without it")
    e.add_argument("--n-orders", type=int, default=None, help="held-out parent orders (default: every one of the split)")
    e.add_argument("--sim-seed", type=int, default=0, help="seed of the simulator's impact noise")
    e.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the confidence intervals")
    e.add_argument("--strategies", metavar="LIST", default="MARKET,TWAP,VWAP,ALMGREN_CHRISS,PPO",
                   help="engines to compare, comma-separated")
    e.add_argument("--min-fraction", type=float, default=0.001, help="smallest order, fraction of hourly volume")
    e.add_argument("--max-fraction", type=float, default=0.05, help="largest order, fraction of hourly volume")
    e.add_argument("--immediate-minutes", type=float, default=None,
                   help="simulator: minutes of bar volume a MARKET child consumes (default 5)")
    e.add_argument("--eta", type=float, default=None,
                   help="simulator: temporary impact coefficient (default 0.142, an equity-literature value, not fitted)")
    e.add_argument("--alpha", type=float, default=None, help="simulator: participation exponent (default 0.6)")
    e.add_argument("--gamma", type=float, default=None,
                   help="simulator: permanent impact coefficient (default 0.314, an equity-literature value, not fitted)")
    e.add_argument("--sensitivity-orders", type=int, default=None,
                   help="orders per cell of the eta x gamma sensitivity table (0.5x/1x/2x each; default 300; 0 skips it)")
    e.add_argument("--allow-symbol-overlap", action="store_true",
                   help="allow evaluation symbols that the PPO model was trained on (dates must still be later)")
    e.set_defaults(func=cmd_evaluate)


def cmd_train_ppo(args: argparse.Namespace) -> int:
    from graphwiz_trader.execution.env import DEFAULT_RISK_AVERSION_PER_BPS
    from graphwiz_trader.execution.market import build_market_arrays
    from graphwiz_trader.execution.ppo import PPOTrainingSettings, default_torch_threads, train_ppo

    split = SPLITS["synthetic" if args.data is None else "real"]
    symbols = parse_symbols(args.symbols) or split["train_symbols"]
    bars, source, label = load_source(args.data, symbols)
    start = _ts(args.start) or _ts(split["train_start"])
    end = _ts(args.end) or _ts(split["split"])
    out = Path(args.out or f"models/ppo_execution_{source}.zip")
    cfg = PPOTrainingSettings(total_timesteps=args.timesteps, seed=args.seed, n_envs=args.n_envs,
                            torch_threads=args.threads or default_torch_threads())
    markets = {s: build_market_arrays(df, s) for s, df in bars.items()}
    lam = DEFAULT_RISK_AVERSION_PER_BPS if args.risk_aversion is None else args.risk_aversion
    print(label)
    print(f"training PPO on {', '.join(symbols)} in [{start}, {end}), {args.timesteps} steps, seed {args.seed}, "
          f"{cfg.torch_threads} torch thread(s)")
    res = train_ppo(markets, out, symbols=symbols, train_start=start, train_end=end, time_horizon_bars=args.horizon,
                    risk_aversion_per_bps=lam, config=cfg, data_source=args.data or "synthetic", data_label=label,
                    progress=progress_enabled())
    print(f"saved {res.model_path} and {res.metadata_path} ({res.train_seconds:.1f} s); trained on bars "
          f"{res.metadata['train_start_utc']} .. {res.metadata['train_end_utc']}")
    open_run(args).write_summary({"model_path": res.model_path, "metadata_path": res.metadata_path, **res.metadata},
                                 args.json)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from graphwiz_trader.execution.engine import ExecutionEngine
    from graphwiz_trader.execution.env import DEFAULT_RISK_AVERSION_PER_BPS
    from graphwiz_trader.execution.evaluation import format_table, run_orders, sample_parent_orders, summarize
    from graphwiz_trader.execution.ppo import PPOExecutionPolicy, check_disjoint
    from graphwiz_trader.execution.sensitivity import DEFAULT_SENSITIVITY_ORDERS, format_sensitivity, impact_sensitivity
    from graphwiz_trader.execution.simulator import IMPACT_MODEL, ImpactModelSettings
    from graphwiz_trader.execution.types import ExecutionStrategy

    split = SPLITS["synthetic" if args.data is None else "real"]
    symbols = parse_symbols(args.symbols) or split["eval_symbols"]
    start = _ts(args.start) or _ts(split["split"])
    end = _ts(args.end) or _ts(split["eval_end"])
    strategies = [ExecutionStrategy.parse(s) for s in args.strategies.split(",") if s.strip()]
    policy = None
    if args.model:
        policy = PPOExecutionPolicy.load(args.model)
        check_disjoint(policy.metadata, symbols, start, args.allow_symbol_overlap)
        if policy.metadata.get("data_source") != (args.data or "synthetic"):
            log.warning("PPO model was trained on %s; evaluating on %s", policy.metadata.get("data_source"),
                        args.data or "synthetic")
        if policy.metadata.get("time_horizon_bars") != args.horizon:
            log.warning("PPO model was trained with a %s-bar horizon; evaluating at %d bars",
                        policy.metadata.get("time_horizon_bars"), args.horizon)
    elif ExecutionStrategy.PPO in strategies:
        print("PPO skipped: no --model given (train one with `graphwiz execution train-ppo`)")
    if policy is None:
        strategies = [s for s in strategies if s is not ExecutionStrategy.PPO]
    if not strategies:
        raise ConfigError("no strategy left to evaluate")
    n_sens = DEFAULT_SENSITIVITY_ORDERS if args.sensitivity_orders is None else args.sensitivity_orders
    if n_sens < 0:
        raise ConfigError(f"--sensitivity-orders must be >= 0, got {n_sens}")
    bars, source, label = load_source(args.data, symbols)
    lam = DEFAULT_RISK_AVERSION_PER_BPS if args.risk_aversion is None else args.risk_aversion
    overrides = {k: getattr(args, k) for k in ("immediate_minutes", "eta", "alpha", "gamma") if getattr(args, k) is not None}
    impact = ImpactModelSettings(**overrides)
    if policy is not None and policy.metadata.get("impact") != asdict(impact):
        log.warning("PPO model was trained with impact settings %s; evaluating with %s", policy.metadata.get("impact"),
                    asdict(impact))
    t0 = time.perf_counter()
    engine = ExecutionEngine(bars, impact=impact, risk_aversion_per_bps=lam, ppo_policy=policy, data_label=label)
    sim = engine.simulator(seed=args.sim_seed)
    orders = sample_parent_orders(engine.markets, symbols, start, end, args.n_orders or split["n_orders"],
                                  args.horizon, (args.min_fraction, args.max_fraction), seed=args.seed)
    results = run_orders(engine, sim, orders, strategies, args.horizon, progress=progress_enabled())
    summary = summarize(results, n_boot=args.n_boot, seed=args.seed)
    sensitivity = (impact_sensitivity(engine, orders, strategies, args.horizon, sim_seed=args.sim_seed, n_orders=n_sens)
                   if n_sens else None)
    seconds = time.perf_counter() - t0
    first, last = min(o.start_utc for o in orders), max(o.start_utc for o in orders)
    print(label)
    print(f"held-out parent orders: {len(orders)} on {', '.join(symbols)}, starts {first} .. {last}, horizon "
          f"{args.horizon} bars, sizes {args.min_fraction:.1%}..{args.max_fraction:.1%} of mean hourly volume, "
          f"seed {args.seed}, simulator seed {args.sim_seed}")
    if policy is not None:
        md = policy.metadata
        print(f"PPO model {args.model}: trained on {', '.join(md['train_symbols'])} "
              f"{md['train_start_utc']} .. {md['train_end_utc']}, {md['total_timesteps']} steps, seed {md['seed']}")
    print(f"impact model: {IMPACT_MODEL}; eta {engine.impact.eta:g}, gamma {engine.impact.gamma:g}, "
          f"alpha {engine.impact.alpha:g}")
    print(format_table(summary))
    if sensitivity is not None:
        print(format_sensitivity(sensitivity))
    print(f"({seconds:.1f} s)")
    payload = {
        "data_source": args.data or "synthetic", "data_label": label, "symbols": symbols,
        "eval_window_utc": [None if start is None else start.isoformat(), None if end is None else end.isoformat()],
        "first_order_start_utc": first, "last_order_start_utc": last, "horizon_bars": args.horizon,
        "volume_fraction_range": [args.min_fraction, args.max_fraction], "seed": args.seed, "sim_seed": args.sim_seed,
        "risk_aversion_per_bps": lam, "impact_model": IMPACT_MODEL, "impact": asdict(engine.impact),
        "features": asdict(engine.features),
        "strategies": [s.value for s in strategies], "seconds": seconds,
        "ppo_model": None if policy is None else {"path": args.model, **policy.metadata},
        "summary": summary, "sensitivity": sensitivity,
    }
    run = open_run(args)
    run.write_summary(payload, args.json)
    print(f"figures: {run.path / 'summary.json'}" + (f" and {args.json}" if args.json else ""))
    return 0
