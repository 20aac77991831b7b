"""``graphwiz reproduce graph-crypto``: do graph features raise accuracy on the hourly crypto universe?

The claim in circulation: graph features raise accuracy by 2-15%. The test, all out of sample:

- bars: Binance hourly candles of the 20 majors (``../shared/data/binance_spot_2020_2024``), 2021-2024;
- label: the direction of the next bar (``1[log(close[t+1]/close[t]) > 0]``); ``--relative`` asks
  instead whether an asset beats the cross-sectional mean;
- features computed once: Alpha158 (+ extras) via Qlib; graph features built from the bars, written to
  the graph store (embedded Bolt server unless ``NEO4J_URI``), read back, point-in-time;
- walk-forward folds (train 8,760 bars, gap = horizon, test 720, stride 720) identical for both feature
  sets, and the same LightGBM seeds; every fold x variant x seed is one task, run serially or on Ray
  (``workers``, ``ray_address``; :mod:`graphwiz_trader.research.fanout`) with the same numbers either way;
- per seed and fold: AUC, IC, Rank IC, and accuracy beside the majority rate (always the training fold's
  most frequent class) and balanced accuracy; bars whose next return is exactly zero have no direction
  and are dropped from the labels (their count is reported);
- the out-of-sample scores of every variant and seed go to ``predictions.parquet`` in the run folder
  (:func:`seed_predictions`: ``(datetime, instrument)`` index, columns ``alpha158_seed<s>`` and
  ``hybrid_seed<s>``, and ``fold``), ready for ``graphwiz backtest --scores``;
- the improvement ``100 * (acc_hybrid - acc_baseline) / acc_baseline`` and the AUC and IC differences
  per fold, averaged over seeds fold by fold (:func:`aggregate_folds`); their means with a HAC
  (Newey-West) interval across folds, the lag-1 autocorrelation of the fold differences and, from 10
  folds on, a moving-block bootstrap (:mod:`graphwiz_trader.research.stats`): consecutive folds share
  about 92% of their training bars, so they are not independent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.runs import atomic_write_bytes
from graphwiz_trader.data.paths import MAJORS_20
from graphwiz_trader.data.sources import load_bars
from graphwiz_trader.features.graph_pipeline import graph_features_for_bars
from graphwiz_trader.features.pipeline import alpha_features
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.research.compare import compare_results
from graphwiz_trader.research.experiment import (
    WalkForwardResult,
    WalkForwardSettings,
    predictions_frame,
    run_walkforward_many,
)
from graphwiz_trader.research.stats import fold_statistics

log = logging.getLogger(__name__)
CLAIM_PCT = (2.0, 15.0)


@dataclass(frozen=True)
class CryptoReproductionSettings:
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
    workers: int | None = None
    ray_address: str | None = None


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


FOLD_COLUMNS = ("auc_baseline", "auc_hybrid", "auc_difference", "ic_baseline", "ic_hybrid", "ic_difference",
                "majority_rate", "acc_baseline", "acc_hybrid", "balanced_acc_baseline", "balanced_acc_hybrid",
                "accuracy_improvement_pct")


def aggregate_folds(folds: pd.DataFrame, seed_improvements: list[float] | None = None) -> dict[str, Any]:
    """Summary and verdict from per-(seed, fold) rows (columns ``seed``, ``fold`` and :data:`FOLD_COLUMNS`).

    Each fold's values are first averaged over seeds; the means, HAC intervals, lag-1 autocorrelations and
    the block bootstrap are then taken across those seed-averaged folds in fold order.
    ``seed_improvements`` (each seed's mean improvement) gives the spread over seeds.
    """
    by_fold = folds.groupby("fold")[list(FOLD_COLUMNS)].mean().sort_index()
    stats = {k: fold_statistics(by_fold[k].to_numpy(dtype=float), seed=0)
             for k in ("auc_difference", "ic_difference", "accuracy_improvement_pct")}
    imp = by_fold["accuracy_improvement_pct"].to_numpy(dtype=float)
    acc = stats["accuracy_improvement_pct"]
    seeds = list(seed_improvements or [])
    out: dict[str, Any] = {
        "auc_baseline": float(by_fold["auc_baseline"].mean()), "auc_hybrid": float(by_fold["auc_hybrid"].mean()),
        "ic_baseline": float(by_fold["ic_baseline"].mean()), "ic_hybrid": float(by_fold["ic_hybrid"].mean()),
        "majority_rate": float(by_fold["majority_rate"].mean()),
        "accuracy_baseline": float(by_fold["acc_baseline"].mean()),
        "accuracy_hybrid": float(by_fold["acc_hybrid"].mean()),
        "balanced_accuracy_baseline": float(by_fold["balanced_acc_baseline"].mean()),
        "balanced_accuracy_hybrid": float(by_fold["balanced_acc_hybrid"].mean()),
    }
    for k, st in stats.items():
        out[k] = st["mean"]
        out[f"{k}_ci_hac"] = (st["ci_low"], st["ci_high"])
        out[f"{k}_lag1_autocorr"] = st["lag1_autocorr"]
        out[f"{k}_stats"] = st
    out.update({
        "accuracy_improvement_pct_ci_block_bootstrap": acc["bootstrap_ci"],
        "bootstrap_note": acc["bootstrap_note"],
        "accuracy_improvement_pct_std_over_seeds": float(np.std(seeds, ddof=1)) if len(seeds) > 1 else float("nan"),
        "hybrid_better_folds": int((imp > 0).sum()),
        "n_folds": int(len(imp)),
        "claim_pct": CLAIM_PCT,
        "verdict": verdict(acc["mean"], acc["ci_low"], acc["ci_high"]),
    })
    return out


def seed_predictions(runs: dict[int, dict[str, WalkForwardResult]]) -> pd.DataFrame:
    """Out-of-sample scores of every variant and seed on one ``(datetime, instrument)`` index.

    ``runs`` maps seed -> {variant: result}; the columns are ``<variant>_seed<seed>`` (in seed, then variant
    order) plus ``fold``, the walk-forward fold whose test part holds the row (all runs share the folds).
    """
    return predictions_frame({f"{v}_seed{s}": r for s, by_variant in runs.items() for v, r in by_variant.items()})


def write_predictions(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` as Parquet at ``path``, written atomically (temp file, fsync, rename)."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


@dataclass
class CryptoInputs:
    """Everything the walk-forward of graph-crypto reads, computed once in the driver.

    ``hybrid`` holds Alpha158 (+ extras) and the graph columns on the Alpha158 rows; the baseline uses
    ``alpha_columns`` of it. Timings in seconds.
    """

    bars: dict[str, pd.DataFrame]
    data_label: str
    hybrid: pd.DataFrame
    alpha_columns: list[str]
    graph_columns: list[str]
    spec: LabelSpec
    label: pd.Series
    fwd: pd.Series
    timings: dict[str, Any]


def crypto_inputs(cfg: CryptoReproductionSettings, progress: bool = True) -> CryptoInputs:
    """Load the bars, compute Alpha158 and the graph features (through the graph store), and the labels."""
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
    spec = LabelSpec("direction", 1, relative=cfg.relative)
    return CryptoInputs(
        bars=bars, data_label=data_label, hybrid=feats.join(gfeats, how="left"), alpha_columns=list(feats.columns),
        graph_columns=list(gfeats.columns), spec=spec, label=make_label(bars, spec),
        fwd=make_label(bars, LabelSpec("regression", 1, relative=cfg.relative)),
        timings={"load": t_load, "alpha158": t_alpha, "graph_total": t_graph, "graph": graph_timings})


def crypto_walkforward(inputs: CryptoInputs, cfg: CryptoReproductionSettings, progress: bool = True,
                       timings: dict[str, float] | None = None) -> dict[int, dict[str, WalkForwardResult]]:
    """Seed -> {"alpha158", "hybrid"} -> result: every fold x variant x seed one task of
    :func:`graphwiz_trader.research.experiment.run_walkforward_many` (``cfg.workers``, ``cfg.ray_address``;
    ``timings`` as there)."""
    base_cfg = WalkForwardSettings(train_len=cfg.train_len, test_len=cfg.test_len, stride=cfg.stride,
                                   label=inputs.spec, lgb_params=cfg.lgb_params, num_boost_round=cfg.num_boost_round,
                                   early_stopping_rounds=cfg.early_stopping_rounds, max_folds=cfg.max_folds)
    runs: dict[str, tuple[WalkForwardSettings, list[str] | None]] = {}
    for seed in cfg.seeds:
        runs[f"alpha158/{seed}"] = (replace(base_cfg, seed=seed), inputs.alpha_columns)
        runs[f"hybrid/{seed}"] = (replace(base_cfg, seed=seed), None)
    res = run_walkforward_many(inputs.hybrid, inputs.label, runs, inputs.fwd, workers=cfg.workers,
                               ray_address=cfg.ray_address, progress=progress, desc="walk-forward folds",
                               timings=timings)
    return {seed: {"alpha158": res[f"alpha158/{seed}"], "hybrid": res[f"hybrid/{seed}"]} for seed in cfg.seeds}


def run_graph_crypto(cfg: CryptoReproductionSettings, progress: bool = True) -> dict[str, Any]:
    """Run the comparison; returns every figure (per seed, per fold), timings and the verdict.

    Features are computed once (:func:`crypto_inputs`), then the folds of both variants and every seed
    fan out (:func:`crypto_walkforward`). ``timings_s["walkforward"]``: ``total`` is the wall time of the
    fan-out, ``alpha158`` and ``hybrid`` the summed task times of each variant.
    """
    from graphwiz_trader.research.fanout import describe
    from graphwiz_trader.research.report import write_walkforward_outputs

    t0 = time.perf_counter()
    inputs = crypto_inputs(cfg, progress)
    spec, fwd, bars = inputs.spec, inputs.fwd, inputs.bars
    tw = time.perf_counter()
    stages: dict[str, float] = {}
    runs = crypto_walkforward(inputs, cfg, progress, stages)
    t_wf: dict[str, Any] = {"total": time.perf_counter() - tw, "where": describe(cfg.workers, cfg.ray_address),
                            "stages": stages,
                            **{v: float(sum(r[v].folds["seconds"].sum() for r in runs.values()))
                               for v in ("alpha158", "hybrid")}}
    per_seed = []
    fold_rows = []
    first_results: dict[str, Any] | None = None
    first_cmp: dict[str, Any] = {}
    zero_rows = 0
    for seed, by_variant in runs.items():
        b, h = by_variant["alpha158"], by_variant["hybrid"]
        cmp = compare_results(b, h, seed=seed)
        zero_rows = int(b.folds["zero_return_rows"].sum())
        per_seed.append({"seed": seed, **{k: cmp[k] for k in ("auc_difference", "ic_difference",
                                                              "accuracy_improvement_pct",
                                                              "accuracy_improvement_pct_ci_hac", "majority_rate",
                                                              "hybrid_better_folds", "n_folds")},
                         "baseline": cmp["baseline"], "hybrid": cmp["hybrid"],
                         "fold_seconds": {"alpha158": b.folds["seconds"].tolist(), "hybrid": h.folds["seconds"].tolist()},
                         "fold_cpu_seconds": {"alpha158": b.folds["cpu_seconds"].tolist(),
                                              "hybrid": h.folds["cpu_seconds"].tolist()}})
        for row in cmp["per_fold"]:
            fold_rows.append({"seed": seed, **row})
        if first_results is None:
            first_results, first_cmp = {"alpha158": b, "hybrid": h}, cmp
    folds = pd.DataFrame(fold_rows)
    summary = aggregate_folds(folds, [s["accuracy_improvement_pct"] for s in per_seed])
    summary["zero_return_rows"] = zero_rows
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    folds.to_csv(out / "folds_all_seeds.csv", index=False)
    predictions = write_predictions(seed_predictions(runs), out / "predictions.parquet")
    paths = {}
    if first_results is not None:
        paths = write_walkforward_outputs(first_results, out, f"graph-crypto: {spec.describe()} (seed {cfg.seeds[0]})",
                                          first_cmp, inputs.data_label, fwd_returns=fwd)
    return {
        "data": inputs.data_label, "symbols": list(bars), "label": spec.describe(),
        "range": [str(min(df.index[0] for df in bars.values())), str(max(df.index[-1] for df in bars.values()))],
        "folds": {"train_len": cfg.train_len, "test_len": cfg.test_len, "stride": cfg.stride, "gap": 1,
                  "n_folds": summary["n_folds"]},
        "seeds": list(cfg.seeds), "summary": summary, "per_seed": per_seed,
        "graph_features": inputs.graph_columns,
        "timings_s": {**inputs.timings, "walkforward": t_wf, "total": time.perf_counter() - t0},
        "outputs": {**paths, "folds_all_seeds": str(out / "folds_all_seeds.csv"), "predictions": str(predictions)},
    }


def format_crypto_table(res: dict[str, Any]) -> str:
    """The printed summary: AUC and IC first, accuracy beside its naive baseline, intervals with their method."""
    s = res["summary"]
    lo, hi = s["accuracy_improvement_pct_ci_hac"]
    boot = s["accuracy_improvement_pct_ci_block_bootstrap"]
    dlo, dhi = s["ic_difference_ci_hac"]
    alo, ahi = s["auc_difference_ci_hac"]
    lines = [
        f"graph-crypto: {res['data']} | {len(res['symbols'])} symbols {res['range'][0]} .. {res['range'][1]}",
        f"label {res['label']} | {s['n_folds']} folds (train {res['folds']['train_len']}, gap 1, test "
        f"{res['folds']['test_len']}, stride {res['folds']['stride']}) | seeds {res['seeds']} | zero-return bars "
        f"dropped from the labels: {s.get('zero_return_rows', 0)} test rows",
        f"{'':<26}{'AUC':>10}{'IC':>10}{'accuracy':>10}{'balanced':>10}",
        f"{'alpha158 only':<26}{s['auc_baseline']:>10.4f}{s['ic_baseline']:>10.4f}{s['accuracy_baseline']:>10.4f}"
        f"{s['balanced_accuracy_baseline']:>10.4f}",
        f"{'alpha158 + graph':<26}{s['auc_hybrid']:>10.4f}{s['ic_hybrid']:>10.4f}{s['accuracy_hybrid']:>10.4f}"
        f"{s['balanced_accuracy_hybrid']:>10.4f}",
        f"{'training-fold majority':<26}{'':>10}{'':>10}{s['majority_rate']:>10.4f}{0.5:>10.4f}",
        f"AUC difference: {s['auc_difference']:+.4f} (95% HAC CI [{alo:+.4f}, {ahi:+.4f}]); IC difference: "
        f"{s['ic_difference']:+.4f} (95% HAC CI [{dlo:+.4f}, {dhi:+.4f}], lag-1 autocorrelation "
        f"{s['ic_difference_lag1_autocorr']:+.2f})",
        f"accuracy improvement: {s['accuracy_improvement_pct']:+.3f}% (95% HAC CI across folds [{lo:+.3f}, {hi:+.3f}], "
        f"lag-1 autocorrelation {s['accuracy_improvement_pct_lag1_autocorr']:+.2f}); hybrid better in "
        f"{s['hybrid_better_folds']}/{s['n_folds']} folds",
        f"{s['bootstrap_note']}" + (f": [{boot[0]:+.3f}, {boot[1]:+.3f}]" if boot else ""),
        f"claimed +{s['claim_pct'][0]:g}..{s['claim_pct'][1]:g}%: {s['verdict']}",
    ]
    return "\n".join(lines)
