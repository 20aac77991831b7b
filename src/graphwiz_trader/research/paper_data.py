"""The two datasets of the paper, each as one feature frame with its variants, labels and naive scores.

Both go through the same path: bars -> Alpha158 (Qlib) -> a correlation graph built by the shared builders,
written to the graph store under its build id and read back -> the current ``G_*`` graph features
(:mod:`graphwiz_trader.features.graph_features`) and the five graph families
(:mod:`graphwiz_trader.features.graph_families`) computed from what was read -> forward log returns per horizon.

- ``crypto``: Binance hourly candles of the 20 majors (freqtrade layout), Alpha158 (+ the project's extras) on
  them, the graph of :func:`graphwiz_trader.graph.pipeline.build_graph` (720-bar window, a snapshot every 24
  bars, lead-lag up to 6 bars, market and asset regimes).
- ``csi300``: Qlib's CN data, Alpha158's raw frame of the CSI300 reproduction (cached across runs), the members
  of the day as a point-in-time universe, the panel graph of the reproduction (60-day window, a snapshot every 5
  days, top 10 edges per node) plus lead-lag edges (lag 1-2 days, |rho| >= 0.4 on ~58 returns, about 3 standard
  errors) and a 3-state market regime model on the members' returns; written to the store with the
  snapshots under one build id.

Every row of the returned frame is an Alpha158 row; graph columns are NaN where the asset was not in the graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.errors import DataError
from graphwiz_trader.research.ablation import BASELINE, Variant

log = logging.getLogger(__name__)

REGIME_CODE = "__regime_code__"
"""The market regime at t as an integer code (0 = first regime name ...): the split column of the per-regime
model variant, never a model input."""


@dataclass
class AblationData:
    """One dataset, ready for :func:`graphwiz_trader.research.ablation.run_ablation`."""

    name: str
    label: str                       # what the data is, printed in the paper
    features: pd.DataFrame
    fwd_returns: dict[int, pd.Series]
    variants: list[Variant]
    naive_scores: dict[str, pd.Series]
    alpha_columns: list[str]
    graph_columns: list[str]
    family_columns: dict[str, list[str]]
    build_id: str
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reference_label: pd.Series | None = None     # another label the scores are also measured on (CSI300: Qlib's)
    reference_name: str = ""


def build_variants(alpha: list[str], graph18: list[str], families: dict[str, list[str]]) -> list[Variant]:
    """The ablation's feature sets (same order in every table).

    ``alpha158``; ``+graph18`` (the current graph features); each family alone (``+peer`` ...); the regime
    family as interactions (``+regime_x``) and as one model per market regime (``+regime_split``, Alpha158
    columns); ``+all`` (every family).
    """
    fam_cols = {f: tuple(c) for f, c in families.items() if c}
    out = [Variant(BASELINE, tuple(alpha), note="Alpha158 only"),
           Variant("+graph18", tuple(alpha + graph18), families={"graph18": tuple(graph18)},
                   note="Alpha158 + the current graph features (degree, centrality, community, regime one-hot ...)")]
    for fam, cols in fam_cols.items():
        name = "+regime_x" if fam == "regime" else f"+{fam}"
        note = ("regime probabilities x strongest features (interactions)" if fam == "regime"
                else f"Alpha158 + the {fam} family")
        out.append(Variant(name, tuple(alpha) + cols, families={fam: cols}, note=note))
    out.append(Variant("+regime_split", tuple(alpha), split_by=REGIME_CODE, note="Alpha158, one model per market regime"))
    every = tuple(c for cols in fam_cols.values() for c in cols)
    out.append(Variant("+all", tuple(alpha) + every, families=fam_cols, note="Alpha158 + every family"))
    return out


def regime_code(graph: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """The market regime at t as a code (position of the name), NaN before the first regime record."""
    onehot = graph[[f"G_mkt_regime_{n}" for n in names]].to_numpy(dtype=np.float64)
    code = np.where(np.isnan(onehot).any(axis=1) | (onehot.sum(axis=1) == 0), np.nan, onehot.argmax(axis=1))
    return pd.Series(code, index=graph.index, name=REGIME_CODE)


def naive_scores_from_close(close: pd.DataFrame, horizons: tuple[int, ...]) -> dict[str, pd.Series]:
    """Scores without a model: ``reversal_<k>`` = minus the trailing k-bar log return (k = each horizon), and
    ``momentum_<m>`` = the log return from t-m to t-1 (m = 20 horizons' worth of the shortest, skipping the
    last bar). Closes at t and before only."""
    from graphwiz_trader.models.targets import panel_to_long

    lc = np.log(close.to_numpy(dtype=np.float64))
    out: dict[str, pd.Series] = {}
    for k in sorted(set(horizons)):
        r = np.full_like(lc, np.nan)
        r[k:] = lc[k:] - lc[:-k]
        out[f"reversal_{k}"] = panel_to_long(-r, close)
    m = 20 * min(horizons)
    mom = np.full_like(lc, np.nan)
    mom[m:] = lc[m - 1:-1] - lc[:-m]
    out[f"momentum_{m}"] = panel_to_long(mom, close)
    return out


def _long_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Tz-naive UTC datetimes on the (datetime, instrument) index (Qlib's convention)."""
    dt = pd.DatetimeIndex(frame.index.get_level_values(0))
    if dt.tz is not None:
        dt = dt.tz_convert("UTC").tz_localize(None)
    out = frame.copy()
    out.index = pd.MultiIndex.from_arrays([dt, frame.index.get_level_values(1)], names=["datetime", "instrument"])
    return out


