"""Qlib's own peer models on the CSI300 ablation data: a linear model and GATs, fitted through Qlib's model zoo.

Each peer is fitted the way Qlib's benchmark YAML of that model on Alpha158 fits it
(``examples/benchmarks/Linear/workflow_config_linear_Alpha158.yaml`` and
``examples/benchmarks/GATs/workflow_config_gats_Alpha158.yaml``), on the frame the ablation engine hands over:
Alpha158's raw columns with the ablation's label, in Qlib's raw layout (see
:func:`graphwiz_trader.research.csi300_cache.raw_from_parquet`). The dataset is a Qlib ``DatasetH`` (linear) or
``TSDatasetH`` (GATs) over a ``DataHandlerLP`` whose ``StaticDataLoader`` serves that frame, with the YAML's
processors:

- linear: infer ``RobustZScoreNorm`` (fitted on the train segment, clipped to [-3, 3]) and ``Fillna`` (0) on the
  features; learn ``DropnaLabel`` and ``CSRankNorm`` on the label. Model ``qlib.contrib.model.linear.LinearModel``
  with ``estimator: ols`` (no intercept, train segment only).
- gats: the same, after ``FilterCol`` keeps the YAML's 20 Alpha158 columns (:data:`GATS_FEATURES`). Model
  ``qlib.contrib.model.pytorch_gats_ts.GATs`` (``d_feat`` 20, ``hidden_size`` 64, ``num_layers`` 2, ``dropout``
  0.7, ``lr`` 1e-4, ``early_stop`` 10, ``metric`` loss, ``loss`` mse, ``base_model`` LSTM) on 20-day windows
  (``step_len`` 20).

Deviations from the GATs YAML (all in :class:`GATsSettings`)
------------------------------------------------------------
* CPU, one torch thread (``torch.set_num_threads(1)`` during the fit, restored after), data loading in the
  fitting process (``n_jobs`` 0 instead of Qlib's default 10 workers): the machine has 2 cores and the ablation
  engine fits LightGBM on the other one.
* ``n_epochs`` capped at :data:`GATS_CPU_EPOCHS` (published 200 with early stopping after 10 epochs without a
  better validation loss): on one core an epoch over CSI300 2010-2014 (train and Qlib's two scoring passes)
  takes 100-145 s, so 200 epochs do not fit a ~15 min budget; 6 take ~13 min. The best epoch (validation loss)
  of those run is kept, as Qlib does. Measured figures: ``docs/csi300_peers.md``.
* No pretrained LSTM: the YAML loads ``benchmarks/LSTM/csi300_lstm_ts.pkl`` (an LSTM fitted by the LSTM
  benchmark) into GATs' recurrent layers; there is none here, so they start from torch's seeded initialisation.
* Daily batches are real cross-sections. Qlib 0.9.7's ``DailyBatchSampler`` cuts the rows of its
  ``TSDataSampler`` into contiguous runs sized like the days, but those rows are ordered instrument first, so
  a "day" is mostly one stock's run of ~300 consecutive days (microsoft/qlib#2319, open). The attention then
  mixes each row with that stock's later days, in the fit and in the test scores: a look-ahead (a day's score
  changes when later days are cut; tested). With ``cross_sectional_batches`` (the default) the fit and the
  prediction use :class:`CrossSectionSampler`, which yields each day's rows, and every score keeps its own
  index. ``cross_sectional_batches=False`` runs Qlib's sampler as shipped (for comparison only).
* The published train segment starts 2008; the caller's ``segments`` are used as given (the ablation uses
  :data:`graphwiz_trader.research.csi300_setup.DATA_SEGMENTS`, train from 2010).

Every fit is seeded (``random``, NumPy, torch) and runs single-threaded, so two fits with one seed give the
same predictions.
"""

from __future__ import annotations

import contextlib
import logging
import random
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError, InsufficientDataError, SettingError
from graphwiz_trader.research.csi300_setup import Segments

log = logging.getLogger(__name__)

PEERS: tuple[str, ...] = ("linear", "gats")
"""The peer models :func:`fit_peer` fits."""

