"""Reproduce Qlib's published LightGBM / Alpha158 / CSI300 benchmark, then add a correlation graph.

What runs
---------
Qlib's own objects, configured like Qlib's ``examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml``:
``qlib.contrib.model.gbdt.LGBModel`` on a ``qlib.data.dataset.DatasetH`` over ``qlib.contrib.data.handler.Alpha158``
(label ``Ref($close, -2)/Ref($close, -1) - 1``, the handler's default processors), recorded with
``qlib.workflow.R`` and ``SignalRecord`` / ``SigAnaRecord`` / ``PortAnaRecord`` (Qlib's ``TopkDropoutStrategy``,
topk 50, n_drop 5, Qlib's exchange with the published costs). The dataset is prepared once and one model is
fitted per seed (LightGBM ``seed`` / ``bagging_seed`` / ``feature_fraction_seed`` / ``data_random_seed``).

Then (``graph=True``) the same runs again with graph features appended to Alpha158 as extra ``feature``
columns of a Qlib ``DataHandlerLP`` (a ``StaticDataLoader`` over Alpha158's raw frame joined with the graph
frame; the processors are Alpha158's defaults, so only the columns differ). The graph: a point-in-time
Pearson correlation graph of daily log returns over the CSI300 members of the day (60-day window, a new
snapshot every 5 trading days, each node's 10 strongest edges), built by the project's shared graph builders,
written to the graph store under its build id and read back, with the shared graph features computed from
what was read (see :func:`graph_features_csi300`).

Deviations from the published run, all forced by the data (``../shared/data/README.md``) or the machine
-------------------------------------------------------------------------------------------------------
* Segments: the data starts 2010-01-04, so train 2010-01-01..2014-12-31 (published 2008-01-01..), valid
  2015-2016 and test 2017-01-01..2020-08-01 as published. Alpha158's 60-day windows are partly empty in
  the first ~3 months of 2010 (LightGBM treats NaN as missing).
* ``num_threads`` 2 instead of 20 (same model; the machine has 2 cores).
* No ``$vwap`` field: Alpha158's ``VWAP0`` column is all NaN (LightGBM never splits on it).
* 38 former CSI300 members, mostly delisted, have no features; Qlib returns no rows for them, so the
  model never scores them and the strategy cannot hold them (a survivorship tilt the published data does
  not have). They are listed in the result.
* ``$change`` is stored in percent here (5.03 for +5.03 %), while Qlib's float ``limit_threshold`` rule is
  ``$change >= threshold``. The published 0.095 (fraction) is therefore passed as 9.5 when the data is in
  percent (detected, see :func:`detect_change_unit`): the same rule on the same field.
* The strategy's signal is ``"<PRED>"`` (the saved ``pred.pkl``) instead of ``[<MODEL>, <DATASET>]``; both
  give the same scores, the former avoids predicting twice.

Published reference (Qlib ``examples/benchmarks/README.md``, mean of 20 seeds): :data:`PUBLISHED`.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.core.forks import die_with_parent
from graphwiz_trader.data.qlib_runtime import default_mlflow_dir
from graphwiz_trader.research.csi300_data import (
    DataAudit,
    _quiet,
    audit_data,
    detect_change_unit,
    graph_features_csi300,
    load_close_and_membership,
)
from graphwiz_trader.research.csi300_setup import (
    DATA_SEGMENTS,
    GRAPH_FEATURES,
    METRIC_LABELS,
    METRICS,
    PUBLISHED,
    PUBLISHED_EXCHANGE_KWARGS,
    PUBLISHED_LABEL,
    PUBLISHED_MODEL_KWARGS,
    PUBLISHED_SEGMENTS,
    PUBLISHED_SOURCE,
    CSI300ReproductionSettings,
    GraphFeatureSettings,
    Segments,
    alpha158_default_processors,
    graph_feature_columns,
    build_workflow_config,
    published_model_kwargs,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    """Figures of one fitted model: Qlib's SigAnaRecord (IC...) and PortAnaRecord (excess return...).

    Returns and drawdowns are fractions; the excess return is annualised by Qlib (252 days, additive);
    the information ratio is Qlib's (mean / std * sqrt(252)) of the daily excess return with cost.
    """

    variant: str
    seed: int
    metrics: dict[str, float]
    extra: dict[str, float]
    best_iteration: int
    n_features: int
    fit_seconds: float
    backtest_seconds: float
    experiment_id: str
    recorder_id: str
    artifact_dir: str


@dataclass(frozen=True)
class ReproductionResult:
    """All seeds of every variant, their mean/std, and where mlflow stored the runs."""

    config: dict[str, Any]
    workflow: dict[str, Any]
    audit: DataAudit
    runs: dict[str, list[SeedResult]]
    timings: dict[str, float]
    run_dir: str | None

    def summary(self, variant: str) -> dict[str, dict[str, float]]:
        """``{"mean": {...}, "std": {...}}`` over seeds (sample std, ddof=1; NaN with one seed)."""
        return summarize([r.metrics for r in self.runs[variant]])

    def paired_difference(self, variant: str, base: str = "alpha158") -> dict[str, Any]:
        """Per-seed ``variant - base`` (same seed, same data) with mean and std."""
        a = {r.seed: r.metrics for r in self.runs[base]}
        per = [{k: r.metrics[k] - a[r.seed][k] for k in METRICS} | {"seed": r.seed}
               for r in self.runs[variant] if r.seed in a]
        s = summarize([{k: p[k] for k in METRICS} for p in per])
        return {"per_seed": per, **s}

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "published": PUBLISHED, "published_source": PUBLISHED_SOURCE,
            "config": self.config, "workflow": self.workflow,
            "data_notes": self.audit.notes(),
            "audit": {"members": len(self.audit.members),
                      "members_without_features": list(self.audit.members_without_features),
                      "has_vwap": self.audit.has_vwap, "change_unit": self.audit.change_unit,
                      "limit_threshold_passed": self.audit.limit_threshold},
            "variants": {}, "timings_seconds": self.timings, "run_dir": self.run_dir,
        }
        for v, rs in self.runs.items():
            out["variants"][v] = {"per_seed": [asdict(r) for r in rs], **self.summary(v)}
        if "alpha158+graph" in self.runs and "alpha158" in self.runs:
            out["graph_minus_baseline"] = self.paired_difference("alpha158+graph")
        return out


def summarize(rows: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample std (ddof=1) of each metric over ``rows``."""
    df = pd.DataFrame(list(rows), columns=list(METRICS), dtype="float64")
    return {"mean": {k: float(df[k].mean()) for k in METRICS},
            "std": {k: float(df[k].std(ddof=1)) if len(df) > 1 else float("nan") for k in METRICS}}