def _assemble(name: str, label: str, alpha: pd.DataFrame, graph18: pd.DataFrame, fam: pd.DataFrame,
              families: dict[str, list[str]], regime_names: tuple[str, ...], fwd: dict[int, pd.Series],
              naive: dict[str, pd.Series], build_id: str, info: dict[str, Any], timings: dict[str, float]) -> AblationData:
    alpha = _long_index(alpha)
    graph18 = _long_index(graph18)
    fam = _long_index(fam)
    code = regime_code(graph18, regime_names)
    g_cols = [c for c in graph18.columns if graph18[c].notna().any() and graph18[c].nunique() > 1]
    features = alpha.join(graph18[g_cols], how="left").join(fam, how="left").join(code, how="left")
    fams = {f: [c for c in cols if c in fam.columns and fam[c].notna().any()] for f, cols in families.items()}
    variants = build_variants(list(alpha.columns), g_cols, fams)
    info = {**info, "rows": len(features), "instruments": int(features.index.get_level_values(1).nunique()),
            "graph18_dropped": sorted(set(graph18.columns) - set(g_cols))}
    return AblationData(name, label, features, {h: f.reindex(features.index).dropna() for h, f in fwd.items()},
                        variants, naive, list(alpha.columns), g_cols, fams, build_id, info, timings)


# --------------------------------------------------------------------------------------------------- crypto

@dataclass(frozen=True)
class CryptoDataSettings:
    """Hourly crypto dataset (bars; lengths in bars)."""

    data: Path
    symbols: tuple[str, ...]
    start: str = "2021-01-01"
    end: str | None = None
    horizons: tuple[int, ...] = (1, 4, 24)
    graph_window: int = 720
    graph_stride: int = 24
    qlib_dir: Path = Path("data/qlib")