GATS_FEATURES: tuple[str, ...] = (
    "RESI5", "WVMA5", "RSQR5", "KLEN", "RSQR10", "CORR5", "CORD5", "CORR10", "ROC60", "RESI10", "VSTD5", "RSQR60",
    "CORR60", "WVMA60", "STD5", "RSQR20", "CORD60", "CORD10", "CORR20", "KLOW",
)
"""The 20 Alpha158 columns of ``FilterCol`` in workflow_config_gats_Alpha158.yaml (its order)."""

GATS_CPU_EPOCHS = 6
"""Epoch cap of the GATs peer on one CPU core (Qlib's YAML: 200 with early stopping 10)."""


@dataclass(frozen=True)
class LinearSettings:
    """``qlib.contrib.model.linear.LinearModel`` kwargs (the YAML sets ``estimator: ols``; the rest are the
    model's defaults: no intercept, no penalty, valid segment not used for fitting)."""

    estimator: str = "ols"
    alpha: float = 0.0
    fit_intercept: bool = False
    include_valid: bool = False

    def model_kwargs(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "alpha": self.alpha, "fit_intercept": self.fit_intercept,
                "include_valid": self.include_valid}


@dataclass(frozen=True)
class GATsSettings:
    """``qlib.contrib.model.pytorch_gats_ts.GATs`` kwargs and the ``TSDatasetH`` window.

    Attributes are the YAML's except (see the module docstring) ``n_epochs`` (YAML 200), ``n_jobs`` (Qlib's
    default 10), ``gpu`` (YAML 0) and ``cross_sectional_batches`` (Qlib's sampler is not cross-sectional).
    ``step_len`` is trading days per sample window; ``lr`` is Adam's learning rate.
    """

    d_feat: int = 20
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.7
    n_epochs: int = GATS_CPU_EPOCHS
    lr: float = 1e-4
    early_stop: int = 10
    metric: str = "loss"
    loss: str = "mse"
    base_model: str = "LSTM"
    step_len: int = 20
    n_jobs: int = 0
    gpu: int = -1
    cross_sectional_batches: bool = True
    features: tuple[str, ...] = GATS_FEATURES

    def __post_init__(self) -> None:
        if self.n_epochs < 1 or self.early_stop < 1 or self.step_len < 1:
            raise SettingError(f"gats: n_epochs, early_stop and step_len must be >= 1, got {self.n_epochs}, "
                               f"{self.early_stop}, {self.step_len}")
        if len(self.features) != self.d_feat:
            raise SettingError(f"gats: d_feat {self.d_feat} must equal the number of features ({len(self.features)})")

    def model_kwargs(self, seed: int) -> dict[str, Any]:
        return {"d_feat": self.d_feat, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "dropout": self.dropout, "n_epochs": self.n_epochs, "lr": self.lr, "early_stop": self.early_stop,
                "metric": self.metric, "loss": self.loss, "base_model": self.base_model, "GPU": self.gpu,
                "n_jobs": self.n_jobs, "seed": int(seed)}


@dataclass(frozen=True)
class PeerSettings:
    """Per-peer settings, the torch thread count, and the Qlib data folder used when Qlib is not initialised
    yet (``None``: ``../shared/data/qlib_cn_csi300``, :func:`graphwiz_trader.data.paths.csi300_dir`)."""

    linear: LinearSettings = field(default_factory=LinearSettings)
    gats: GATsSettings = field(default_factory=GATsSettings)
    num_threads: int = 1
    provider_uri: Path | None = None

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise SettingError(f"peers: num_threads must be >= 1, got {self.num_threads}")


@dataclass(frozen=True)
class PeerFit:
    """One fitted peer: its test-segment scores and how the fit went.

    ``epochs_run`` and ``best_epoch`` (0-based) are GATs' (0 for the linear model), ``valid_scores`` its
    validation score per epoch (Qlib's ``metric: loss``: minus the mean daily MSE against the CSRankNorm label,
    higher is better; empty for the linear model); ``fit_seconds`` is wall time of dataset preparation, fit and
    prediction.
    """

    name: str
    seed: int
    predictions: pd.Series
    n_features: int
    epochs_run: int
    best_epoch: int
    fit_seconds: float
    valid_scores: tuple[float, ...] = ()


# --------------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------------


