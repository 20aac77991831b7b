"""Where a strategy's scores come from: a fixed score panel, or a model on the newest bar's features.

A score source gives, at bar t, one score per symbol from data up to t only:

- :class:`PanelScores`: a ``datetime x symbol`` panel known in advance (``predictions.parquet`` of research, the
  synthetic market's planted signal); the row at t is read, nothing is trained. Parity with the backtester
  runs on this.
- :class:`ModelScores`: a LightGBM generator (:class:`~graphwiz_trader.models.generator.QlibSignalGenerator`, or
  the hybrid :class:`~graphwiz_trader.models.hybrid.HybridSignalGenerator` with graph features). ``prepare``
  loads a saved model or trains one on the warm-up history only; ``score`` computes Alpha158 (+ extras) for the
  newest bar only (:mod:`.alpha_last`) and, for the hybrid, the newest bar's ``G_*`` features from the live
  graph (:mod:`.live_graph`), then predicts; ``retrain`` fits again on the trailing ``train_window_bars`` bars
  ending at t (labels need ``horizon`` later bars, so the last ``horizon`` bars carry none: no look-ahead).

Scores are reported as given (a probability for a direction model); ``neutral`` is the no-view value (0.5 for a
classifier's probability, 0 otherwise) that the strategy subtracts before thresholds and expected returns.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.features.alpha158 import DEFAULT_EXTRAS
from graphwiz_trader.strategies.alpha_last import ALPHA_LOOKBACK, alpha_last_numpy, alpha_last_qlib
from graphwiz_trader.strategies.bars import BarBuffer

log = logging.getLogger(__name__)

__all__ = ["ModelScores", "PanelScores", "release_training_memory"]


def release_training_memory(gen: Any) -> None:
    """Give back what a training allocated, so a strategy's memory stays flat over its retrainings.

    The hybrid generator caches the graph features of every bar window it built features for (a research
    convenience); a strategy never builds features for an old training window again, so that cache only grows
    (about 7 MB per retraining for 20 symbols). It is emptied, the garbage collected, and glibc asked to return
    the freed pages (``malloc_trim``; a no-op elsewhere). Champion/challenger rounds of the service call it too.
    """
    import ctypes
    import ctypes.util
    import gc

    cache = getattr(gen, "_graph_cache", None)
    if isinstance(cache, dict):
        cache.clear()
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass


class PanelScores:
    """Scores read from a ``datetime x symbol`` panel (the row at the decision bar; NaN = no score).

    ``neutral`` is the panel's no-view value (0 for return forecasts and z-scores).
    """

    name = "panel"

    def __init__(self, panel: pd.DataFrame, neutral: float = 0.0) -> None:
        if not isinstance(panel.index, pd.DatetimeIndex) or panel.index.tz is None:
            raise DataError("a score panel needs a tz-aware UTC DatetimeIndex (decision bars)")
        self.panel = panel.astype(np.float64)
        self.neutral = float(neutral)
        self.classification = False
        self.horizon = 1
        digest = hashlib.sha256(pd.util.hash_pandas_object(self.panel, index=True).to_numpy().tobytes()).hexdigest()
        self.version = f"panel-{digest[:12]}"
        self.warmup_bars = 1

    def prepare(self, buffer: BarBuffer) -> dict[str, Any]:
        return {"version": self.version, "source": "score panel", "rows": len(self.panel)}

    def score(self, buffer: BarBuffer, t: pd.Timestamp) -> pd.Series:
        if t not in self.panel.index:
            return pd.Series(np.nan, index=list(buffer.symbols))
        return self.panel.loc[t].reindex(list(buffer.symbols))

    def due(self, t: pd.Timestamp) -> bool:
        return False

    def retrain(self, buffer: BarBuffer, t: pd.Timestamp) -> dict[str, Any] | None:
        return None


class ModelScores:
    """A LightGBM generator scoring the newest bar (see the module docstring).

    Parameters
    ----------
    generator : a :class:`QlibSignalGenerator` or :class:`HybridSignalGenerator` (untrained when ``model_path``
        is None: trained in :meth:`prepare`).
    graph : the :class:`~graphwiz_trader.strategies.live_graph.LiveGraph` (needed when the model uses ``G_*``).
    model_path : a saved model folder to load; None: train on the warm-up history.
    train_window_bars : bars of history a (re)training uses.
    retrain_every : time between retrainings (None: never).
    features_engine : ``numpy`` (the newest bar's Alpha158 evaluated directly, equal to Qlib's) or ``qlib``
        (Qlib's Alpha158 on the trailing 64 bars).
    model_dir : where trained models are saved (``<model_dir>/<version>``; None: not saved).
    """

    def __init__(self, generator: Any, graph: Any = None, model_path: str | Path | None = None,
                 train_window_bars: int = 2160, retrain_every: pd.Timedelta | None = None,
                 features_engine: str = "numpy", model_dir: str | Path | None = None) -> None:
        if features_engine not in ("numpy", "qlib"):
            raise ConfigError(f"features_engine must be 'numpy' or 'qlib', got {features_engine!r}")
        self.gen = generator
        self.graph = graph
        self.model_path = Path(model_path) if model_path is not None else None
        self.train_window_bars = int(train_window_bars)
        self.retrain_every = retrain_every
        self.features_engine = features_engine
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.version: str | None = None
        self.trained_until: pd.Timestamp | None = None
        self.name = getattr(generator, "name", "model")
        self.info: dict[str, Any] = {}

    @property
    def classification(self) -> bool:
        return bool(self.gen.label.is_classification)

    @property
    def neutral(self) -> float:
        return 0.5 if self.classification else 0.0

    @property
    def horizon(self) -> int:
        return int(self.gen.label.horizon)

    @property
    def warmup_bars(self) -> int:
        return self.train_window_bars if self.model_path is None else ALPHA_LOOKBACK + 1

    def _uses_graph(self) -> bool:
        return any(c.startswith("G_") for c in (self.gen.feature_columns or []))

    # -------------------------------------------------------------------------------------- models
    def prepare(self, buffer: BarBuffer) -> dict[str, Any]:
        """Load the saved model, or train on the buffer (the warm-up history, bars up to now)."""
        if self.model_path is not None:
            t0 = time.perf_counter()
            self.gen = type(self.gen).load_model(self.model_path, **self._load_overrides())
            meta = self.gen.meta
            self.version = f"{self.gen.name}-{meta.get('data_fingerprint', 'loaded')}"
            self.info = {"version": self.version, "loaded_from": str(self.model_path), "trained_on": meta.get("data_range"),
                         "metrics": meta.get("metrics"), "seconds": time.perf_counter() - t0}
            if self._uses_graph() and self.graph is None:
                raise ConfigError(f"the model at {self.model_path} uses graph features (G_*) but the strategy has no "
                                  "graph; use create_qlib_strategy_v2 with use_graph_features: true")
            return self.info
        return self.retrain(buffer, buffer.newest, reason="initial")

    def _load_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("work_dir", "graph_spec", "graph_settings"):
            if hasattr(self.gen, key):
                out[key] = getattr(self.gen, key)
        return out

    def due(self, t: pd.Timestamp) -> bool:
        """Whether a retraining is due at ``t`` (the interval has passed since the last training data ended)."""
        if self.retrain_every is None or self.trained_until is None:
            return False
        return t - self.trained_until >= self.retrain_every

    def retrain(self, buffer: BarBuffer, t: pd.Timestamp | None, reason: str = "interval") -> dict[str, Any]:
        """Train on the last ``train_window_bars`` bars of ``buffer`` (all at or before ``t``)."""
        t0 = time.perf_counter()
        bars = buffer.frames(self.train_window_bars)
        if t is not None:
            late = [s for s, df in bars.items() if len(df) and df.index[-1] > t]
            if late:
                raise DataError(f"training at {t} was given bars after it ({', '.join(late)}): look-ahead")
        if not bars:
            raise DataError("no bars to train the model on")
        metrics = self.gen.train(bars, list(bars))
        self.trained_until = max(df.index[-1] for df in bars.values())
        fp = self.gen.meta.get("data_fingerprint", "")
        self.version = f"{self.gen.name}-{self.trained_until:%Y%m%dT%H%M}-{fp[:8]}"
        saved = None
        if self.model_dir is not None:
            saved = str(self.gen.save_model(self.model_dir / self.version))
        self.info = {"version": self.version, "reason": reason, "trained_until": str(self.trained_until),
                     "bars": int(sum(len(df) for df in bars.values())), "symbols": list(bars),
                     "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
                     "saved_to": saved, "seconds": time.perf_counter() - t0}
        log.info("model %s trained on bars up to %s (%s) in %.1fs", self.version, self.trained_until, reason,
                 self.info["seconds"])
        release_training_memory(self.gen)
        return self.info

    # -------------------------------------------------------------------------------------- scoring
    def features(self, buffer: BarBuffer, t: pd.Timestamp) -> pd.DataFrame:
        """The model's inputs at ``t`` only: Alpha158 (+ extras) of the newest bar, and ``G_*`` when the model uses them."""
        extras = self.gen.extras
        if self.features_engine == "qlib" or (extras is not None and any(
                DEFAULT_EXTRAS.get(k) != v for k, v in extras.items())):
            alpha = alpha_last_qlib(buffer.frames(ALPHA_LOOKBACK + 3), t, Path(self.gen.work_dir), extras)
        else:
            alpha = alpha_last_numpy(buffer.fields(ALPHA_LOOKBACK + 1), t, extras)
        if not self._uses_graph():
            return alpha
        if self.graph is None:
            raise ConfigError("the model uses graph features (G_*) but the strategy has no graph")
        g = self.graph.features(buffer.field("close", 30))
        return alpha.join(g, how="left")

    def score(self, buffer: BarBuffer, t: pd.Timestamp) -> pd.Series:
        """symbol -> score at ``t`` (NaN for a symbol without a bar at ``t``)."""
        feats = self.features(buffer, t)
        pred = self.gen.predict(feats) if len(feats) else pd.Series(dtype=np.float64)
        by_code = dict(zip(pred.index.get_level_values("instrument"), pred.to_numpy(np.float64)))
        return pd.Series([by_code.get(to_qlib_instrument(s), np.nan) for s in buffer.symbols],
                         index=list(buffer.symbols), dtype=np.float64)