def _graph_dataset(base_dataset: Any, graph: pd.DataFrame, segments: Segments) -> Any:
    """A DatasetH whose handler holds Alpha158's raw frame (features + label) with the graph columns appended
    to the ``feature`` group, and Alpha158's default processors."""
    from qlib.data.dataset import DatasetH
    from qlib.data.dataset.handler import DataHandler, DataHandlerLP
    from qlib.data.dataset.loader import StaticDataLoader

    raw = base_dataset.handler.fetch(col_set=DataHandler.CS_RAW, data_key=DataHandlerLP.DK_R)
    g = graph.reindex(raw.index)
    g.columns = pd.MultiIndex.from_product([["feature"], list(g.columns)])
    feat_cols = [c for c in raw.columns if c[0] == "feature"]
    other = [c for c in raw.columns if c[0] != "feature"]
    joined = pd.concat([raw[feat_cols], g, raw[other]], axis=1)
    infer, learn = alpha158_default_processors()
    handler = DataHandlerLP(data_loader=StaticDataLoader(config=joined), infer_processors=infer,
                            learn_processors=learn, process_type=DataHandlerLP.PTYPE_A)
    return DatasetH(handler=handler, segments={"train": list(segments.train), "valid": list(segments.valid),
                                               "test": list(segments.test)})


