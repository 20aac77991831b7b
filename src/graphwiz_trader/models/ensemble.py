"""Ensembles of signal generators.

- :class:`EnsembleSignalGenerator`: a fixed weighted average of member scores. Members' scores are
  first turned into per-datetime ranks in [0, 1] (cross-sectional) or, for a single instrument,
  into z-scores over the training period, so regressors and classifiers can be mixed.
- :class:`StackedSignalGenerator`: a meta-learner (ridge / logistic regression) fitted on
  OUT-OF-FOLD member predictions only: the training period is cut into ``k`` sequential blocks; block j
  is predicted by members fitted on blocks < j (with a gap of the label horizon); the meta-learner is
  fitted on those predictions; members are then refitted on the whole training period.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import SettingError
from graphwiz_trader.models import lgbm
from graphwiz_trader.models.generator import QlibSignalGenerator, as_bars, time_split
from graphwiz_trader.models.metrics import evaluate_predictions
from graphwiz_trader.models.targets import LabelSpec, make_label

log = logging.getLogger(__name__)


def _common_index(scores: list[pd.Series]) -> pd.Index:
    idx = scores[0].index
    for s in scores[1:]:
        idx = idx.intersection(s.index)
    return idx


def _prepare(generators: list[QlibSignalGenerator], data: Any, symbol_or_universe: Any, label: LabelSpec,
             split: tuple[float, float, float]) -> tuple[dict, list[pd.DataFrame], pd.Series, pd.Index, pd.Index, pd.Index]:
    """Bars, each member's features, the label and the (fit, stop, holdout) dates shared by all members."""
    bars = as_bars(data, symbol_or_universe)
    feats = [g.build_features(bars) for g in generators]
    dates = feats[0].index.get_level_values("datetime").unique().sort_values()
    fit_d, stop_d, hold_d = time_split(dates, split, label.horizon)
    return bars, feats, make_label(bars, label), fit_d, stop_d, hold_d


def _normalise(score: pd.Series, ref_mean: float | None = None, ref_std: float | None = None) -> pd.Series:
    n_inst = score.index.get_level_values("instrument").nunique()
    if n_inst > 1:
        return score.groupby(level="datetime").rank(pct=True)
    m = score.mean() if ref_mean is None else ref_mean
    s = score.std() if ref_std is None else ref_std
    return (score - m) / (s if s and s > 0 else 1.0)


@dataclass
class EnsembleSignalGenerator:
    """Weighted average of members' normalised scores; weights are normalised to sum to 1."""

    generators: list[QlibSignalGenerator]
    weights: list[float] | None = None
    label: LabelSpec | None = None
    split: tuple[float, float, float] = (0.6, 0.15, 0.25)
    _stats: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.generators:
            raise SettingError("an ensemble needs at least one generator")
        w = np.ones(len(self.generators)) if self.weights is None else np.asarray(self.weights, float)
        if len(w) != len(self.generators) or (w < 0).any() or w.sum() <= 0:
            raise SettingError("weights must be non-negative, one per generator, with a positive sum")
        self.weights = [float(x) for x in w / w.sum()]
        self.label = self.label or self.generators[0].label

    def _member_scores(self, bars: dict[str, pd.DataFrame], feats: list[pd.DataFrame]) -> list[pd.Series]:
        return [g.predict(f) for g, f in zip(self.generators, feats)]

    def combine(self, scores: list[pd.Series]) -> pd.Series:
        idx = _common_index(scores)
        parts = [_normalise(s.reindex(idx), *(self._stats[i] if self._stats else (None, None)))
                 for i, s in enumerate(scores)]
        return sum(w * p for w, p in zip(self.weights, parts)).rename("score")  # type: ignore[return-value]

    def train(self, data: pd.DataFrame | dict[str, pd.DataFrame], symbol_or_universe: Any = None) -> dict[str, Any]:
        """Fit every member on the fit/stop part and report the ensemble on the holdout."""
        bars, feats, label, fit_d, stop_d, hold_d = _prepare(self.generators, data, symbol_or_universe, self.label,
                                                             self.split)
        cs = len(bars) > 1
        for g, f in zip(self.generators, feats):
            g.fit(f, make_label(bars, g.label), fit_d, stop_d, cs)
        self._stats = []
        for g, f in zip(self.generators, feats):
            s = g.predict(f[f.index.get_level_values("datetime").isin(fit_d)])
            self._stats.append((float(s.mean()), float(s.std())))
        hold = [f[f.index.get_level_values("datetime").isin(hold_d)] for f in feats]
        score = self.combine(self._member_scores(bars, hold))
        # normalised scores are centred at 0.5 (ranks) or 0 (z): compare directions accordingly, against
        # the return relative to the cross-sectional mean on a universe (what a rank can order)
        centre = 0.5 if cs else 0.0
        ret = make_label(bars, LabelSpec("regression", self.label.horizon, relative=cs))
        ret_dt = ret.index.get_level_values("datetime")
        m = evaluate_predictions(score - centre, ret, False, train_label=ret[ret_dt.isin(fit_d.append(stop_d))])
        return {"val_accuracy": m["accuracy"], **{k: v for k, v in m.items() if k != "accuracy"},
                "weights": self.weights, "members": [g.name for g in self.generators],
                "holdout": [str(hold_d[0]), str(hold_d[-1])]}

    def predict(self, bars: dict[str, pd.DataFrame]) -> pd.Series:
        feats = [g.build_features(bars) for g in self.generators]
        return self.combine(self._member_scores(bars, feats))


