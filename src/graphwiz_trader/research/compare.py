"""Hybrid (Alpha158 + graph) against Alpha158 alone on identical walk-forward folds.

:func:`compare_results` pairs two walk-forward runs fold by fold; :func:`compare_hybrid_with_baseline`
runs both for a :class:`~graphwiz_trader.models.hybrid.HybridSignalGenerator` (its public
``compare_with_baseline`` delegates here). Differences are hybrid minus baseline per fold; their means
carry the dependence-aware statistics of :mod:`graphwiz_trader.research.stats` (HAC interval, lag-1
autocorrelation, a moving-block bootstrap only from 10 folds on). AUC and IC come first; accuracy is
always shown beside the majority rate of the same folds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from graphwiz_trader.errors import SettingError
from graphwiz_trader.models.generator import QlibSignalGenerator, as_bars
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.research.experiment import (
    WalkForwardResult,
    WalkForwardSettings,
    predictions_frame,
    run_walkforward,
)
from graphwiz_trader.research.stats import fold_statistics

if TYPE_CHECKING:
    from graphwiz_trader.models.hybrid import HybridSignalGenerator

log = logging.getLogger(__name__)


def compare_results(baseline: WalkForwardResult, hybrid: WalkForwardResult, seed: int = 0) -> dict[str, Any]:
    """Hybrid against baseline on the same folds: per-fold values, differences and their statistics.

    ``accuracy_improvement_pct`` = mean over folds of ``100 * (acc_hybrid - acc_baseline) / acc_baseline``;
    ``auc_difference`` and ``ic_difference`` are means of the per-fold differences. Each has
    ``<name>_stats`` (:func:`fold_statistics`) and ``<name>_ci_hac``; the accuracy improvement also
    ``accuracy_improvement_pct_ci_block_bootstrap`` (``None`` below 10 folds, see ``bootstrap_note``).

    Raises
    ------
    ValueError
        when the two runs were not made on the same folds.
    """
    b, h = baseline.folds.set_index("fold"), hybrid.folds.set_index("fold")
    if not b.index.equals(h.index) or not (b["test_start"] == h["test_start"]).all():
        raise SettingError("baseline and hybrid were not run on the same folds")
    rel = 100.0 * (h["accuracy"] - b["accuracy"]) / b["accuracy"]
    diffs = {"auc_difference": h["auc"] - b["auc"], "ic_difference": h["ic"] - b["ic"],
             "accuracy_improvement_pct": rel}
    per_fold = pd.DataFrame({
        "test_start": b["test_start"], "auc_baseline": b["auc"], "auc_hybrid": h["auc"],
        "auc_difference": diffs["auc_difference"], "ic_baseline": b["ic"], "ic_hybrid": h["ic"],
        "ic_difference": diffs["ic_difference"], "majority_rate": b["majority_rate"],
        "acc_baseline": b["accuracy"], "acc_hybrid": h["accuracy"], "balanced_acc_baseline": b["balanced_accuracy"],
        "balanced_acc_hybrid": h["balanced_accuracy"], "accuracy_improvement_pct": rel}).reset_index()
    out: dict[str, Any] = {"baseline": baseline.summary(), "hybrid": hybrid.summary(),
                           "per_fold": per_fold.to_dict(orient="records")}
    for name, values in diffs.items():
        st = fold_statistics(values.to_numpy(dtype=float), seed=seed)
        out[name] = st["mean"]
        out[f"{name}_ci_hac"] = (st["ci_low"], st["ci_high"])
        out[f"{name}_stats"] = st
    acc = out["accuracy_improvement_pct_stats"]
    out["accuracy_improvement_pct_ci_block_bootstrap"] = acc["bootstrap_ci"]
    out["bootstrap_note"] = acc["bootstrap_note"]
    out["majority_rate"] = float(b["majority_rate"].mean())
    out["hybrid_better_folds"] = int((rel > 0).sum())
    out["n_folds"] = int(len(rel))
    return out


def compare_hybrid_with_baseline(generator: "HybridSignalGenerator", data: pd.DataFrame | dict[str, pd.DataFrame],
                                 symbol_or_universe: str | list[str] | None = None, train_len: int | None = None,
                                 test_len: int | None = None, stride: int | None = None, gap: int | None = None,
                                 max_folds: int | None = None, seed: int | None = None,
                                 with_predictions: bool = False) -> dict[str, Any]:
    """Walk-forward Alpha158-only vs ``generator``'s Alpha158 + graph features on identical folds.

    Defaults: test windows of 1/8 of the bars, training of 1/2, stride = test length, gap = label horizon.
    The generator's label, seed and LightGBM settings are used for both runs.

    Returns
    -------
    :func:`compare_results`' dict plus ``folds`` (lengths in bars, gap, count) and ``graph_features``;
    with ``with_predictions`` also ``predictions``: both runs' out-of-sample scores
    (:func:`~graphwiz_trader.research.experiment.predictions_frame`: columns ``alpha158``, ``hybrid``, ``fold``).
    """
    bars = as_bars(data, symbol_or_universe)
    alpha = QlibSignalGenerator.build_features(generator, bars)
    hybrid = alpha.join(generator.graph_features(bars), how="left")
    spec = generator.label
    label = make_label(bars, spec)
    fwd = make_label(bars, LabelSpec("regression", spec.horizon, relative=spec.relative))
    n = alpha.index.get_level_values("datetime").nunique()
    test_len = test_len or max(n // 8, 10)
    train_len = train_len or max(n // 2, 10)
    cfg = WalkForwardSettings(train_len=train_len, test_len=test_len, stride=stride, gap=gap, label=spec,
                            seed=generator.seed if seed is None else seed, lgb_params=generator.lgb_params,
                            num_boost_round=generator.num_boost_round,
                            early_stopping_rounds=generator.early_stopping_rounds, max_folds=max_folds)
    base_res = run_walkforward(alpha, label, cfg, fwd, name="alpha158")
    hyb_res = run_walkforward(hybrid, label, cfg, fwd, name="hybrid")
    out = compare_results(base_res, hyb_res, seed=cfg.seed)
    out["folds"] = {"train_len": train_len, "test_len": test_len, "stride": cfg.stride or test_len,
                    "gap": cfg.effective_gap, "n_folds": int(len(base_res.folds))}
    out["graph_features"] = [c for c in hybrid.columns if c.startswith("G_")]
    if with_predictions:
        out["predictions"] = predictions_frame({"alpha158": base_res, "hybrid": hyb_res})
    lo, hi = out["ic_difference_ci_hac"]
    log.info("hybrid vs baseline: AUC difference %+.4f, IC difference %+.4f (HAC CI [%+.4f, %+.4f]), "
             "accuracy %+.3f%% (majority rate %.4f)", out["auc_difference"], out["ic_difference"], lo, hi,
             out["accuracy_improvement_pct"], out["majority_rate"])
    return out
