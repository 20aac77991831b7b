"""``graphwiz demo``: the offline end-to-end job on the deterministic SYNTHETIC market.

synthetic market -> validation -> Parquet store -> Qlib bins -> Alpha158 (+ extras) -> LightGBM fit
with a walk-forward split (train | gap | valid | gap | test) -> out-of-sample IC against the planted
signal's IC on the same test bars (the ceiling a perfect model of the simulator could reach)
-> the correlation/regime graph built, written to the embedded Bolt graph server and read back ->
Alpha158-only against Alpha158 + graph features on the same walk-forward folds -> both models'
out-of-sample scores -> max-Sharpe with caps -> each rebalance order worked as a TWAP by the execution
engine -> net Sharpe with a block-bootstrap interval beside equal weight, all from one run.
Needs no network and no external database (set NEO4J_URI to use a Neo4j 5 server instead).
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from pathlib import Path

import pandas as pd
import yaml

from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.store import ParquetStore
from graphwiz_trader.data.synthetic import SyntheticMarket, generate_synthetic_market
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor
from graphwiz_trader.core.commandline import add_json_option, add_run_dir_option
from graphwiz_trader.core.jsonout import write_json
from graphwiz_trader.core.runs import atomic_write_bytes, open_run
from graphwiz_trader.errors import DataError
from graphwiz_trader.models import lgbm
from graphwiz_trader.models.generator import QlibSignalGenerator
from graphwiz_trader.models.metrics import evaluate_predictions, signal_metrics
from graphwiz_trader.models.targets import LabelSpec, forward_log_return

log = logging.getLogger(__name__)


def _step(n: int, text: str) -> None:
    print(f"[{n}] {text}", flush=True)


def run_demo(out_dir: str | Path = "runs/demo", n_assets: int = 12, n_bars: int = 24 * 300, seed: int = 7) -> dict:
    """Run the demo and return its figures (also written to ``out_dir/demo.json``)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    market = generate_synthetic_market(n_assets=n_assets, n_bars=n_bars, seed=seed, timeframe="1h")
    print(f"=== {market.label} ===")
    _step(1, f"synthetic market: {n_assets} assets in {market.config.n_clusters} clusters, {n_bars} hourly bars "
             f"({market.bars[market.symbols[0]].index[0]} .. {market.bars[market.symbols[0]].index[-1]}), seed {seed}; "
             f"regime shares " + ", ".join(f"{k} {v:.0%}" for k, v in market.regimes.value_counts(normalize=True).items()))
    report = validate_bars(market.bars, "1h", strict=True)
    _step(2, f"validation: {'OK' if report.ok else 'ERRORS'} ({len(report.symbols)} symbols, "
             f"{sum(len(s.issues) for s in report.symbols)} findings)")
    store = ParquetStore(out / "store")
    for sym, df in market.bars.items():
        store.upsert(sym, "1h", df)
    _step(3, f"Parquet store: {len(store.symbols('1h'))} symbols -> {store.root}")
    summary = write_qlib_bins(market.bars, out / "qlib", "60min")
    _step(4, f"Qlib bins (60min): {summary['calendar_length']} calendar bars -> {summary['out']}")
    extractor = AlphaFeatureExtractor(out / "qlib", freq="60min")
    feats = extractor.extract(market.symbols)
    _step(5, f"Alpha158 + extras via Qlib: {feats.shape[0]} rows x {feats.shape[1]} features")

    label = forward_log_return(market.bars, horizon=1)
    data = feats.join(label, how="inner").dropna(subset=["label"])
    dates = data.index.get_level_values("datetime").unique().sort_values()
    warmup, gap = 60, 1  # Alpha158's longest window is 60 bars; gap >= label horizon
    n = len(dates) - warmup
    tr_end = warmup + int(n * 0.6)
    va_end = tr_end + gap + int(n * 0.1)
    train_d, valid_d, test_d = dates[warmup:tr_end], dates[tr_end + gap:va_end], dates[va_end + gap:]
    # LightGBM through the generator (models/lgbm.py): a regression on the per-datetime demeaned label
    gen = QlibSignalGenerator(label=LabelSpec("regression", 1), seed=seed, work_dir=out / "qlib",
                              lgb_params={"min_data_in_leaf": 200}, num_boost_round=400, early_stopping_rounds=40)
    gen.fit(feats, label, train_d, valid_d, cross_sectional=True)
    dt = data.index.get_level_values("datetime")
    te = data[dt.isin(test_d)]
    target = lgbm.training_target(data["label"], gen.label, cross_sectional=True)  # what the booster fitted
    pred = gen.predict(te[gen.feature_columns])
    # direction against the cross-sectional mean: the demeaned prediction against the demeaned label
    model_m = evaluate_predictions(pred - pred.groupby(level="datetime").transform("mean"), target[dt.isin(test_d)],
                                   classification=False, ic_label=te["label"], train_label=target[dt.isin(train_d)])
    trees = int(gen.booster.best_iteration or gen.booster.num_trees())
    planted = market.signal.copy()
    planted.index = planted.index.tz_convert(None)
    planted.columns = [c.replace("/", "") for c in planted.columns]
    planted_s = planted.stack().rename_axis(["datetime", "instrument"])
    planted_m = signal_metrics(planted_s[planted_s.index.isin(te.index)], te["label"])
    _step(6, f"LightGBM on Alpha158 (train {len(train_d)} bars | gap {gap} | valid {len(valid_d)} | gap {gap} | "
             f"test {len(test_d)} bars, {trees} trees)")
    print(f"    out-of-sample AUC {model_m['auc']:.4f}  IC {model_m['ic']:.4f}  ICIR {model_m['icir']:.3f}  "
          f"Rank IC {model_m['rank_ic']:.4f}")
    print(f"    direction vs the cross-sectional mean: accuracy {model_m['accuracy']:.4f} beside always-the-training-"
          f"majority {model_m['majority_rate']:.4f}, balanced accuracy {model_m['balanced_accuracy']:.4f} "
          f"({model_m['n_zero_label']} zero-return rows left out)")
    print(f"    planted signal on the same test bars (simulator ceiling): IC {planted_m['ic']:.4f}  "
          f"Rank IC {planted_m['rank_ic']:.4f}")
    graph_result, predictions = _graph_steps(market.bars, out, seed)
    portfolio_result = _portfolio_step(market, predictions, out, seed)
    secs = time.perf_counter() - t0
    result = {
        "data": market.label, "seed": seed, "n_assets": n_assets, "n_bars": n_bars,
        "split": {"train": [str(train_d[0]), str(train_d[-1])], "valid": [str(valid_d[0]), str(valid_d[-1])],
                  "test": [str(test_d[0]), str(test_d[-1])], "gap_bars": gap},
        "features": int(feats.shape[1]), "trees": trees,
        "model_oos": model_m, "planted_signal_oos": planted_m, "graph": graph_result,
        "portfolio": portfolio_result, "seconds": secs,
    }
    write_json(out / "demo.json", result)
    print(f"=== done in {secs:.1f}s; figures -> {out / 'demo.json'} ({market.label}) ===")
    return result


