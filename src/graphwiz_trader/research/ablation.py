"""Ablations of graph feature sets: the same folds and seeds for every variant, Rank IC with dependence-aware CIs.

Protocol (issue 13):

- label: the cross-sectional rank of the forward log return over ``h`` bars
  (:func:`graphwiz_trader.models.targets.cross_sectional_rank`), one run per horizon;
- every variant (a set of feature columns, optionally one model per market regime) is fitted on the same
  walk-forward folds with the same LightGBM seeds (:func:`graphwiz_trader.research.experiment.run_walkforward_many`:
  one task per fold x variant x seed, serial or on Ray, identical numbers either way);
- primary figure: Rank IC, the Spearman correlation across instruments at each test datetime between the score
  and the forward return, averaged within an evaluation block: the walk-forward fold (``block="fold"``) or the
  calendar month of the test datetime (``block="month"``, for a single long test period such as Qlib's CSI300
  split). Seeds are averaged block by block;
- the difference of each variant to the baseline, block by block, summarised by
  :func:`graphwiz_trader.research.stats.fold_statistics`: the mean, a moving-block bootstrap 95% interval over
  consecutive blocks (the primary interval), the HAC interval and the lag-1 autocorrelation, and the number of
  blocks in which the variant is ahead;
- naive scores (no model, e.g. the last bar's reversal) are scored on the same test rows beside the models;
- SHAP: LightGBM's ``pred_contrib`` mean |SHAP| per column on each fold's test rows, summed per family, as a
  share of the total; its stability is the share's spread across folds and the mean Spearman correlation of the
  family ranking between consecutive folds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import SettingError
from graphwiz_trader.models.metrics import ic_series
from graphwiz_trader.models.targets import LabelSpec, cross_sectional_rank
from graphwiz_trader.research.experiment import WalkForwardResult, WalkForwardSettings, run_walkforward_many
from graphwiz_trader.research.stats import fold_statistics

log = logging.getLogger(__name__)

BASELINE = "alpha158"
BLOCKS = ("fold", "month")
RANK_SCALE = float(np.sqrt(12.0))
"""The centred rank label is scaled to unit variance (what Qlib's ``CSRankNorm`` does), so that model settings
tuned on z-scored labels (the published CSI300 LightGBM's L1/L2 penalties) see the same label scale."""


@dataclass(frozen=True)
class Variant:
    """One feature set of the ablation.

    Attributes
    ----------
    name
        Row name in the tables (``alpha158``, ``+graph18``, ``+peer`` ...).
    columns
        Feature columns the model sees.
    split_by
        A column (not a model input) whose values get a model each, e.g. the market regime code.
    families
        ``{family: columns}`` of the graph columns it holds, for the SHAP shares.
    note
        One line on what the variant is.
    """

    name: str
    columns: tuple[str, ...]
    split_by: str | None = None
    families: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class AblationSettings:
    """Horizons (bars), seeds, folds and model (``walkforward``; its label, seed and gap are set per run)."""

    horizons: tuple[int, ...]
    seeds: tuple[int, ...]
    walkforward: WalkForwardSettings
    block: str = "fold"
    baseline: str = BASELINE
    level: float = 0.95
    n_resamples: int = 10_000

    def __post_init__(self) -> None:
        if not self.horizons or min(self.horizons) < 1:
            raise SettingError(f"ablation: horizons must be >= 1 bar, got {self.horizons}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise SettingError(f"ablation: seeds must be distinct and at least one, got {self.seeds}")
        if self.block not in BLOCKS:
            raise SettingError(f"ablation: block must be one of {', '.join(BLOCKS)}, got {self.block!r}")


@dataclass
class HorizonResult:
    """One horizon: Rank IC per block and variant, the statistics, predictions and SHAP shares."""

    horizon: int
    rank_ic: pd.DataFrame                     # blocks x variants (models and naive scores), seeds averaged
    accuracy: pd.DataFrame                    # blocks x model variants: cross-sectional accuracy of the seed-mean
    table: pd.DataFrame                       # one row per variant
    predictions: pd.DataFrame                 # (datetime, instrument) x variants (seed-mean score) + fold
    family_shap: dict[str, pd.DataFrame]      # variant -> folds x family share of mean |SHAP|
    shap_stability: dict[str, pd.DataFrame]   # variant -> family: mean share, std, top share, rank stability
    seconds: float

    def add_scores(self, scores: Mapping[str, pd.Series], kind: str, fwd: pd.Series, cfg: "AblationSettings") -> None:
        """Score other models (``kind`` = ``peer``) on the baseline's test rows and blocks; rebuild the table."""
        index = self.predictions.index
        folds = self.predictions["fold"] if "fold" in self.predictions else None
        kinds = dict(self.table["kind"])
        for name, score in scores.items():
            self.predictions[name] = score.reindex(index)
            self.rank_ic[name] = rank_ic_by_block(self.predictions[name], fwd, cfg.block, folds)
            kinds[name] = kind
        self.table = summarise(self.rank_ic, cfg, kinds)

    def against(self, label: pd.Series, cfg: "AblationSettings") -> pd.DataFrame:
        """Every scored column (model variants, then added scores) against another ``label`` on the same rows and
        blocks: IC (Pearson) and Rank IC, each the mean over blocks with its block-bootstrap and HAC intervals.

        Answers comparisons with published figures measured on a different label (Qlib's
        ``Ref($close, -2) / Ref($close, -1) - 1`` on CSI300) without refitting: the scores stay those of the
        ablation's own label."""
        folds = self.predictions["fold"] if "fold" in self.predictions else None
        rows = []
        for name in (c for c in self.predictions.columns if c != "fold"):
            row: dict[str, Any] = {"variant": name}
            for key, method in (("ic", "pearson"), ("ric", "spearman")):
                per = ic_by_block(self.predictions[name], label, cfg.block, folds, method=method).dropna()
                row.update({f"{key}_{k}": v for k, v in _stat_row(per, cfg, cfg.seeds[0]).items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("variant")

    def accuracy_table(self, cfg: "AblationSettings") -> pd.DataFrame:
        """Per model variant: cross-sectional accuracy and its relative change to the baseline in percent,
        ``100 (acc - acc_base) / acc_base`` block by block, with the block-bootstrap and HAC intervals."""
        base = self.accuracy[cfg.baseline]
        rows = []
        for name in self.accuracy.columns:
            row: dict[str, Any] = {"variant": name, "accuracy": float(self.accuracy[name].mean())}
            if name != cfg.baseline:
                rel = (100.0 * (self.accuracy[name] - base) / base).dropna()
                row.update({f"rel_{k}": v for k, v in _stat_row(rel, cfg, cfg.seeds[0]).items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("variant")


def _block_key(index: pd.Index, folds: pd.Series | None, block: str) -> pd.Series:
    dt = pd.DatetimeIndex(index)
    if block == "month":
        return pd.Series(dt.to_period("M").astype(str), index=index)
    if folds is None:
        raise SettingError("ablation: block='fold' needs the prediction folds")
    return folds


def rank_ic_by_block(score: pd.Series, fwd: pd.Series, block: str, folds: pd.Series | None = None) -> pd.Series:
    """Mean per-datetime Spearman IC of ``score`` with ``fwd`` within each block (fold id or calendar month)."""
    return ic_by_block(score, fwd, block, folds, method="spearman")


def ic_by_block(score: pd.Series, fwd: pd.Series, block: str, folds: pd.Series | None = None,
                method: str = "pearson") -> pd.Series:
    """Mean per-datetime IC (``pearson`` or ``spearman``) of ``score`` with ``fwd`` within each block."""
    ric = ic_series(score, fwd, method=method)
    if block == "fold":
        fold_of = folds.groupby(level="datetime").first() if folds is not None else None
        key = _block_key(ric.index, fold_of.reindex(ric.index) if fold_of is not None else None, block)
    else:
        key = _block_key(ric.index, None, block)
    return ric.groupby(key.to_numpy()).mean()


def xs_accuracy_by_block(score: pd.Series, fwd: pd.Series, block: str, folds: pd.Series | None = None) -> pd.Series:
    """Share of rows whose score and forward return fall on the same side of their datetime's median, per block
    (rows exactly at a median are left out): the "accuracy" of a cross-sectional call, 0.5 for a coin toss."""
    df = pd.concat({"s": score, "f": fwd}, axis=1, join="inner").dropna()
    g = df.groupby(level="datetime")
    ds = df["s"] - g["s"].transform("median")
    dfw = df["f"] - g["f"].transform("median")
    ok = (ds != 0) & (dfw != 0)
    hit = ((ds > 0) == (dfw > 0)).astype(np.float64).where(ok)
    per_dt = hit.groupby(level="datetime").mean().dropna()
    if block == "fold":
        fold_of = folds.groupby(level="datetime").first().reindex(per_dt.index) if folds is not None else None
        key = _block_key(per_dt.index, fold_of, block)
    else:
        key = _block_key(per_dt.index, None, block)
    return per_dt.groupby(key.to_numpy()).mean()


def family_shares(shap: pd.DataFrame, families: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per fold, each family's share of the total mean |SHAP| (all columns, Alpha158's included)."""
    total = shap.sum(axis=1).replace(0.0, np.nan)
    out = {fam: shap[[c for c in cols if c in shap.columns]].sum(axis=1) / total for fam, cols in families.items()}
    return pd.DataFrame(out)


def shap_stability(shares: pd.DataFrame) -> pd.DataFrame:
    """Per family: mean and std of its share across folds, the share of folds in which it ranks first among the
    families, and the mean Spearman correlation of the family ranking between consecutive folds."""
    if shares.empty:
        return pd.DataFrame()
    ranks = shares.rank(axis=1, ascending=False)
    first = (ranks == 1).mean(axis=0)
    rank_corr = float("nan")
    if shares.shape[1] > 1 and len(shares) > 1:
        cors = [ranks.iloc[i].corr(ranks.iloc[i + 1]) for i in range(len(ranks) - 1)]
        rank_corr = float(np.nanmean(cors)) if np.isfinite(cors).any() else float("nan")
    return pd.DataFrame({"mean_share": shares.mean(), "std_share": shares.std(ddof=1), "first_share": first,
                         "rank_corr_consecutive": rank_corr})


def _stat_row(values: pd.Series, cfg: AblationSettings, seed: int) -> dict[str, Any]:
    st = fold_statistics(values.to_numpy(dtype=np.float64), cfg.level, seed, cfg.n_resamples)
    boot = st["bootstrap_ci"]
    return {"mean": st["mean"], "boot_lo": boot[0] if boot else float("nan"),
            "boot_hi": boot[1] if boot else float("nan"), "hac_lo": st["ci_low"], "hac_hi": st["ci_high"],
            "lag1": st["lag1_autocorr"], "n_blocks": st["n"], "block_len": st["bootstrap_block"]}


def summarise(rank_ic: pd.DataFrame, cfg: AblationSettings, kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per variant: Rank IC (mean and intervals over blocks) and its difference to the baseline.

    ``kinds`` names what each column is (``model`` when absent; ``naive``, ``peer``)."""
    if cfg.baseline not in rank_ic.columns:
        raise SettingError(f"ablation: the baseline {cfg.baseline!r} is not among the variants "
                           f"{', '.join(rank_ic.columns)}")
    rows = []
    base = rank_ic[cfg.baseline]
    for name in rank_ic.columns:
        own = _stat_row(rank_ic[name].dropna(), cfg, cfg.seeds[0])
        row: dict[str, Any] = {"variant": name, "kind": (kinds or {}).get(name, "model"),
                               **{f"ric_{k}": v for k, v in own.items()}}
        if name != cfg.baseline:
            d = (rank_ic[name] - base).dropna()
            diff = _stat_row(d, cfg, cfg.seeds[0])
            row.update({f"diff_{k}": v for k, v in diff.items()})
            row["ahead_blocks"] = int((d > 0).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def run_ablation(features: pd.DataFrame, fwd_returns: Mapping[int, pd.Series], variants: Sequence[Variant],
                 cfg: AblationSettings, *, naive_scores: Mapping[str, pd.Series] | None = None,
                 workers: int | None = 1, ray_address: str | None = None,
                 progress: bool = True) -> dict[int, HorizonResult]:
    """Fit every variant on the same folds and seeds, per horizon, and summarise (see the module docstring).

    Parameters
    ----------
    features
        Every column any variant uses (and any ``split_by`` column), index ``(datetime, instrument)``.
    fwd_returns
        ``{h: forward log return over h bars}`` on the same index (the label is its cross-sectional rank).
    variants
        The feature sets; one of them is named ``cfg.baseline``.
    naive_scores
        ``{name: score}`` scored on the test rows without a model (higher = expected to outperform).

    Returns
    -------
    dict
        ``{h: HorizonResult}``.
    """
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise SettingError(f"ablation: variant names must be distinct, got {names}")
    if cfg.baseline not in names:
        raise SettingError(f"ablation: no variant is the baseline {cfg.baseline!r}")
    naive_scores = dict(naive_scores or {})
    out: dict[int, HorizonResult] = {}
    for h in cfg.horizons:
        if h not in fwd_returns:
            raise SettingError(f"ablation: no forward return for horizon {h}")
        t0 = time.perf_counter()
        fwd = fwd_returns[h]
        label = (cross_sectional_rank(fwd) * RANK_SCALE).rename("label")
        gap = max(cfg.walkforward.effective_gap, h)
        runs: dict[str, tuple[WalkForwardSettings, Sequence[str] | None]] = {}
        for v in variants:
            for s in cfg.seeds:
                c = replace(cfg.walkforward, label=LabelSpec("regression", h), seed=s, gap=gap, split_by=v.split_by)
                runs[f"{v.name}|{s}"] = (c, list(v.columns))
        res = run_walkforward_many(features, label, runs, workers=workers, ray_address=ray_address,
                                   progress=progress, desc=f"ablation h={h}")
        out[h] = _collect(h, res, variants, cfg, fwd, naive_scores, time.perf_counter() - t0)
        log.info("ablation h=%d: %d variants x %d seeds x %d folds in %.0f s", h, len(variants), len(cfg.seeds),
                 len(next(iter(res.values())).folds), out[h].seconds)
    return out


def _collect(h: int, res: dict[str, WalkForwardResult], variants: Sequence[Variant], cfg: AblationSettings,
             fwd: pd.Series, naive: Mapping[str, pd.Series], seconds: float) -> HorizonResult:
    ric: dict[str, pd.Series] = {}
    preds: dict[str, pd.Series] = {}
    fam_shap: dict[str, pd.DataFrame] = {}
    stability: dict[str, pd.DataFrame] = {}
    folds = None
    for v in variants:
        per_seed = [res[f"{v.name}|{s}"] for s in cfg.seeds]
        folds = per_seed[0].prediction_folds
        blocks = [rank_ic_by_block(r.predictions, fwd, cfg.block, r.prediction_folds) for r in per_seed]
        ric[v.name] = pd.concat(blocks, axis=1).mean(axis=1)
        preds[v.name] = pd.concat([r.predictions for r in per_seed], axis=1).mean(axis=1)
        if v.families:
            shap = sum(r.shap for r in per_seed) / len(per_seed)
            fam_shap[v.name] = family_shares(shap, v.families)
            stability[v.name] = shap_stability(fam_shap[v.name])
    accuracy = pd.DataFrame({v.name: xs_accuracy_by_block(preds[v.name], fwd, cfg.block, folds) for v in variants})
    test_index = preds[cfg.baseline].index
    for name, score in naive.items():
        s = score.reindex(test_index)
        ric[name] = rank_ic_by_block(s, fwd, cfg.block, folds)
    rank_ic = pd.DataFrame(ric).sort_index()
    table = summarise(rank_ic, cfg, {n: "naive" for n in naive})
    frame = pd.DataFrame(preds)
    if folds is not None:
        frame["fold"] = folds.reindex(frame.index).astype("Int64")
    frame.index = frame.index.set_names(["datetime", "instrument"])
    return HorizonResult(h, rank_ic, accuracy.sort_index(), table, frame, fam_shap, stability, seconds)
