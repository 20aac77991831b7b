"""LightGBM signal generators on Alpha158 (and, in the hybrid, graph features).

:class:`QlibSignalGenerator` trains LightGBM (the ``lightgbm`` package on the Qlib Alpha158 frame) for
a :class:`LabelSpec` target and reports out-of-sample figures. The split inside :meth:`train` is
walk-forward: ``fit | gap | stop | gap | holdout`` by time; early stopping uses ``stop``, and every
reported metric (``val_accuracy``, ``auc``, ``ic``, ``rank_ic``, ``icir``) is measured on ``holdout``,
which the model never saw. Gaps equal the label horizon, so no training label overlaps later parts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import graphwiz_trader
from graphwiz_trader.data.bars import normalize_bars
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.qlib_bins import bars_fingerprint
from graphwiz_trader.data.validate import validate_bars
from graphwiz_trader.errors import DataError, GraphwizError, UnknownSymbolError
from graphwiz_trader.features.pipeline import alpha_features, bars_timeframe
from graphwiz_trader.models import lgbm
from graphwiz_trader.models.files import (
    ModelFileError,
    atomic_output,
    check_lightgbm_features,
    lightgbm_feature_names,
    read_json_file,
    read_verified,
    sha256_bytes,
    write_json_atomic,
)
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.models.metrics import evaluate_predictions

log = logging.getLogger(__name__)


class ModelFeatureMismatchError(GraphwizError):
    """The features given to a loaded model are not the ones it was trained on."""


def as_bars(data: pd.DataFrame | dict[str, pd.DataFrame], symbol_or_universe: str | list[str] | None,
            timeframe: str | None = None) -> dict[str, pd.DataFrame]:
    """Normalise the ``train``/``predict`` inputs to validated bars.

    ``data`` is one OHLCV frame (then ``symbol_or_universe`` names its symbol) or a dict of frames
    (then ``symbol_or_universe`` selects symbols; ``None`` keeps all).
    """
    if isinstance(data, pd.DataFrame):
        if not isinstance(symbol_or_universe, str):
            raise DataError("a single OHLCV frame needs its symbol, e.g. train(df, 'BTC/USDT')")
        bars = {symbol_or_universe: normalize_bars(data, where=f"bars of {symbol_or_universe}")}
    else:
        wanted = [symbol_or_universe] if isinstance(symbol_or_universe, str) else (symbol_or_universe or list(data))
        missing = [s for s in wanted if s not in data]
        if missing:
            raise UnknownSymbolError(missing, "the bars given", list(data))
        bars = {s: data[s] for s in wanted}
    tf = timeframe or bars_timeframe(bars)
    validate_bars(bars, tf, strict=True)
    return bars


def time_split(dates: pd.Index, fractions: tuple[float, float, float], gap: int) -> tuple[pd.Index, pd.Index, pd.Index]:
    """Split sorted unique ``dates`` into (fit, stop, holdout) by ``fractions`` with ``gap`` bars between parts."""
    n = len(dates)
    f_fit, f_stop, _ = fractions
    a = int(n * f_fit)
    b = a + gap + int(n * f_stop)
    if a < 10 or b + gap >= n - 10:
        raise DataError(f"not enough bars ({n}) for a fit/stop/holdout split with gap {gap}")
    return dates[:a], dates[a + gap:b], dates[b + gap:]


@dataclass
class QlibSignalGenerator:
    """LightGBM on Alpha158 (+ extras).

    Parameters
    ----------
    label : the target (default: next-bar direction).
    lgb_params : LightGBM parameters on top of :data:`lgbm.DEFAULT_PARAMS`.
    seed : LightGBM seeds.
    split : fractions (fit, stop, holdout) for :meth:`train`.
    work_dir : where Qlib bins and the feature cache live.
    extras : extra Qlib expressions (``None`` = defaults, ``{}`` = plain Alpha158).
    """

    label: LabelSpec = field(default_factory=lambda: LabelSpec("direction", 1))
    lgb_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    num_boost_round: int = 300
    early_stopping_rounds: int = 30
    split: tuple[float, float, float] = (0.6, 0.15, 0.25)
    work_dir: str | Path = "data/qlib"
    extras: dict[str, str] | None = None
    booster: Any = None
    feature_columns: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    name = "alpha158"

    # -- features -------------------------------------------------------------------------------
    def build_features(self, bars: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The model's inputs for ``bars``: Alpha158 (+ extras). The hybrid adds graph features."""
        return alpha_features(bars, self.work_dir, self.extras)

    # -- training -------------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame, label: pd.Series, fit_dates: pd.Index, stop_dates: pd.Index | None,
            cross_sectional: bool) -> None:
        """Fit on rows at ``fit_dates`` with early stopping on ``stop_dates`` (both before any test)."""
        data = features.join(label.rename("__label__"), how="inner")
        data = data[data["__label__"].notna()]
        dt = data.index.get_level_values("datetime")
        y = lgbm.training_target(data["__label__"], self.label, cross_sectional)
        tr = dt.isin(fit_dates)
        st = dt.isin(stop_dates) if stop_dates is not None else np.zeros(len(dt), bool)
        cols = list(features.columns)
        self.booster = lgbm.fit_booster(data.loc[tr, cols], y[tr], data.loc[st, cols] if st.any() else None,
                                        y[st] if st.any() else None, self.label, self.seed, self.lgb_params,
                                        self.num_boost_round, self.early_stopping_rounds)
        self.feature_columns = cols

    def train(self, data: pd.DataFrame | dict[str, pd.DataFrame], symbol_or_universe: str | list[str] | None = None,
              features: pd.DataFrame | None = None) -> dict[str, Any]:
        """Train and return out-of-sample metrics on the time-ordered holdout.

        Returns
        -------
        dict with ``auc``, ``ic``, ``rank_ic``, ``icir``, ``rank_icir``, ``val_accuracy`` beside its naive
        baseline ``majority_rate`` (always the fit+stop part's most frequent class) and
        ``balanced_accuracy`` (all on the holdout, against the target the booster was fitted on; see
        :mod:`graphwiz_trader.models.metrics`), ``zero_return_rows`` for direction labels (holdout bars
        left out because their forward return equals the threshold), the split dates, tree count and the
        label definition.
        """
        bars = as_bars(data, symbol_or_universe)
        feats = self.build_features(bars) if features is None else features
        label = make_label(bars, self.label)
        dates = feats.index.get_level_values("datetime").unique().sort_values()
        fit_d, stop_d, hold_d = time_split(dates, self.split, self.label.horizon)
        cs = len(bars) > 1
        self.fit(feats, label, fit_d, stop_d, cs)
        hold = feats[feats.index.get_level_values("datetime").isin(hold_d)]
        score = self.predict(hold)
        fwd = make_label(bars, LabelSpec("regression", self.label.horizon, relative=self.label.relative)) \
            if self.label.kind == "direction" else None
        target = lgbm.training_target(label, self.label, cs)  # score what the booster was fitted on
        train_dt = target.index.get_level_values("datetime")
        m = evaluate_predictions(score, target, self.label.is_classification, fwd,
                                 train_label=target[train_dt.isin(fit_d.append(stop_d))])
        if fwd is not None:  # direction labels leave out bars whose forward return equals the threshold
            m["zero_return_rows"] = int(((fwd == self.label.threshold)
                                         & fwd.index.get_level_values("datetime").isin(hold_d)).sum())
        metrics = {"val_accuracy": m["accuracy"], **{k: v for k, v in m.items() if k != "accuracy"},
                   "trees": int(self.booster.best_iteration or self.booster.num_trees()),
                   "fit": [str(fit_d[0]), str(fit_d[-1])], "stop": [str(stop_d[0]), str(stop_d[-1])],
                   "holdout": [str(hold_d[0]), str(hold_d[-1])], "label": self.label.describe()}
        self.meta = {
            "symbols": list(bars), "timeframe": bars_timeframe(bars),
            "data_range": [str(min(df.index[0] for df in bars.values())), str(max(df.index[-1] for df in bars.values()))],
            "data_fingerprint": bars_fingerprint(bars), "metrics": metrics,
        }
        log.info("%s: holdout AUC %.4f, IC %.4f, accuracy %.4f (majority rate %.4f, balanced %.4f)", self.name,
                 m["auc"], m["ic"], m["accuracy"], m["majority_rate"], m["balanced_accuracy"])
        return metrics

    # -- inference ------------------------------------------------------------------------------
    def _check_features(self, features: pd.DataFrame) -> None:
        if self.booster is None or self.feature_columns is None:
            raise GraphwizError("the model is not trained or loaded")
        missing = [c for c in self.feature_columns if c not in features.columns]
        if missing:
            extra = [c for c in features.columns if c not in self.feature_columns]
            raise ModelFeatureMismatchError(
                f"features do not match the model: {len(missing)} missing ({', '.join(missing[:8])}"
                f"{' ...' if len(missing) > 8 else ''}); {len(extra)} unexpected ({', '.join(extra[:8])})")

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Scores per (datetime, instrument): P(label=1) for classification, the fitted value otherwise."""
        self._check_features(features)
        return pd.Series(lgbm.predict(self.booster, features[self.feature_columns]), index=features.index,
                         name="score")

    def predict_latest(self, data: pd.DataFrame | dict[str, pd.DataFrame], symbol: str,
                       buy_above: float = 0.55, sell_below: float = 0.45) -> dict[str, Any]:
        """The signal for ``symbol`` at its last bar (uses bars up to that bar only).

        For classification ``BUY`` when P > ``buy_above``, ``SELL`` when P < ``sell_below``, else ``HOLD``;
        for regression the sign of the predicted return decides.
        """
        bars = as_bars(data, symbol if isinstance(data, pd.DataFrame) else None)
        if symbol not in bars:
            raise UnknownSymbolError([symbol], "the bars given", list(bars))
        feats = self.build_features(bars)
        code = to_qlib_instrument(symbol)
        rows = feats.xs(code, level="instrument", drop_level=False)
        last = rows.iloc[[-1]]
        score = float(self.predict(last).iloc[0])
        if self.label.is_classification:
            signal = "BUY" if score > buy_above else "SELL" if score < sell_below else "HOLD"
        else:
            signal = "BUY" if score > 0 else "SELL" if score < 0 else "HOLD"
        return {"symbol": symbol, "datetime": str(last.index[0][0]), "score": score, "signal": signal,
                "label": self.label.describe()}

    # -- persistence ----------------------------------------------------------------------------
    def save_model(self, path: str | Path) -> Path:
        """Write ``model.txt`` (LightGBM) and ``meta.json`` (features, label, data range, versions, fingerprint).

        ``meta.json`` records the SHA-256 of ``model.txt`` (``model_file.sha256``); :meth:`load_model`
        verifies it before LightGBM reads a byte. Both files are written crash-safe (temp, fsync, rename),
        ``model.txt`` first, so a crash between the two leaves a pair that is refused, never a mixed one.
        """
        if self.booster is None or self.feature_columns is None:
            raise GraphwizError("nothing to save: the model is not trained")
        import lightgbm
        import qlib

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        text = self.booster.model_to_string()
        check_lightgbm_features(lightgbm_feature_names(text, out / "model.txt"), self.feature_columns,
                                out / "model.txt", out / "meta.json")
        data = text.encode()
        with atomic_output(out / "model.txt") as tmp:
            tmp.write_bytes(data)
        meta = {
            "generator": type(self).__name__, "name": self.name, "feature_columns": self.feature_columns,
            "label": self.label.to_dict(), "seed": self.seed, "lgb_params": self.lgb_params,
            "extras": self.extras,
            "versions": {"graphwiz_trader": graphwiz_trader.__version__, "lightgbm": lightgbm.__version__,
                         "pyqlib": qlib.__version__, "pandas": pd.__version__, "numpy": np.__version__},
            **self.meta,
            "model_file": {"name": "model.txt", "format": "LightGBM text model", "sha256": sha256_bytes(data),
                           "size_bytes": len(data)},
        }
        write_json_atomic(out / "meta.json", meta)
        return out

    @classmethod
    def load_model(cls, path: str | Path, **overrides: Any) -> "QlibSignalGenerator":
        """Load a model written by :meth:`save_model`; predictions check the feature list.

        Order of checks: both files exist; ``meta.json`` parses and names the label, seed, features and
        ``model.txt``'s SHA-256; the checksum matches; ``model.txt``'s own ``feature_names=`` equal the
        metadata's feature list (same order); only then LightGBM parses the verified bytes.

        Raises
        ------
        ModelFileError
            (a :class:`GraphwizError`) naming the path and the reason when any check fails or LightGBM
            cannot parse the file.
        """
        import lightgbm as lgb

        p = Path(path)
        model_path, meta_path = p / "model.txt", p / "meta.json"
        missing = [f.name for f in (model_path, meta_path) if not f.is_file()]
        if missing:
            raise ModelFileError(f"{p} is not a saved model: {' and '.join(missing)} missing "
                                 f"(a saved model folder holds model.txt and meta.json)")
        meta = read_json_file(meta_path, "model metadata")
        absent = [k for k in ("label", "seed", "feature_columns") if k not in meta]
        if absent:
            raise ModelFileError(f"model metadata {meta_path} lacks {', '.join(absent)}")
        columns = meta["feature_columns"]
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise ModelFileError(f"model metadata {meta_path}: feature_columns must be a non-empty list of names")
        record = meta.get("model_file")
        data = read_verified(model_path, record.get("sha256") if isinstance(record, dict) else None,
                             "LightGBM model")
        try:
            text = data.decode()
        except UnicodeDecodeError as e:
            raise ModelFileError(f"LightGBM model {model_path} is not text: {e}") from None
        check_lightgbm_features(lightgbm_feature_names(text, model_path), columns, model_path, meta_path)
        try:
            label = LabelSpec(**meta["label"])
            gen = cls(label=label, seed=meta["seed"], lgb_params=meta.get("lgb_params", {}),
                      extras=meta.get("extras"), **overrides)
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"model metadata {meta_path}: {e}") from None
        try:
            gen.booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as e:
            raise ModelFileError(f"LightGBM cannot read {model_path}: {e}") from None
        if gen.booster.num_feature() != len(columns):
            raise ModelFileError(f"LightGBM model {model_path} has {gen.booster.num_feature()} features, "
                                 f"{meta_path} lists {len(columns)}")
        gen.feature_columns = list(columns)
        gen.meta = {k: meta[k] for k in ("symbols", "timeframe", "data_range", "data_fingerprint", "metrics", "versions")
                    if k in meta}
        return gen
