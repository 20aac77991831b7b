"""Scheduled champion/challenger retraining of the running strategy's model, with versions and rollback.

Every ``service.retrain.interval_hours`` (:meth:`ChampionChallenger.due`), at decision time t:

1. the newest ``strategy.train_window_bars + retrain.test_bars`` bars up to t are read from the engine;
2. the latest walk-forward fold: the **test** part is the newest ``test_bars`` bars, the **train** part the
   ``train_window_bars`` before them; the challenger is trained on the train part only (in a worker thread);
3. both models score the test bars where both are out of sample (after the champion's training data ended, so
   neither has seen them); labels come from bars up to t only (the last ``horizon`` bars have none);
4. the metric (``ic``: mean cross-sectional Pearson IC of scores vs forward returns; ``accuracy``: share of
   directions right) of the challenger must beat the champion's by ``retrain.margin``; then the challenger, the
   model that was evaluated, is deployed (it replaces the strategy's model between cycles), else it is discarded.

Every challenger is logged to the mlflow store (``qlib.mlflow_dir`` or ``runs/mlruns``, experiment
``retrain.experiment``) with both metrics and the decision; deployed versions are saved under ``model_dir`` and
recorded in the journal (``record_model_version``; ``info.events`` lists each deployment and rollback).
:meth:`ChampionChallenger.rollback` redeploys a previous version from its saved folder.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import RetrainSettings
from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.strategies.signals import release_training_memory

log = logging.getLogger(__name__)

__all__ = ["ChampionChallenger", "RetrainDecision", "RetrainError", "fold_metric"]

MIN_TEST_BARS = 24


class RetrainError(GraphwizError):
    """Retraining or rollback cannot be done (too little history, unknown version, no saved model)."""


@dataclass
class RetrainDecision:
    """One champion/challenger round: versions, both metrics on the same fold, and whether it was deployed."""

    as_of: str
    champion: str | None
    challenger: str
    metric: str
    champion_score: float
    challenger_score: float
    margin: float
    deployed: bool
    test_bars: int
    reason: str
    info: dict[str, Any] = field(default_factory=dict)


def fold_metric(scores: pd.Series, forward: pd.Series, metric: str, neutral: float) -> float:
    """``ic``: mean over bars of the cross-sectional Pearson correlation of ``scores`` and ``forward`` returns
    (bars with fewer than 2 symbols or no spread skipped); ``accuracy``: share of rows whose side of ``neutral``
    matches the sign of the forward return (zero returns left out). Both indexed ``(datetime, instrument)``."""
    df = pd.concat({"s": scores, "r": forward}, axis=1, join="inner").dropna()
    if not len(df):
        return math.nan
    if metric == "accuracy":
        d = df[df["r"] != 0]
        return float(((d["s"] > neutral) == (d["r"] > 0)).mean()) if len(d) else math.nan
    ics = []
    for _, g in df.groupby(level="datetime"):
        if len(g) >= 2 and g["s"].std() > 1e-12 and g["r"].std() > 1e-12:
            ics.append(float(np.corrcoef(g["s"], g["r"])[0, 1]))
    return float(np.mean(ics)) if ics else math.nan


def default_challenger(template: Any, bars: dict[str, pd.DataFrame]) -> Any:
    """A fresh generator of the champion's kind and settings, trained on ``bars``."""
    gen = copy.copy(template)
    gen.booster, gen.feature_columns, gen.meta = None, None, {}
    gen.train(bars, list(bars))
    return gen