def _fit_and_record(variant: str, seed: int, dataset: Any, workflow: dict[str, Any], cfg: CSI300ReproductionSettings,
                    log_sink: io.StringIO) -> SeedResult:
    from qlib.utils import flatten_dict, init_instance_by_config
    from qlib.workflow import R
    from qlib.workflow.record_temp import PortAnaRecord, SigAnaRecord, SignalRecord

    model_cfg = copy.deepcopy(workflow["task"]["model"])
    model_cfg["kwargs"] = published_model_kwargs(cfg.num_threads, seed, cfg.num_boost_round, cfg.early_stopping_rounds,
                                                 cfg.model_overrides)
    model = init_instance_by_config(model_cfg)
    n_features = int(len(dataset.handler.get_cols("feature")))
    from graphwiz_trader.data.qlib_runtime import ensure_experiment, flush_recorder_logs

    ensure_experiment(cfg.experiment_name)
    with R.start(experiment_name=cfg.experiment_name, recorder_name=f"{variant}_seed{seed}"):
        R.log_params(**flatten_dict({"variant": variant, "seed": seed, "model": model_cfg,
                                     "n_features": n_features}))
        t0 = time.perf_counter()
        with _quiet(log_sink):
            model.fit(dataset)
        fit_s = time.perf_counter() - t0
        R.save_objects(trained_model=model)
        rec = R.get_recorder()
        t1 = time.perf_counter()
        with _quiet(log_sink):
            # each record reads the run back: the metrics logged in the background must be on disk first
            flush_recorder_logs(rec)
            SignalRecord(model=model, dataset=dataset, recorder=rec).generate()
            flush_recorder_logs(rec)
            sig = SigAnaRecord(rec, ana_long_short=False, ann_scaler=252)
            sig.generate()
            flush_recorder_logs(rec)
            par = PortAnaRecord(rec, config=copy.deepcopy(workflow["port_analysis_config"]),
                                risk_analysis_freq="day")
            par.generate()
            flush_recorder_logs(rec)
        bt_s = time.perf_counter() - t1
        pred = sig.load("pred.pkl")
        if float(pred.iloc[:, 0].std()) == 0.0:
            log.warning("%s seed %d: the model predicts one constant score (best iteration %s); IC is undefined "
                        "(too little data for the published L1/L2 penalties?)", variant, seed,
                        getattr(model.model, "best_iteration", "?"))
        ic, ric = sig.load("ic.pkl"), sig.load("ric.pkl")
        pa = par.load("port_analysis_1day.pkl")["risk"]
        report = par.load("report_normal_1day.pkl")
        metrics = {
            "ic": float(ic.mean()), "icir": float(ic.mean() / ic.std()),
            "rank_ic": float(ric.mean()), "rank_icir": float(ric.mean() / ric.std()),
            "annualized_excess_return_with_cost": float(pa[("excess_return_with_cost", "annualized_return")]),
            "information_ratio_with_cost": float(pa[("excess_return_with_cost", "information_ratio")]),
            "max_drawdown_with_cost": float(pa[("excess_return_with_cost", "max_drawdown")]),
        }
        extra = {
            "annualized_excess_return_without_cost": float(pa[("excess_return_without_cost", "annualized_return")]),
            "information_ratio_without_cost": float(pa[("excess_return_without_cost", "information_ratio")]),
            "max_drawdown_without_cost": float(pa[("excess_return_without_cost", "max_drawdown")]),
            "mean_daily_turnover": float(report["turnover"].mean()),
            "n_test_days": float(len(report)),
            "n_ic_days": float(len(ic)),
        }
        R.log_metrics(**{f"summary.{k}": v for k, v in metrics.items() if math.isfinite(v)})
        best = int(getattr(model.model, "best_iteration", 0) or model.model.current_iteration())
        try:
            art = rec.get_local_dir()
        except Exception:  # noqa: BLE001 - a non-local tracking store has no local folder
            art = str(getattr(rec, "artifact_uri", ""))
        return SeedResult(variant, seed, metrics, extra, best, n_features, round(fit_s, 2), round(bt_s, 2),
                          str(rec.experiment_id), str(rec.id), str(art))


# Models fitted side by side run in spawned processes, never forked ones: the run's own process has used
# LightGBM's OpenMP pool by then (a serial seed, an earlier run, a test), and GNU OpenMP deadlocks in a forked
# child. Each worker builds its dataset once from the same files (Alpha158's raw frame and the graph features as
# Parquet), so every model reads the same data as in the serial mode.
_WORKER_DATASETS: dict[str, Any] = {}


def _worker_dataset(variant: str, cfg: "CSI300ReproductionSettings", workflow: dict[str, Any],
                    frames: dict[str, str]) -> Any:
    """The variant's dataset in this worker, built on first use from ``frames`` (Parquet paths)."""
    if variant not in _WORKER_DATASETS:
        from graphwiz_trader.data.qlib_runtime import init_qlib
        from graphwiz_trader.research.csi300_cache import dataset_from_raw, raw_from_parquet

        init_qlib(cfg.provider_uri, region="cn", mlflow_dir=cfg.mlflow_dir, kernels=cfg.kernels)
        with _quiet(io.StringIO()):
            ds = dataset_from_raw(raw_from_parquet(frames["raw"]), workflow["task"]["dataset"]["kwargs"]["segments"])
            if variant != "alpha158":
                ds = _graph_dataset(ds, pd.read_parquet(frames["graph"]), cfg.segments)
        _WORKER_DATASETS[variant] = ds
    return _WORKER_DATASETS[variant]


