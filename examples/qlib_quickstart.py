"""Phase 1 quickstart: Alpha158 via Qlib -> LightGBM signal -> latest signal -> saved model.

Offline by default on the deterministic SYNTHETIC market; point it at real candles with
``--source ../shared/data/binance_spot_2020_2024 --symbols BTC/USDT,ETH/USDT,...``.

    .venv/bin/python examples/qlib_quickstart.py
    .venv/bin/python examples/qlib_quickstart.py --source ../shared/data/binance_spot_2020_2024 \
        --symbols BTC/USDT,ETH/USDT,BNB/USDT,XRP/USDT,ADA/USDT --start 2023-01-01 --end 2023-12-31
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.models.targets import LabelSpec
from graphwiz_trader.qlib import QlibSignalGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", help="freqtrade folder (default: the synthetic market)")
    ap.add_argument("--symbols", help="comma-separated symbols")
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work-dir", default="runs/quickstart")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    fmt = "freqtrade" if args.source else "synthetic"
    bars, label = load_bars(args.source, fmt, args.timeframe, args.symbols, args.start, args.end,
                            synthetic={"n_assets": 8, "n_bars": 24 * 200, "seed": args.seed})
    print(f"data: {label} ({len(bars)} symbols)")

    work = Path(args.work_dir)
    universe = list(bars)
    gen = QlibSignalGenerator(label=LabelSpec("direction", 1, relative=len(universe) > 1), seed=args.seed,
                              work_dir=work / "qlib")
    metrics = gen.train(bars, universe)
    print(f"label: {metrics['label']}")
    print(f"holdout {metrics['holdout'][0]} .. {metrics['holdout'][1]} (never seen in training):")
    for k in ("auc", "ic", "rank_ic", "icir", "val_accuracy", "majority_rate", "balanced_accuracy"):
        print(f"  {k:<18}{metrics[k]:.4f}")
    for sym in universe[:3]:
        print("latest:", gen.predict_latest(bars, sym))
    path = gen.save_model(Path("models") / "quickstart_lgbm")
    print(f"model saved to {path} (model.txt + meta.json)")


if __name__ == "__main__":
    main()