class ChampionChallenger:
    """Champion/challenger rounds for one running strategy (see the module docstring).

    Parameters
    ----------
    strategy : the running strategy (its ``scores`` must be a trained model, ``ModelScores``).
    settings : ``service.retrain``.
    model_dir : where deployed versions are saved (``<model_dir>/<version>``).
    mlflow_dir : the mlflow store (default ``qlib.mlflow_dir`` of the strategy's settings, else ``runs/mlruns``).
    challenger : ``(template generator, train bars) -> trained generator`` (default: :func:`default_challenger`).
    """

    def __init__(self, strategy: Any, settings: RetrainSettings, model_dir: str | Path, *,
                 mlflow_dir: str | Path | None = None,
                 challenger: Callable[[Any, dict[str, pd.DataFrame]], Any] = default_challenger) -> None:
        scores = strategy.scores
        if not hasattr(scores, "gen") or not hasattr(scores, "trained_until"):
            raise RetrainError("retraining needs a model-driven strategy (not a fixed score panel)")
        self.strategy, self.cfg, self.model_dir = strategy, settings, Path(model_dir)
        if mlflow_dir is None:
            from graphwiz_trader.data.qlib_runtime import default_mlflow_dir

            mlflow_dir = strategy.settings.qlib.mlflow_dir or default_mlflow_dir()
        self.mlflow_dir = Path(mlflow_dir).resolve()
        self.challenger = challenger
        self.last_round: pd.Timestamp | None = None
        self.history: list[str] = [v for v in [scores.version] if v]       # deployed versions, oldest first
        self.decisions: list[RetrainDecision] = []

    def due(self, t: pd.Timestamp) -> bool:
        """A round is due ``interval_hours`` after the last round (or after the champion's training data ended)."""
        ref = self.last_round or self.strategy.scores.trained_until
        return ref is None or (t - ref) >= pd.Timedelta(hours=self.cfg.interval_hours)

    async def run(self, t: pd.Timestamp, lock: asyncio.Lock | None = None) -> RetrainDecision:
        """One round at ``t`` (see the module docstring); the swap happens under ``lock`` (the cycle lock)."""
        st = self.strategy
        n_train, n_test = int(st.cfg.train_window_bars), int(self.cfg.test_bars)
        hist = await st.engine.history(st.symbols, n_train + n_test)
        bars = {s: df[df.index <= t] for s, df in hist.items() if len(df)}
        self.last_round = t
        try:
            decision = await asyncio.to_thread(self._evaluate, bars, t, n_train, n_test)
        finally:
            # the challenger shares the champion's feature caches (a shallow copy): both windows' graph
            # features would stay for ever, a round at a time (the soak's memory grew ~40 MB per round)
            release_training_memory(self.strategy.scores.gen)
        self.decisions.append(decision)
        self._log_mlflow(decision)
        if decision.deployed:
            async with lock if lock is not None else _nolock():
                self._deploy(decision.info.pop("generator"), decision.challenger, "deploy", decision)
        else:
            decision.info.pop("generator", None)
        log.info("retrain at %s: challenger %s %s %.4f vs champion %s %.4f (margin %.4f): %s", t,
                 decision.challenger, decision.metric, decision.challenger_score, decision.champion,
                 decision.champion_score, decision.margin, "DEPLOYED" if decision.deployed else "kept the champion")
        return decision

    def _evaluate(self, bars: dict[str, pd.DataFrame], t: pd.Timestamp, n_train: int, n_test: int) -> RetrainDecision:
        from graphwiz_trader.models.targets import LabelSpec, make_label

        scores = self.strategy.scores
        champ = scores.gen
        idx = pd.DatetimeIndex(sorted(set().union(*[df.index for df in bars.values()])))
        if len(idx) < n_test + MIN_TEST_BARS * 2:
            raise RetrainError(f"retraining at {t} needs {n_train + n_test} bars of history; the engine has {len(idx)}")
        test_start = idx[-n_test]
        train = {s: df[df.index < test_start].iloc[-n_train:] for s, df in bars.items()}
        t0 = time.perf_counter()
        gen = self.challenger(champ, train)
        seconds = time.perf_counter() - t0
        trained_until = max(df.index[-1] for df in train.values())
        fp = (gen.meta or {}).get("data_fingerprint", "")
        version = f"{getattr(gen, 'name', 'model')}-{trained_until:%Y%m%dT%H%M}-{fp[:8] or 'challenger'}-cc"
        oos_from = max(test_start, (scores.trained_until or test_start) + pd.Timedelta(microseconds=1))
        feats = gen.build_features(bars)
        dt = feats.index.get_level_values("datetime")
        dt_utc = dt.tz_localize("UTC") if dt.tz is None else dt.tz_convert("UTC")
        test = feats[(dt_utc >= oos_from) & (dt_utc <= t)]
        fwd = make_label(bars, LabelSpec("regression", champ.label.horizon, relative=champ.label.relative))
        fwd = fwd.reindex(test.index).dropna()
        metric, neutral = self.cfg.metric, float(scores.neutral)
        n_bars = int(fwd.index.get_level_values("datetime").nunique())
        base = dict(as_of=str(t), champion=scores.version, challenger=version, metric=metric, margin=self.cfg.margin,
                    test_bars=n_bars)
        if n_bars < MIN_TEST_BARS:
            return RetrainDecision(**base, champion_score=math.nan, challenger_score=math.nan, deployed=False,
                                   reason=f"only {n_bars} out-of-sample bars for both models (< {MIN_TEST_BARS})",
                                   info={"seconds": seconds})
        test = test.loc[fwd.index]
        s_champ = fold_metric(champ.predict(test), fwd, metric, neutral)
        s_chal = fold_metric(gen.predict(test), fwd, metric, neutral)
        better = not math.isnan(s_chal) and (math.isnan(s_champ) or s_chal >= s_champ + self.cfg.margin)
        reason = (f"challenger {metric} {s_chal:.4f} {'>=' if better else '<'} champion {s_champ:.4f} + margin "
                  f"{self.cfg.margin:.4f} on the fold {fwd.index.get_level_values('datetime').min()} .. "
                  f"{fwd.index.get_level_values('datetime').max()}")
        return RetrainDecision(**base, champion_score=s_champ, challenger_score=s_chal, deployed=better,
                               reason=reason, info={"seconds": seconds, "trained_until": str(trained_until),
                                                    "generator": gen})

    def _deploy(self, gen: Any, version: str, event: str, decision: RetrainDecision | None = None) -> None:
        scores, st = self.strategy.scores, self.strategy
        path = self.model_dir / version
        if not (path / "meta.json").is_file():
            gen.save_model(path)
        previous = scores.version
        scores.gen, scores.version = gen, version
        rng = (gen.meta or {}).get("data_range")
        scores.trained_until = pd.Timestamp(rng[1]) if rng else scores.trained_until
        if version in self.history:
            self.history.remove(version)
        self.history.append(version)
        if st.journal is not None:
            old = st.journal.model_versions_frame(st.run_id)
            prior = old[old["version"] == version]["info"] if len(old) else []
            info = json.loads(prior.iloc[0]) if len(prior) else {}
            events = list(info.get("events", [])) + [{"event": event, "replaced": previous,
                                                     "utc": pd.Timestamp.now(tz="UTC").isoformat()}]
            info.update({"version": version, "saved_to": str(path), "events": events})
            if decision is not None:
                info.update({"metric": decision.metric, "challenger_score": decision.challenger_score,
                             "champion_score": decision.champion_score, "reason": decision.reason})
            st.journal.record_model_version(st.run_id, version, info)
        log.info("model %s %s (replaces %s)", version, "deployed" if event == "deploy" else "rolled back to",
                 previous)

    async def rollback(self, version: str | None = None, lock: asyncio.Lock | None = None) -> str:
        """Redeploy ``version`` (default: the one deployed before the current) from its saved folder."""
        if version is None:
            if len(self.history) < 2:
                raise RetrainError("no previous model version to roll back to")
            version = self.history[-2]
        path = self.model_dir / version
        if not (path / "meta.json").is_file():
            known = ", ".join(p.name for p in sorted(self.model_dir.glob("*")) if (p / "meta.json").is_file())
            raise RetrainError(f"no saved model {version!r} under {self.model_dir} (saved: {known or 'none'})")
        scores = self.strategy.scores
        gen = await asyncio.to_thread(lambda: type(scores.gen).load_model(path, **scores._load_overrides()))
        async with lock if lock is not None else _nolock():
            self._deploy(gen, version, "rollback")
        return version

    def _log_mlflow(self, d: RetrainDecision) -> None:
        """Record the round in the mlflow store (a failure is logged, never raised)."""
        try:
            from mlflow.tracking import MlflowClient

            from graphwiz_trader.data.qlib_runtime import ensure_experiment

            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.mlflow_dir.mkdir(parents=True, exist_ok=True)
            ensure_experiment(self.cfg.experiment)
            client = MlflowClient(tracking_uri=self.mlflow_dir.as_uri())
            exp = client.get_experiment_by_name(self.cfg.experiment)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(self.cfg.experiment)
            run = client.create_run(exp_id, run_name=d.challenger,
                                    tags={"graphwiz.run_id": self.strategy.run_id, "graphwiz.role": "challenger",
                                          "graphwiz.deployed": str(d.deployed).lower(),
                                          "graphwiz.champion": str(d.champion)})
            rid = run.info.run_id
            for k, v in {"metric": d.metric, "margin": d.margin, "as_of": d.as_of, "test_bars": d.test_bars,
                         "champion": d.champion, "challenger": d.challenger}.items():
                client.log_param(rid, k, v)
            for k, v in {"challenger_score": d.challenger_score, "champion_score": d.champion_score,
                         "deployed": float(d.deployed)}.items():
                if not math.isnan(float(v)):
                    client.log_metric(rid, k, float(v))
            client.set_terminated(rid)
            d.info["mlflow_run_id"] = rid
        except Exception as exc:  # noqa: BLE001 - the store must never stop the trading loop
            log.error("could not record the retraining round in mlflow (%s): %s", self.mlflow_dir, exc)


class _nolock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
