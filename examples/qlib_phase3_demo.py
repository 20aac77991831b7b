"""Phase 3: hybrid signals (Alpha158 + graph features from the graph store) against Alpha158 alone.

Offline by default: the deterministic SYNTHETIC market, with the graph kept in the embedded Bolt
server (no Neo4j needed; set NEO4J_URI/NEO4J_USER/NEO4J_PASSWORD to use a Neo4j 5 server instead).
Every figure is out of sample, from the same walk-forward folds and seeds for both models.

    .venv/bin/python examples/qlib_phase3_demo.py
    .venv/bin/python examples/qlib_phase3_demo.py --source ../shared/data/binance_spot_2020_2024 \
        --symbols BTC/USDT,ETH/USDT,BNB/USDT,XRP/USDT,ADA/USDT,DOGE/USDT,LTC/USDT,LINK/USDT \
        --start 2023-01-01 --window 720
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.core.jsonout import _plain
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.qlib import create_hybrid_signal_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", help="freqtrade folder (default: the synthetic market)")
    ap.add_argument("--symbols")
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--window", type=int, default=240, help="bars per correlation window")
    ap.add_argument("--stride", type=int, default=24, help="bars between graph snapshots")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/phase3")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("graphwiz_trader.graph.server").setLevel(logging.INFO)

    fmt = "freqtrade" if args.source else "synthetic"
    bars, label = load_bars(args.source, fmt, "1h", args.symbols, args.start, args.end,
                            synthetic={"n_assets": 12, "n_bars": 24 * 200, "seed": 7})
    print(f"data: {label} ({len(bars)} symbols)")
    out = Path(args.out)
    gen = create_hybrid_signal_generator(window=args.window, stride=args.stride, seed=args.seed,
                                         label=LabelSpec("direction", 1, relative=True), work_dir=out / "qlib")
    n = min(len(df) for df in bars.values())
    test_len = max(n // (args.folds + 4), 50)
    res = gen.compare_with_baseline(bars, train_len=3 * test_len, test_len=test_len, max_folds=args.folds)
    b, h = res["baseline"], res["hybrid"]
    print(f"label: beats the cross-sectional mean next bar | {res['n_folds']} folds, train {res['folds']['train_len']}"
          f" bars, test {res['folds']['test_len']} bars, gap {res['folds']['gap']}")
    print(f"{'':<20}{'AUC':>8}{'IC':>8}{'Rank IC':>9}{'accuracy':>10}{'balanced':>10}")
    for name, s in (("alpha158", b), ("alpha158 + graph", h)):
        print(f"{name:<20}{s['auc']['mean']:>8.4f}{s['ic']['mean']:>8.4f}{s['rank_ic']['mean']:>9.4f}"
              f"{s['accuracy']['mean']:>10.4f}{s['balanced_accuracy']['mean']:>10.4f}")
    print(f"{'training majority':<20}{'':>25}{res['majority_rate']:>10.4f}")
    lo, hi = res["ic_difference_ci_hac"]
    alo, ahi = res["accuracy_improvement_pct_ci_hac"]
    print(f"IC difference {res['ic_difference']:+.4f} (95% HAC CI across folds [{lo:+.4f}, {hi:+.4f}]); accuracy "
          f"improvement {res['accuracy_improvement_pct']:+.3f}% (95% HAC CI [{alo:+.3f}, {ahi:+.3f}]); hybrid better in "
          f"{res['hybrid_better_folds']}/{res['n_folds']} folds; {res['bootstrap_note']}")
    print(f"graph features: {', '.join(res['graph_features'])}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(_plain({"data": label, **res}), indent=2))
    print(f"figures -> {out / 'comparison.json'}")


if __name__ == "__main__":
    main()