def _fit_in_worker(variant: str, seed: int, workflow: dict[str, Any], cfg: "CSI300ReproductionSettings",
                   frames: dict[str, str], parent: int) -> tuple[SeedResult, str]:
    """One model in a spawned worker; Qlib's console output comes back with the result."""
    die_with_parent(parent)
    sink = io.StringIO()
    return _fit_and_record(variant, seed, _worker_dataset(variant, cfg, workflow, frames), workflow, cfg, sink), sink.getvalue()


def _model_pool(workers: int) -> Any:
    """A pool of ``workers`` spawned processes (fresh interpreters: no OpenMP or thread state inherited)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def run_reproduction(cfg: CSI300ReproductionSettings, run_dir: Path | None = None, progress: bool = True,
                     on_seed: Callable[[SeedResult], None] | None = None, store: Any = None) -> ReproductionResult:
    """Run the published workflow for every seed (and with graph features when ``cfg.graph``).

    Parameters
    ----------
    cfg : the run.
    run_dir : folder for Qlib's console output (``qlib_output.log``) and the graph features (Parquet).
    progress : a progress bar over the fits.
    on_seed : called after each fitted and backtested model (e.g. to print a line).
    store : the graph store the graph variant writes its build to and reads it back from (an open
        :class:`~graphwiz_trader.graph.store.GraphStore`); ``None``: opened from the ``NEO4J_*`` environment,
        the embedded server without ``NEO4J_URI``.
    """
    from graphwiz_trader.core.progress import bar as progress_counter
    from graphwiz_trader.data.qlib_runtime import init_qlib
    from graphwiz_trader.research.csi300_cache import (
        alpha158_raw_frame,
        dataset_from_raw,
        raw_to_parquet,
    )

    t_all = time.perf_counter()
    init_qlib(cfg.provider_uri, region="cn", mlflow_dir=cfg.mlflow_dir, kernels=cfg.kernels)
    audit = audit_data(cfg)
    for note in audit.notes():
        log.info("data: %s", note)
    workflow = build_workflow_config(cfg, limit_threshold=audit.limit_threshold)
    timings: dict[str, float] = {}
    sink = io.StringIO()

    t0 = time.perf_counter()
    with _quiet(sink):
        ds_cfg = workflow["task"]["dataset"]
        raw, from_cache, cache_path = alpha158_raw_frame(ds_cfg, cfg.provider_uri, cfg.cache_dir)
        dataset = dataset_from_raw(raw, ds_cfg["kwargs"]["segments"])
    timings["alpha158_dataset"] = round(time.perf_counter() - t0, 2)
    log.info("Alpha158 dataset prepared in %.1fs%s", timings["alpha158_dataset"],
             f" (raw frame from the cache {cache_path})" if from_cache else "")

    variants = ["alpha158"] + (["alpha158+graph"] if cfg.graph else [])
    runs: dict[str, list[SeedResult]] = {v: [] for v in variants}
    bar = progress_counter(total=len(variants) * len(cfg.seeds), desc="reproduce qlib-csi300", unit="model", enabled=progress)
    pending: dict[str, list[Any]] = {v: [] for v in variants}
    pool = _model_pool(min(cfg.workers, len(variants) * len(cfg.seeds))) if cfg.workers > 1 else None
    scratch = Path(tempfile.mkdtemp(prefix="gw_csi300_"))
    frames = {"raw": cache_path or str(scratch / "alpha158_raw.parquet"), "graph": str(scratch / "graph.parquet")}
    if pool is not None and cache_path is None:
        raw_to_parquet(raw, frames["raw"])

    def fit_all(variant: str, ds: Any) -> None:
        """Every seed of ``variant``: in this process (``workers == 1``) or submitted to the worker pool."""
        if pool is None:
            for seed in cfg.seeds:
                r = _fit_and_record(variant, seed, ds, workflow, cfg, sink)
                runs[variant].append(r)
                bar.update(1)
                if on_seed:
                    on_seed(r)
            return
        pending[variant] = [pool.submit(_fit_in_worker, variant, seed, workflow, cfg, frames, os.getpid())
                            for seed in cfg.seeds]

    def collect(variant: str) -> None:
        for fut in pending[variant]:
            r, text = fut.result()
            sink.write(text)
            runs[variant].append(r)
            bar.update(1)
            if on_seed:
                on_seed(r)

    try:
        fit_all("alpha158", dataset)   # with workers > 1 these run while the graph stage below runs here
        if cfg.graph:
            t0 = time.perf_counter()
            seg = cfg.segments
            close, members = load_close_and_membership(cfg.market, seg.train[0], seg.test[1])
            stages: dict[str, Any] = {}
            graph = graph_features_csi300(close, members, cfg.graph_config, store=store, timings=stages)
            timings["graph_features"] = round(time.perf_counter() - t0, 2)
            log.info("graph: %d snapshots, stages %s", stages.get("n_snapshots", 0),
                     ", ".join(f"{k} {v:.1f}s" for k, v in stages.items() if k != "n_snapshots"))
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                graph.to_parquet(run_dir / "graph_features.parquet")
            if pool is not None:
                graph.to_parquet(frames["graph"])
            t0 = time.perf_counter()
            with _quiet(sink):
                gds = _graph_dataset(dataset, graph, cfg.segments)
            timings["graph_dataset"] = round(time.perf_counter() - t0, 2)
            fit_all("alpha158+graph", gds)
        for v in variants:
            collect(v)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)
        bar.close()
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "qlib_output.log").write_text(sink.getvalue())
    for v in variants:
        timings[f"fit_{v}"] = round(sum(r.fit_seconds for r in runs[v]), 2)
        timings[f"backtest_{v}"] = round(sum(r.backtest_seconds for r in runs[v]), 2)
    timings["total"] = round(time.perf_counter() - t_all, 2)
    conf = asdict(cfg)
    conf["provider_uri"] = str(cfg.provider_uri)
    conf["mlflow_dir"] = str(Path(cfg.mlflow_dir).resolve() if cfg.mlflow_dir else default_mlflow_dir())
    conf["python_hash_seed"] = os.environ.get("PYTHONHASHSEED", "random")
    conf["cache_dir"] = None if cfg.cache_dir is None else str(Path(cfg.cache_dir).resolve())
    conf["alpha158_from_cache"] = from_cache
    return ReproductionResult(conf, workflow, audit, runs, timings, None if run_dir is None else str(run_dir))


# --------------------------------------------------------------------------------------------------------------
# Presentation
# --------------------------------------------------------------------------------------------------------------


def _fmt(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "nan"
    return f"{mean:.4f}" if not math.isfinite(std) else f"{mean:.4f}±{std:.4f}"


def format_table(result: ReproductionResult) -> str:
    """Published row, then mean±std over seeds of each variant, then the paired graph - baseline difference."""
    names = [METRIC_LABELS[k] for k in METRICS]
    rows: list[tuple[str, list[str]]] = [("published (20 seeds)", [f"{PUBLISHED[k]:.4f}" for k in METRICS])]
    for v, rs in result.runs.items():
        s = result.summary(v)
        rows.append((f"{v} ({len(rs)} seeds)", [_fmt(s["mean"][k], s["std"][k]) for k in METRICS]))
    if "alpha158+graph" in result.runs:
        d = result.paired_difference("alpha158+graph")
        rows.append(("graph - baseline (paired)", [_fmt(d["mean"][k], d["std"][k]) for k in METRICS]))
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(n), *(len(r[1][i]) for r in rows)) for i, n in enumerate(names)]
    head = " | ".join([" " * w0] + [n.rjust(w) for n, w in zip(names, widths)])
    lines = [head, "-" * len(head)]
    for label, vals in rows:
        lines.append(" | ".join([label.ljust(w0)] + [v.rjust(w) for v, w in zip(vals, widths)]))
    return "\n".join(lines)



__all__ = [
    "DATA_SEGMENTS", "DataAudit", "GRAPH_FEATURES", "GraphFeatureSettings", "METRICS", "PUBLISHED",
    "PUBLISHED_EXCHANGE_KWARGS", "PUBLISHED_LABEL", "PUBLISHED_MODEL_KWARGS", "PUBLISHED_SEGMENTS",
    "CSI300ReproductionSettings", "ReproductionResult", "SeedResult", "Segments", "alpha158_default_processors",
    "audit_data", "build_workflow_config", "detect_change_unit", "format_table", "graph_feature_columns",
    "graph_features_csi300", "load_close_and_membership", "published_model_kwargs", "run_reproduction",
    "summarize",
]