@dataclass
class StackedSignalGenerator:
    """Meta-learner on out-of-fold member predictions (see module docstring)."""

    generators: list[QlibSignalGenerator]
    label: LabelSpec | None = None
    k_blocks: int = 4
    split: tuple[float, float, float] = (0.6, 0.15, 0.25)
    meta: Any = None

    def __post_init__(self) -> None:
        if not self.generators:
            raise SettingError("stacking needs at least one generator")
        self.label = self.label or self.generators[0].label

    def _meta_model(self) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        return LogisticRegression(C=1.0, max_iter=1000) if self.label.is_classification else Ridge(alpha=1.0)

    def _stack(self, scores: list[pd.Series]) -> pd.DataFrame:
        idx = _common_index(scores)
        return pd.concat([s.reindex(idx).rename(f"m{i}") for i, s in enumerate(scores)], axis=1)

    def train(self, data: pd.DataFrame | dict[str, pd.DataFrame], symbol_or_universe: Any = None) -> dict[str, Any]:
        bars, feats, label, fit_d, stop_d, hold_d = _prepare(self.generators, data, symbol_or_universe, self.label,
                                                             self.split)
        train_d = fit_d.append(stop_d)
        gap = self.label.horizon
        cs = len(bars) > 1
        blocks = np.array_split(np.arange(len(train_d)), self.k_blocks)
        oof_parts = []
        for j in range(1, self.k_blocks):
            first = blocks[j][0]
            past = train_d[: max(first - gap, 0)]
            block_d = train_d[blocks[j]]
            scores = []
            for g, f in zip(self.generators, feats):
                g.fit(f, make_label(bars, g.label), past, None, cs)
                scores.append(g.predict(f[f.index.get_level_values("datetime").isin(block_d)]))
            oof_parts.append(self._stack(scores))
        oof = pd.concat(oof_parts)
        target = lgbm.training_target(label, self.label, cs)  # what the members were fitted on
        y = target.reindex(oof.index)
        ok = y.notna() & oof.notna().all(axis=1)
        self.meta = self._meta_model().fit(oof[ok].to_numpy(), y[ok].to_numpy())
        for g, f in zip(self.generators, feats):
            g.fit(f, make_label(bars, g.label), fit_d, stop_d, cs)
        score = self.predict_features([f[f.index.get_level_values("datetime").isin(hold_d)] for f in feats])
        t_dt = target.index.get_level_values("datetime")
        fwd = make_label(bars, LabelSpec("regression", self.label.horizon, relative=self.label.relative)) \
            if self.label.kind == "direction" else None
        m = evaluate_predictions(score, target, self.label.is_classification, fwd,
                                 train_label=target[t_dt.isin(train_d)])
        coef = getattr(self.meta, "coef_", None)
        return {"val_accuracy": m["accuracy"], **{k: v for k, v in m.items() if k != "accuracy"},
                "oof_rows": int(ok.sum()), "meta_coef": None if coef is None else np.ravel(coef).tolist(),
                "holdout": [str(hold_d[0]), str(hold_d[-1])]}

    def predict_features(self, feats: list[pd.DataFrame]) -> pd.Series:
        x = self._stack([g.predict(f) for g, f in zip(self.generators, feats)])
        if self.label.is_classification:
            return pd.Series(self.meta.predict_proba(x.to_numpy())[:, 1], index=x.index, name="score")
        return pd.Series(self.meta.predict(x.to_numpy()), index=x.index, name="score")

    def predict(self, bars: dict[str, pd.DataFrame]) -> pd.Series:
        return self.predict_features([g.build_features(bars) for g in self.generators])