def _graph_steps(bars: dict[str, pd.DataFrame], out: Path, seed: int) -> tuple[dict, pd.DataFrame]:
    """Steps 7-8: graph into the store and back; hybrid against baseline on identical folds.

    Returns the figures and both models' out-of-sample scores (``alpha158``, ``hybrid``, ``fold``)."""
    from graphwiz_trader.config.settings import GraphSettings
    from graphwiz_trader.graph.pipeline import GraphBuildSettings
    from graphwiz_trader.graph.store import settings_from_env
    from graphwiz_trader.models.hybrid import HybridSignalGenerator
    from graphwiz_trader.models.targets import LabelSpec
    from graphwiz_trader.research.compare import compare_hybrid_with_baseline

    env = settings_from_env()
    settings = env if env.uri else GraphSettings(data_dir=out / "graph")
    timings: dict = {}
    gen = HybridSignalGenerator(label=LabelSpec("direction", 1, relative=True), seed=seed, work_dir=out / "qlib_hybrid",
                                graph_spec=GraphBuildSettings(window=240, stride=24, exchange="synthetic"),
                                graph_settings=settings)
    g = gen.graph_features(bars, timings=timings)
    where = env.uri or f"embedded Bolt server, data in {out / 'graph'}"
    _step(7, f"graph: {timings['n_snapshots']} correlation snapshots (window 240, stride 24) + regimes written to "
             f"{where} and read back in {timings['write_snapshots'] + timings['write_regimes'] + timings['read']:.1f}s; "
             f"{g.shape[1]} graph features")
    n = g.index.get_level_values("datetime").nunique()
    test_len = n // 8
    res = compare_hybrid_with_baseline(gen, bars, train_len=3 * test_len, test_len=test_len, max_folds=4,
                                       with_predictions=True)
    predictions = res.pop("predictions")
    b, h = res["baseline"], res["hybrid"]
    _step(8, f"walk-forward, {res['n_folds']} folds (train {3 * test_len}, gap 1, test {test_len} bars), label: "
             f"beats the cross-sectional mean next bar ({b.get('zero_return_rows', 0)} tied test rows dropped)")
    for name, s in (("alpha158 only:   ", b), ("alpha158 + graph:", h)):
        print(f"    {name} AUC {s['auc']['mean']:.4f}  IC {s['ic']['mean']:.4f}  accuracy {s['accuracy']['mean']:.4f}"
              f"  balanced {s['balanced_accuracy']['mean']:.4f}")
    print(f"    always the training fold's majority class: accuracy {res['majority_rate']:.4f}")
    st = res["ic_difference_stats"]
    print(f"    IC difference {res['ic_difference']:+.4f} (95% HAC CI across folds [{st['ci_low']:+.4f}, "
          f"{st['ci_high']:+.4f}], lag-1 autocorrelation of the fold differences {st['lag1_autocorr']:+.2f})")
    st = res["accuracy_improvement_pct_stats"]
    print(f"    accuracy improvement {res['accuracy_improvement_pct']:+.2f}% (95% HAC CI [{st['ci_low']:+.2f}, "
          f"{st['ci_high']:+.2f}], lag-1 autocorrelation {st['lag1_autocorr']:+.2f}), hybrid better in "
          f"{res['hybrid_better_folds']}/{res['n_folds']} folds; {res['bootstrap_note']}")
    return {"graph_timings_s": timings, "comparison": res}, predictions