def crypto_dataset(cfg: CryptoDataSettings, store: Any = None, progress: bool = True) -> AblationData:
    """The hourly crypto dataset (see the module docstring)."""
    from graphwiz_trader.data.sources import load_bars
    from graphwiz_trader.features.graph_families import (
        FAMILIES,
        FamilySettings,
        family_columns,
        family_features,
    )
    from graphwiz_trader.features.graph_features import graph_features, snapshot_metrics
    from graphwiz_trader.features.pipeline import alpha_features
    from graphwiz_trader.graph.builders.panel import close_panel
    from graphwiz_trader.graph.builders.regimes import market_regime_names
    from graphwiz_trader.graph.pipeline import (
        GraphBuildSettings,
        build_graph,
        read_graph,
        write_graph,
    )
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.models.targets import forward_log_return

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bars, data_label = load_bars(cfg.data, "freqtrade", "1h", list(cfg.symbols), cfg.start, cfg.end)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    alpha = alpha_features(bars, cfg.qlib_dir)
    timings["alpha158"] = time.perf_counter() - t0
    spec = GraphBuildSettings(window=cfg.graph_window, stride=cfg.graph_stride, exchange="binance")
    t0 = time.perf_counter()
    own = store is None
    store = store or GraphStore.connect()
    try:
        build = build_graph(bars, spec, progress=progress)
        write_graph(store, build, spec.exchange)
        back = read_graph(store, build.build_id, list(bars))
    finally:
        if own:
            store.close()
    timings["graph_build_write_read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    panel = close_panel(bars)
    syms = [str(c) for c in panel.columns]
    metrics = snapshot_metrics(back.snapshots, syms, progress=progress)
    names = market_regime_names(3)
    g18 = graph_features(back.snapshots, back.regimes, panel, metrics=metrics, regime_names=names)
    settings = FamilySettings()
    fam = family_features(metrics, panel, alpha=alpha, regimes=back.regimes, window=cfg.graph_window,
                          settings=settings, regime_names=names)
    families = {f: [c for c in family_columns((f,), settings, names) if c in fam.columns] for f in FAMILIES}
    timings["graph_features"] = time.perf_counter() - t0
    fwd = {h: forward_log_return(bars, h) for h in cfg.horizons}
    instruments = {s: s.replace("/", "") for s in syms}
    close = panel.rename(columns=instruments)
    naive = naive_scores_from_close(close, cfg.horizons)
    info = {"data": data_label, "symbols": syms, "timeframe": "1h",
            "range": [str(panel.index[0]), str(panel.index[-1])], "graph_spec": asdict(spec),
            "snapshots": len(back.snapshots), "family_settings": asdict(settings)}
    return _assemble("crypto", f"{len(syms)} Binance spot pairs, hourly ({data_label})", alpha, g18, fam, families,
                     names, fwd, naive, build.build_id, info, timings)


# --------------------------------------------------------------------------------------------------- CSI300

@dataclass(frozen=True)
class CSI300DataSettings:
    """Daily CSI300 dataset (trading days)."""

    provider_uri: Path
    horizons: tuple[int, ...] = (1, 5)
    market: str | tuple[str, ...] = "csi300"
    window: int = 60
    stride: int = 5
    top_k: int = 10
    lead_max_lag: int = 2
    lead_min_abs_rho: float = 0.4
    cache_dir: Path | None = Path("data/qlib/feature_cache")
    kernels: int = 2


def panel_graph_with_regimes(panel: pd.DataFrame, members: pd.DataFrame | None, spec: Any, regime_params: Any,
                             store: Any, progress: bool = False) -> tuple[Any, str]:
    """Snapshots (:func:`~graphwiz_trader.graph.pipeline.build_panel_graph`) plus a market regime model on the
    members' closes, written to the store under one build id and read back (a build the store already holds
    complete is read back without building it again).

    The id hashes the panel build's identity with the regime parameters, so a change of either is a new build.
    Returns (the build read back, its id).
    """
    from graphwiz_trader.graph.builders.regimes import build_regime_state
    from graphwiz_trader.graph.pipeline import (
        build_panel_graph,
        panel_build_identity,
        read_graph,
        write_graph,
    )

    base_id, info = panel_build_identity(panel, spec, members)
    extra = {"market_regimes": asdict(regime_params)}
    build_id = hashlib.sha256((base_id + json.dumps(extra, sort_keys=True, default=str)).encode()).hexdigest()[:16]
    held = store.list_builds()
    done = (held["build"] == build_id).any() and held.loc[held["build"] == build_id, "snapshots_gen"].notna().all() \
        if len(held) else False
    if not done:
        build = build_panel_graph(panel, spec, members, progress=progress)
        masked = panel.where(members.to_numpy()) if members is not None else panel
        build.regimes = build_regime_state(masked, regime_params, progress=progress)
        build.build_id = build_id
        build.info = {**info, **extra}
        write_graph(store, build, spec.exchange)
    else:
        log.info("csi300 graph: build %s is in the store already; reading it back", build_id)
    return read_graph(store, build_id, None), build_id


def csi300_dataset(cfg: CSI300DataSettings, store: Any = None, progress: bool = True) -> AblationData:
    """The daily CSI300 dataset (see the module docstring)."""
    import io

    from graphwiz_trader.data.qlib_runtime import init_qlib
    from graphwiz_trader.features.graph_families import (
        FAMILIES,
        FamilySettings,
        family_columns,
        family_features,
    )
    from graphwiz_trader.features.graph_features import graph_features, snapshot_metrics
    from graphwiz_trader.graph.builders.regimes import market_regime_names
    from graphwiz_trader.graph.pipeline import GraphBuildSettings, regime_params_for
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.models.targets import forward_log_return_panel
    from graphwiz_trader.research.csi300_cache import alpha158_raw_frame
    from graphwiz_trader.research.csi300_data import _quiet, load_close_and_membership
    from graphwiz_trader.research.csi300_setup import (
        CSI300ReproductionSettings,
        build_workflow_config,
    )

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    init_qlib(cfg.provider_uri, region="cn", kernels=cfg.kernels)
    rcfg = CSI300ReproductionSettings(provider_uri=Path(cfg.provider_uri), market=cfg.market, graph=False,
                                      cache_dir=cfg.cache_dir)
    workflow = build_workflow_config(rcfg)
    ds_cfg = workflow["task"]["dataset"]
    with _quiet(io.StringIO()):
        raw, _, _ = alpha158_raw_frame(ds_cfg, cfg.provider_uri, cfg.cache_dir)
    alpha = raw["feature"].astype(np.float32)
    alpha = alpha[[c for c in alpha.columns if alpha[c].notna().any()]]   # VWAP0: no $vwap in this data
    timings["alpha158"] = time.perf_counter() - t0
    kw = ds_cfg["kwargs"]["handler"]["kwargs"]
    start, end = str(kw["start_time"]), str(kw["end_time"])
    t0 = time.perf_counter()
    close, members = load_close_and_membership(cfg.market, start, end)
    utc = pd.DatetimeIndex(close.index).tz_localize("UTC")
    codes = [str(c) for c in close.columns]
    panel = pd.DataFrame(close.to_numpy(dtype=np.float64), index=utc, columns=codes)
    mask = pd.DataFrame(members.to_numpy(dtype=bool), index=utc, columns=codes)
    spec = GraphBuildSettings(window=cfg.window, stride=cfg.stride, method="pearson", min_abs_rho=0.0,
                              top_k=cfg.top_k, min_periods=max(3, int(cfg.window * 2 / 3)),
                              lead_max_lag=cfg.lead_max_lag, exchange="qlib_cn",
                              lead_min_abs_rho=cfg.lead_min_abs_rho)
    # the market features need enough members for a cross-sectional mean (CSI300: 300; a quick check: a few)
    regime_params = replace(regime_params_for("1d"), min_assets=max(2, min(20, len(codes) // 2)))
    own = store is None
    store = store or GraphStore.connect()
    try:
        back, build_id = panel_graph_with_regimes(panel, mask, spec, regime_params, store, progress=progress)
    finally:
        if own:
            store.close()
    timings["graph_build_write_read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = snapshot_metrics(back.snapshots, codes, progress=progress)
    names = market_regime_names(regime_params.n_states)
    g18 = graph_features(back.snapshots, back.regimes, panel, metrics=metrics, regime_names=names, members=mask,
                         horizons=(1, 5, 20), gaps=True)
    settings = FamilySettings.daily()
    fam = family_features(metrics, panel, alpha=alpha, regimes=back.regimes, window=cfg.window, settings=settings,
                          regime_names=names, members=mask)
    families = {f: [c for c in family_columns((f,), settings, names) if c in fam.columns] for f in FAMILIES}
    timings["graph_features"] = time.perf_counter() - t0
    member_close = close.where(members.to_numpy())
    fwd = {h: forward_log_return_panel(close, h) for h in cfg.horizons}
    naive = naive_scores_from_close(member_close, cfg.horizons)
    if alpha.empty:
        raise DataError(f"no Alpha158 rows for {cfg.market!r} in {cfg.provider_uri}")
    info = {"data": f"Qlib CN data {cfg.provider_uri}", "market": cfg.market, "timeframe": "1d",
            "range": [start, end], "graph_spec": asdict(spec), "regime_params": asdict(regime_params),
            "snapshots": len(back.snapshots), "family_settings": asdict(settings)}
    data = _assemble("csi300", f"CSI300 members of the day, daily ({cfg.provider_uri})", alpha, g18, fam, families,
                     names, fwd, naive, build_id, info, timings)
    return replace(data, reference_label=qlib_label(close).reindex(data.features.index).dropna(),
                   reference_name=QLIB_LABEL)


QLIB_LABEL = "Ref($close, -2) / Ref($close, -1) - 1"


def qlib_label(close: pd.DataFrame) -> pd.Series:
    """Qlib's CSI300 label, the return from the next close to the one after (``Ref($close, -2) / Ref($close, -1)
    - 1``: a score made at t's close is traded from t+1), of a close panel (rows = trading days, columns =
    instruments); a missing close gives NaN, no gap is bridged. Indexed ``(datetime, instrument)``, tz-naive UTC."""
    from graphwiz_trader.models.targets import panel_to_long

    c = close.to_numpy(dtype=np.float64)
    out = np.full_like(c, np.nan)
    if len(c) > 2:
        out[:-2] = c[2:] / c[1:-1] - 1.0
    return panel_to_long(out, close).sort_index().rename("qlib_label")