def _segment_ranges(segments: Segments | Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    if isinstance(segments, Segments):
        return {"train": segments.train, "valid": segments.valid, "test": segments.test}
    missing = [k for k in ("train", "valid", "test") if k not in segments]
    if missing:
        raise SettingError(f"peers: segments need train, valid and test; missing {missing}")
    out = {k: (str(segments[k][0]), str(segments[k][1])) for k in ("train", "valid", "test")}
    Segments(out["train"], out["valid"], out["test"])  # order checks
    return out


def _check_frame(name: str, frame: pd.DataFrame, seg: dict[str, tuple[str, str]], features: tuple[str, ...] | None) -> None:
    where = f"fit_peer({name!r})"
    if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 2:
        raise DataError(f"{where}: the frame needs two column levels (group, name) as Qlib's raw frame, got "
                        f"{list(frame.columns[:3])}...")
    if list(frame.index.names) != ["datetime", "instrument"]:
        raise DataError(f"{where}: the frame's index must be (datetime, instrument), got {list(frame.index.names)}")
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{where}: the frame has duplicate (datetime, instrument) rows, e.g. {dup}")
    groups = frame.columns.get_level_values(0)
    n_label = int((groups == "label").sum())
    if n_label != 1:
        raise DataError(f"{where}: the frame needs exactly one ('label', ...) column, found {n_label} "
                        f"(column groups: {sorted(set(groups))})")
    have = set(frame.columns[groups == "feature"].get_level_values(1))
    if not have:
        raise DataError(f"{where}: the frame has no ('feature', ...) columns")
    if features is not None:
        missing = [c for c in features if c not in have]
        if missing:
            raise DataError(f"{where}: feature columns {missing} of Qlib's GATs/Alpha158 selection are not in the frame")
    dates = frame.index.get_level_values("datetime")
    label = frame["label"].iloc[:, 0]
    span = f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}" if len(dates) else "no rows"
    for part, (a, b) in seg.items():
        inside = (dates >= pd.Timestamp(a)) & (dates <= pd.Timestamp(b))
        usable = inside if part == "test" else inside & label.notna().to_numpy()
        if not usable.any():
            what = "rows" if part == "test" else "rows with a label"
            raise InsufficientDataError(f"{where}: segment {part} {a}..{b} has no {what} in the frame (frame {span})")


# --------------------------------------------------------------------------------------------------------------
# Qlib
# --------------------------------------------------------------------------------------------------------------


def _ensure_qlib(settings: PeerSettings) -> None:
    """Initialise Qlib on the CSI300 folder unless some Qlib session is already up (the caller's wins)."""
    from qlib.config import C

    if C.registered:
        return
    from graphwiz_trader.data.paths import csi300_dir
    from graphwiz_trader.data.qlib_runtime import init_qlib

    init_qlib(settings.provider_uri or csi300_dir(), region="cn")


def _processors(seg: dict[str, tuple[str, str]], features: tuple[str, ...] | None) -> tuple[list, list]:
    from qlib.data.dataset.processor import (
        CSRankNorm,
        DropnaLabel,
        Fillna,
        FilterCol,
        RobustZScoreNorm,
    )

    infer: list = []
    if features is not None:
        infer.append(FilterCol(fields_group="feature", col_list=list(features)))
    infer += [RobustZScoreNorm(fit_start_time=seg["train"][0], fit_end_time=seg["train"][1], fields_group="feature",
                               clip_outlier=True),
              Fillna(fields_group="feature")]
    learn = [DropnaLabel(), CSRankNorm(fields_group="label")]
    return infer, learn


def peer_dataset(frame: pd.DataFrame, segments: Segments | Mapping[str, Any], features: tuple[str, ...] | None = None,
                 step_len: int | None = None) -> Any:
    """The Qlib dataset a peer is fitted on: ``DatasetH`` (``step_len`` None) or ``TSDatasetH`` over a
    ``DataHandlerLP`` serving ``frame`` with the benchmark YAML's processors (module docstring)."""
    from qlib.data.dataset import DatasetH, TSDatasetH
    from qlib.data.dataset.handler import DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader

    seg = _segment_ranges(segments)
    infer, learn = _processors(seg, features)
    ordered = frame.sort_index()
    handler = DataHandlerLP(data_loader=StaticDataLoader(config=ordered), infer_processors=infer,
                            learn_processors=learn, process_type=DataHandlerLP.PTYPE_A)
    parts = {k: list(v) for k, v in seg.items()}
    if step_len is None:
        return DatasetH(handler=handler, segments=parts)
    return TSDatasetH(handler=handler, segments=parts, step_len=int(step_len))