TWAP_BARS = 4
REBALANCE = "4h"


def _portfolio_step(market: SyntheticMarket, predictions: pd.DataFrame, out: Path, seed: int) -> dict:
    """Step 9: step 8's out-of-sample scores -> max-Sharpe with caps -> TWAP execution costs -> backtest.

    Both models' scores (probabilities that an asset beats the cross-sectional mean next bar, centred per
    time so their sign is the forecast) drive the same optimiser and backtest; equal weight is rebalanced
    at the same decision times. Costs: :mod:`graphwiz_trader.backtest.execution_costs`.
    """
    from graphwiz_trader.backtest.execution_costs import COST_METHOD, price_free_costs, twap_costed
    from graphwiz_trader.backtest.runner import MarketData, run_configured_backtest
    from graphwiz_trader.backtest.settings import BacktestRunSettings, CostModel
    from graphwiz_trader.execution.engine import ExecutionEngine
    from graphwiz_trader.execution.simulator import IMPACT_MODEL

    t0 = time.perf_counter()
    path = out / "predictions.parquet"
    buf = io.BytesIO()
    predictions.to_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())
    costs = CostModel()
    cfg = BacktestRunSettings.model_validate({
        "portfolio": {"cov_window": "10D", "communities": "synthetic",
                      "optimiser": {"method": "max_sharpe", "expected_returns": "scores"},
                      "constraints": {"max_position_weight": 0.25, "cash_buffer": 0.02, "no_trade_band": 0.05,
                                      "community_cap": 0.5}},
        "backtest": {"rebalance": REBALANCE, "costs": price_free_costs(costs).model_dump()},
        "benchmarks": ["equal_weight"], "gross_of_costs_run": False})
    data = MarketData(dict(market.bars), market.label, "1h", dict(market.clusters), None, REBALANCE)
    runs = {v: run_configured_backtest(cfg, data=data, write_html=False, progress=False, scores=predictions,
                                       score_column=v, center_scores=True,
                                       scores_where=f"step 8's out-of-sample {v} scores")
            for v in ("hybrid", "alpha158")}
    if not runs["hybrid"].rolling.weights.index.equals(runs["alpha158"].rolling.weights.index):
        raise DataError("the hybrid and Alpha158 scores gave different decision times; no like-for-like comparison")
    engine = ExecutionEngine(dict(market.bars), timeframe="1h", data_label=market.label)
    books = {"hybrid scores": runs["hybrid"].results["strategy"], "alpha158 scores": runs["alpha158"].results["strategy"],
             "equal weight": runs["hybrid"].results["equal_weight"]}
    costed = {name: twap_costed(r, engine, TWAP_BARS, costs.fee_bps, seed) for name, r in books.items()}
    first = books["hybrid scores"].equity.index
    decisions = runs["hybrid"].rolling.weights.index
    _step(9, f"portfolio on the out-of-sample scores of step 8 ({market.label}): {first[0]} .. {first[-1]} "
             f"({len(first)} bars, {len(decisions)} decisions every {REBALANCE})")
    print(f"    max-Sharpe on the centred scores (alpha = IC 0.05 x sigma x score / rms), Ledoit-Wolf over 10 days; "
          f"caps 25% per asset, 50% per planted cluster, 2% cash, 5% no-trade band; equal weight at the same times")
    print(f"    costs: {COST_METHOD}: {TWAP_BARS}-bar TWAP, fee {costs.fee_bps:g} bps, impact {IMPACT_MODEL}")
    print(f"    {'':<17}{'net Sharpe':>11}  {'95% CI (block bootstrap)':<25}{'gross Sharpe':>12}{'net return':>11}"
          f"{'maxDD':>8}{'turnover/yr':>12}{'costs/yr':>10}{'shortfall bps':>14}{'orders':>8}")
    rows = {}
    for name, c in costed.items():
        m = c.metrics
        gross = books[name].metrics()["sharpe"]
        ci = f"[{m['sharpe_ci_low']:+.2f}, {m['sharpe_ci_high']:+.2f}]"
        print(f"    {name:<17}{m['sharpe']:>+11.2f}  {ci:<25}{gross:>+12.2f}{m['total_return']:>+11.2%}"
              f"{m['max_drawdown']:>8.1%}{m['annual_turnover']:>11.0f}x{m['annual_cost_drag']:>10.1%}"
              f"{c.shortfall_bps:>+14.2f}{c.parents:>8}")
        rows[name] = {"net_sharpe": m["sharpe"], "net_sharpe_ci": [m["sharpe_ci_low"], m["sharpe_ci_high"]],
                      "gross_sharpe": gross, "net_total_return": m["total_return"],
                      "net_annualised_return": m["annualised_return"], "max_drawdown": m["max_drawdown"],
                      "annual_turnover": m["annual_turnover"], "annual_cost_drag": m["annual_cost_drag"],
                      "shortfall_bps": c.shortfall_bps, "orders": c.parents, "children": c.children,
                      "children_unfilled": c.children_unfilled}
    print(f"    Sharpe intervals: circular block bootstrap of the net per-bar returns (blocks of "
          f"{max(1, round(len(first) ** (1 / 3)))} bars, 1000 resamples, seed 0); turnover per year in multiples "
          f"of equity, costs per year as fractions of it; shortfall: notional-weighted, vs the arrival open (the "
          f"open the backtest filled at), fees excluded")
    cli_cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update={"costs": costs})})
    cli = cli_cfg.model_dump(mode="json")
    for derived in ("cov_window_bars", "periods_per_year"):  # set from portfolio.cov_window and the bar length
        cli["portfolio"]["optimiser"].pop(derived)
    s = market.config
    cli["data"]["synthetic"] = {"n_assets": s.n_assets, "n_clusters": s.n_clusters, "n_bars": s.n_bars,
                                "timeframe": s.timeframe, "start": s.start, "seed": s.seed,
                                "signal_strength": s.signal_strength, "rebalance": REBALANCE}
    cfg_path = out / "backtest_config.yaml"
    atomic_write_bytes(cfg_path, yaml.safe_dump(cli, sort_keys=False).encode())
    print(f"    scores -> {path}; the same scores with the backtester's own cost model instead of the TWAP: "
          f"graphwiz backtest --config {cfg_path} --scores {path} --score-column hybrid --center-scores")
    return {"data": market.label, "period": [first[0], first[-1]], "bars": len(first), "decisions": len(decisions),
            "rebalance": REBALANCE, "twap_bars": TWAP_BARS, "fee_bps": costs.fee_bps, "cost_method": COST_METHOD,
            "impact_model": IMPACT_MODEL, "sharpe_ci": "95% circular block bootstrap of per-bar net returns",
            "runs": rows, "predictions": str(path), "backtest_config": str(cfg_path),
            "seconds": time.perf_counter() - t0}


def _cmd(args: argparse.Namespace) -> int:
    run = open_run(args)
    result = run_demo(run.path, args.assets, args.bars, args.seed)
    run.write_summary(result, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline end-to-end demo on the synthetic market (no network, no database)")
    p.add_argument("--assets", type=int, default=12, help="assets of the SYNTHETIC market")
    p.add_argument("--bars", type=int, default=24 * 300, help="hourly bars of the SYNTHETIC market")
    p.add_argument("--seed", type=int, default=7, help="seed of the market and the models")
    add_run_dir_option(p)
    add_json_option(p)
    p.set_defaults(func=_cmd)
