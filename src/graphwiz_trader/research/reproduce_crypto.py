"""``graphwiz reproduce graph-crypto``: do graph features raise accuracy on the hourly crypto universe?

The claim in circulation: graph features raise accuracy by 2-15%. The test, all out of sample:

- bars: Binance hourly candles of the 20 majors (``../shared/data/binance_spot_2020_2024``), 2021-2024;
- label: the direction of the next bar (``1[log(close[t+1]/close[t]) > 0]``); ``--relative`` asks
  instead whether an asset beats the cross-sectional mean;
- features computed once: Alpha158 (+ extras) via Qlib; graph features built from the bars, written to
  the graph store (embedded Bolt server unless ``NEO4J_URI``), read back, point-in-time;
- walk-forward folds (train 8,760 bars, gap = horizon, test 720, stride 720) identical for both feature
  sets, and the same LightGBM seeds;
- per seed and fold: accuracy, AUC, IC, Rank IC; the improvement
  ``100 * (acc_hybrid - acc_baseline) / acc_baseline`` per fold, its mean, a t-interval across folds
  (of the seed-averaged fold values) and a percentile bootstrap.

Whatever comes out is reported; the verdict compares the CI with the claimed 2-15% range.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.data.paths import MAJORS_20
from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.features.graph_pipeline import graph_features_for_bars
from graphwiz_trader.features.pipeline import alpha_features
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.research.experiment import (
    WalkForwardConfig,
    bootstrap_ci,
    compare_results,
    fold_ci,
    run_walkforward,
)
from graphwiz_trader.research.report import write_walkforward_outputs

log = logging.getLogger(__name__)
CLAIM_PCT = (2.0, 15.0)


@dataclass(frozen=True)
class CryptoReproConfig:
    data: Path
    symbols: tuple[str, ...] = MAJORS_20
    start: str = "2021-01-01"
    end: str | None = None
    train_len: int = 8760
    test_len: int = 720
    stride: int = 720
    seeds: tuple[int, ...] = (0, 1, 2)
    relative: bool = False
    graph_window: int = 720
    graph_stride: int = 24
    max_folds: int | None = None
    qlib_dir: Path = Path("data/qlib")
    out: Path = Path("runs/reproduce_graph_crypto")
    lgb_params: dict[str, Any] = field(default_factory=lambda: {"learning_rate": 0.05, "num_leaves": 31,
                                                                "min_data_in_leaf": 200, "max_bin": 127})
    num_boost_round: int = 200
    early_stopping_rounds: int = 20


def verdict(mean: float, lo: float, hi: float) -> str:
    a, b = CLAIM_PCT
    if np.isnan(lo):
        return "too few folds for an interval"
    if lo > b:
        return f"improvement above the claimed {a:g}-{b:g}% range"
    if hi < a:
        if hi < 0:
            return f"graph features LOWER accuracy (CI entirely below 0); the {a:g}-{b:g}% claim is not supported"
        if lo > 0:
            return f"a real but smaller gain than claimed ({lo:.2f}..{hi:.2f}% < {a:g}%)"
        return f"no measurable gain: the CI includes 0 and lies below the claimed {a:g}%"
    if lo >= a:
        return f"consistent with the claim: the whole CI lies in or above {a:g}%"
    return f"inconclusive: the CI [{lo:.2f}, {hi:.2f}]% overlaps the claimed range and values below {a:g}%"


def run_graph_crypto(cfg: CryptoReproConfig, progress: bool = True) -> dict[str, Any]:
    """Run the comparison; returns every figure (per seed, per fold), timings and the verdict."""
    t0 = time.perf_counter()
    bars, data_label = load_bars(cfg.data, "freqtrade", "1h", list(cfg.symbols), cfg.start, cfg.end)
    t_load = time.perf_counter() - t0
    feats = alpha_features(bars, cfg.qlib_dir)
    t_alpha = time.perf_counter() - t0 - t_load
    graph_timings: dict[str, Any] = {}
    tg = time.perf_counter()
    gfeats = graph_features_for_bars(bars, window=cfg.graph_window, stride=cfg.graph_stride, timings=graph_timings,
                                     progress=progress)
    t_graph = time.perf_counter() - tg
    hybrid = feats.join(gfeats, how="left")
    spec = LabelSpec("direction", 1, relative=cfg.relative)
    label = make_label(bars, spec)
    fwd = make_label(bars, LabelSpec("regression", 1, relative=cfg.relative))
    base_cfg = WalkForwardConfig(train_len=cfg.train_len, test_len=cfg.test_len, stride=cfg.stride, label=spec,
                                 lgb_params=cfg.lgb_params, num_boost_round=cfg.num_boost_round,
                                 early_stopping_rounds=cfg.early_stopping_rounds, max_folds=cfg.max_folds)
    per_seed = []
    fold_rows = []
    first_results = None
    t_wf = {"alpha158": 0.0, "hybrid": 0.0}
    for seed in cfg.seeds:
        wcfg = replace(base_cfg, seed=seed)
        ta = time.perf_counter()
        b = run_walkforward(feats, label, wcfg, fwd, name=f"alpha158 seed {seed}", progress=progress)
        t_wf["alpha158"] += time.perf_counter() - ta
        th = time.perf_counter()
        h = run_walkforward(hybrid, label, wcfg, fwd, name=f"hybrid seed {seed}", progress=progress)
        t_wf["hybrid"] += time.perf_counter() - th
        cmp = compare_results(b, h, seed=seed)
        per_seed.append({"seed": seed, **{k: cmp[k] for k in ("accuracy_improvement_pct", "accuracy_improvement_pct_ci_t",
                                                              "ic_difference", "hybrid_better_folds", "n_folds")},
                         "baseline": cmp["baseline"], "hybrid": cmp["hybrid"],
                         "fold_seconds": {"alpha158": b.folds["seconds"].tolist(), "hybrid": h.folds["seconds"].tolist()}})
        for row in cmp["per_fold"]:
            fold_rows.append({"seed": seed, **row})
        if first_results is None:
            first_results = {"alpha158": b, "hybrid": h}
    folds = pd.DataFrame(fold_rows)
    by_fold = folds.groupby("fold")[["acc_baseline", "acc_hybrid", "accuracy_improvement_pct", "ic_baseline",
                                     "ic_hybrid", "ic_difference"]].mean()
    imp = by_fold["accuracy_improvement_pct"].to_numpy()
    lo, hi = fold_ci(imp)
    blo, bhi = bootstrap_ci(imp, seed=0)
    dlo, dhi = fold_ci(by_fold["ic_difference"].to_numpy())
    summary = {
        "accuracy_baseline": float(by_fold["acc_baseline"].mean()),
        "accuracy_hybrid": float(by_fold["acc_hybrid"].mean()),
        "accuracy_improvement_pct": float(imp.mean()),
        "accuracy_improvement_pct_ci_t": (lo, hi),
        "accuracy_improvement_pct_ci_bootstrap": (blo, bhi),
        "accuracy_improvement_pct_std_over_seeds": float(np.std([s["accuracy_improvement_pct"] for s in per_seed],
                                                                ddof=1)) if len(per_seed) > 1 else float("nan"),
        "ic_baseline": float(by_fold["ic_baseline"].mean()),
        "ic_hybrid": float(by_fold["ic_hybrid"].mean()),
        "ic_difference": float(by_fold["ic_difference"].mean()),
        "ic_difference_ci_t": (dlo, dhi),
        "hybrid_better_folds": int((imp > 0).sum()),
        "n_folds": int(len(imp)),
        "claim_pct": CLAIM_PCT,
        "verdict": verdict(float(imp.mean()), lo, hi),
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    folds.to_csv(out / "folds_all_seeds.csv", index=False)
    paths = {}
    if first_results is not None:
        first_cmp = compare_results(first_results["alpha158"], first_results["hybrid"], seed=cfg.seeds[0])
        paths = write_walkforward_outputs(first_results, out, f"graph-crypto: {spec.describe()} (seed {cfg.seeds[0]})",
                                          first_cmp, data_label)
    return {
        "data": data_label, "symbols": list(bars), "label": spec.describe(),
        "range": [str(min(df.index[0] for df in bars.values())), str(max(df.index[-1] for df in bars.values()))],
        "folds": {"train_len": cfg.train_len, "test_len": cfg.test_len, "stride": cfg.stride, "gap": 1,
                  "n_folds": summary["n_folds"]},
        "seeds": list(cfg.seeds), "summary": summary, "per_seed": per_seed,
        "graph_features": [c for c in gfeats.columns],
        "timings_s": {"load": t_load, "alpha158": t_alpha, "graph_total": t_graph, "graph": graph_timings,
                      "walkforward": t_wf, "total": time.perf_counter() - t0},
        "outputs": {**paths, "folds_all_seeds": str(out / "folds_all_seeds.csv")},
    }


def format_crypto_table(res: dict[str, Any]) -> str:
    s = res["summary"]
    lo, hi = s["accuracy_improvement_pct_ci_t"]
    blo, bhi = s["accuracy_improvement_pct_ci_bootstrap"]
    dlo, dhi = s["ic_difference_ci_t"]
    lines = [
        f"graph-crypto: {res['data']} | {len(res['symbols'])} symbols {res['range'][0]} .. {res['range'][1]}",
        f"label {res['label']} | {s['n_folds']} folds (train {res['folds']['train_len']}, gap 1, test "
        f"{res['folds']['test_len']}, stride {res['folds']['stride']}) | seeds {res['seeds']}",
        f"{'':<26}{'accuracy':>10}{'IC':>10}",
        f"{'alpha158 only':<26}{s['accuracy_baseline']:>10.4f}{s['ic_baseline']:>10.4f}",
        f"{'alpha158 + graph':<26}{s['accuracy_hybrid']:>10.4f}{s['ic_hybrid']:>10.4f}",
        f"accuracy improvement: {s['accuracy_improvement_pct']:+.3f}% (95% CI t [{lo:+.3f}, {hi:+.3f}], "
        f"bootstrap [{blo:+.3f}, {bhi:+.3f}]); hybrid better in {s['hybrid_better_folds']}/{s['n_folds']} folds",
        f"IC difference: {s['ic_difference']:+.4f} (95% CI [{dlo:+.4f}, {dhi:+.4f}])",
        f"claimed +{s['claim_pct'][0]:g}..{s['claim_pct'][1]:g}%: {s['verdict']}",
    ]
    return "\n".join(lines)