@contextlib.contextmanager
def _seeded_single_thread(seed: int, threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class CrossSectionSampler:
    """Torch sampler over a Qlib ``TSDataSampler``: one batch per trading day holding every row of that day
    (rows are positions in the sampler, which stores them instrument first), days in calendar order."""

    def __init__(self, data_source: Any) -> None:
        index = data_source.get_index()
        dates = index.get_level_values("datetime")
        codes, _ = pd.factorize(dates, sort=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        self.batches: list[np.ndarray] = np.split(order, bounds) if len(order) else []

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@contextlib.contextmanager
def _qlib_daily_sampler(replace: bool) -> Iterator[None]:
    """Swap ``pytorch_gats_ts.DailyBatchSampler`` for :class:`CrossSectionSampler` while GATs fits."""
    from qlib.contrib.model import pytorch_gats_ts

    original = pytorch_gats_ts.DailyBatchSampler
    if replace:
        pytorch_gats_ts.DailyBatchSampler = CrossSectionSampler
    try:
        yield
    finally:
        pytorch_gats_ts.DailyBatchSampler = original


@contextlib.contextmanager
def _epoch_bar(enabled: bool, total: int, desc: str, qlib_logger: Any) -> Iterator[None]:
    """Advance a progress bar on each ``Epoch<n>:`` record of GATs' Qlib logger (a ``QlibLogger``, which
    re-applies its own level on every use: raised to INFO for the fit, its records kept off the console)."""
    if not enabled:
        yield
        return
    from graphwiz_trader.core.progress import bar

    pbar = bar(total, desc, unit="epoch")

    class _Tick(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if str(record.msg).startswith("Epoch"):
                pbar.update(1)

    target = logging.getLogger(qlib_logger.module_name)
    handler, propagate = _Tick(), target.propagate
    level = getattr(qlib_logger, "_QlibLogger__level", logging.WARNING)
    target.addHandler(handler)
    target.propagate = False
    qlib_logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        qlib_logger.setLevel(level)
        target.removeHandler(handler)
        target.propagate = propagate
        pbar.close()


@contextlib.contextmanager
def _qlib_warnings_ignored() -> Iterator[None]:
    """Qlib's processors warn on every fit: an all-NaN column (``VWAP0``) and pandas' chained assignment."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", pd.errors.SettingWithCopyWarning)
        yield


def _predict_cross_sections(model: Any, dataset: Any) -> pd.Series:
    """GATs' scores on the test segment, one day per batch, each score under its own (datetime, instrument)."""
    import torch
    from qlib.data.dataset.handler import DataHandlerLP

    ts = dataset.prepare("test", col_set=["feature", "label"], data_key=DataHandlerLP.DK_I)
    ts.config(fillna_type="ffill+bfill")  # as Qlib's GATs.predict
    sampler = CrossSectionSampler(ts)
    index = ts.get_index()
    model.GAT_model.eval()
    values, rows = [], []
    with torch.no_grad():
        for batch in sampler:
            data = torch.from_numpy(np.asarray(ts[batch]))
            out = model.GAT_model(data[:, :, :-1].float()).reshape(-1)
            values.append(out.numpy())
            rows.append(batch)
    pos = np.concatenate(rows) if rows else np.array([], dtype=int)
    return pd.Series(np.concatenate(values) if values else np.array([]), index=index[pos])


# --------------------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------------------


def fit_peer_result(name: str, frame: pd.DataFrame, segments: Segments | Mapping[str, Any], seed: int,
                    settings: PeerSettings = PeerSettings(), progress: bool = False) -> PeerFit:
    """Fit peer ``name`` (one of :data:`PEERS`) on ``frame`` and score the test segment; see :func:`fit_peer`."""
    if name not in PEERS:
        raise SettingError(f"fit_peer: unknown peer {name!r}; choose one of {list(PEERS)}")
    seg = _segment_ranges(segments)
    features = settings.gats.features if name == "gats" else None
    _check_frame(name, frame, seg, features)
    _ensure_qlib(settings)
    t0 = time.perf_counter()
    epochs_run = best_epoch = 0
    valid: list[float] = []
    with _seeded_single_thread(int(seed), settings.num_threads), _qlib_warnings_ignored():
        if name == "linear":
            from qlib.contrib.model.linear import LinearModel

            dataset = peer_dataset(frame, seg)
            model = LinearModel(**settings.linear.model_kwargs())
            model.fit(dataset)
            pred = model.predict(dataset, segment="test")
            n_features = len(model.coef_)
        else:
            from qlib.contrib.model.pytorch_gats_ts import GATs

            gs = settings.gats
            dataset = peer_dataset(frame, seg, features=gs.features, step_len=gs.step_len)
            model = GATs(**gs.model_kwargs(seed))
            evals: dict[str, list[float]] = {}
            with tempfile.TemporaryDirectory(prefix="gats_") as tmp, _qlib_daily_sampler(gs.cross_sectional_batches), \
                    _epoch_bar(progress, gs.n_epochs, f"GATs seed {seed}", model.logger):
                try:
                    model.fit(dataset, evals_result=evals, save_path=str(Path(tmp) / "gats.pt"))
                except UnboundLocalError as exc:  # Qlib keeps no best state when no epoch has a finite score
                    raise InsufficientDataError(f"fit_peer('gats'): no epoch gave a finite validation score "
                                                f"({evals.get('valid')}, seed {seed})") from exc
            if gs.cross_sectional_batches:
                pred = _predict_cross_sections(model, dataset)
            else:
                pred = model.predict(dataset)
            valid = [float(v) for v in evals.get("valid", [])]
            epochs_run, best_epoch = len(valid), int(np.nanargmax(valid)) if valid else 0
            n_features = gs.d_feat
    pred = pred.astype("float64").sort_index()
    pred.index = pred.index.set_names(["datetime", "instrument"])
    a, b = pd.Timestamp(seg["test"][0]), pd.Timestamp(seg["test"][1])
    dates = pred.index.get_level_values("datetime")
    pred = pred[(dates >= a) & (dates <= b)].rename(name)
    if not np.isfinite(pred.to_numpy()).all():
        raise InsufficientDataError(f"fit_peer({name!r}): the fitted model gave {int((~np.isfinite(pred)).sum())} "
                                    f"non-finite test scores (seed {seed})")
    seconds = time.perf_counter() - t0
    log.info("peer %s seed %d: %d test scores, %.1f s", name, seed, len(pred), seconds)
    return PeerFit(name, int(seed), pred, n_features, epochs_run, best_epoch, round(seconds, 2),
                   tuple(valid) if name == "gats" else ())


def fit_peer(name: str, frame: pd.DataFrame, segments: Segments | Mapping[str, Any], seed: int,
             settings: PeerSettings = PeerSettings(), progress: bool = False) -> pd.Series:
    """Fit one of Qlib's peer models on ``frame`` and return its scores on the test segment.

    Parameters
    ----------
    name : ``linear`` or ``gats`` (:data:`PEERS`).
    frame : Qlib's raw frame: index (datetime, instrument), columns ``("feature", <Alpha158 name>)`` and one
        ``("label", <name>)`` (the ablation's label; Qlib's ``CSRankNorm`` is applied to it as in the YAML).
    segments : train / valid / test date ranges (closed, ``YYYY-MM-DD``).
    seed : seeds ``random``, NumPy and torch (and GATs' own ``seed``); the linear fit does not depend on it.
    settings : per-peer settings (defaults: Qlib's YAML with the CPU deviations of the module docstring).
    progress : show a bar over GATs' epochs (through :mod:`graphwiz_trader.core.progress`).

    Returns
    -------
    float64 Series named ``name`` indexed (datetime, instrument), sorted, one score per row of the frame in the
    test segment (dimensionless; higher means a higher expected rank of the label).

    Raises
    ------
    SettingError : unknown peer or malformed segments.
    DataError : the frame lacks the label column, feature columns, or the (datetime, instrument) index.
    InsufficientDataError : a segment has no rows (train / valid: no rows with a label).
    """
    return fit_peer_result(name, frame, segments, seed, settings, progress).predictions


def daily_rank_ic(predictions: pd.Series, frame: pd.DataFrame) -> pd.Series:
    """Daily Spearman correlation of ``predictions`` with the frame's label on the prediction dates (the
    label as given, before Qlib's processors). Mean of it = the test Rank IC."""
    from graphwiz_trader.models.metrics import ic_series

    label = frame["label"].iloc[:, 0].astype("float64")
    return ic_series(predictions, label, method="spearman")

