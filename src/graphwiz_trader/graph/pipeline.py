"""Bars -> graph (snapshots + regime state) -> the graph store, and back.

:func:`build_graph` runs the builders in memory and names the result with a **build id**, a hash of the
build spec (regime parameters resolved), the bars fingerprint and the universe. :func:`write_graph` writes
a build under its id and :func:`read_graph` reads one build back, so what a run reads is what that run
built, whatever else the store holds. :func:`build_panel_graph` builds snapshots only (no regime state)
from a close panel and an optional point-in-time membership mask (index members, e.g. CSI300), named the
same way. :func:`populate_sample_graph_data` fills the store from the data layer (async, as users call it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.core.timeframes import infer_timeframe, timeframe_minutes
from graphwiz_trader.data.qlib_bins import bars_fingerprint
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE, RegimeSettings, build_regime_state
from graphwiz_trader.graph.builders.panel import close_panel, members_at
from graphwiz_trader.graph.builders.snapshots import SnapshotSettings, build_snapshots, build_snapshots_from
from graphwiz_trader.graph.snapshot import GraphSnapshot, empty_regime_state

log = logging.getLogger(__name__)

BUILD_FORMAT = 1  # bump when what a build id covers changes, so old ids are never taken for new builds
_GRAPH_DEFAULTS = GraphSettings()  # the one source of the graph defaults (config/settings.py)


def regime_params_for(timeframe: str) -> RegimeSettings:
    """Regime-model lengths for a bar size: 60 days of history before the first fit, weekly re-fits,
    a one-week realised-volatility window for asset regimes (all converted to bars)."""
    per_day = max(1, 1440 // timeframe_minutes(timeframe))
    return RegimeSettings(min_train=max(60 * per_day, 60), refit_every=max(7 * per_day, 5),
                        asset_vol_window=max(7 * per_day, 5), asset_min_history=max(30 * per_day, 20),
                        burn_in=min(500, 20 * per_day))


@dataclass(frozen=True)
class GraphBuildSettings:
    """How the graph is built from bars (lengths in bars, correlations as fractions).

    The defaults of ``window``, ``stride``, ``method``, ``min_abs_rho`` and ``top_k`` are those of
    :class:`~graphwiz_trader.config.settings.GraphSettings` (``corr_window`` etc.); build a spec from a
    loaded configuration with :meth:`from_settings`. ``lead_min_abs_rho`` (fraction) overrides the lead-lag
    rule's minimum |lagged correlation| (``None``: the builders' 0.15, set for 720-bar windows; a 60-day window
    needs about 0.4 for the same false-discovery rate).
    """

    window: int = _GRAPH_DEFAULTS.corr_window
    stride: int = _GRAPH_DEFAULTS.corr_stride
    method: str = _GRAPH_DEFAULTS.corr_method
    min_abs_rho: float = _GRAPH_DEFAULTS.min_abs_rho
    top_k: int | None = _GRAPH_DEFAULTS.top_k
    min_periods: int | None = None
    lead_max_lag: int = 6
    regimes: RegimeSettings | None = None
    exchange: str = "binance"
    lead_min_abs_rho: float | None = None

    @classmethod
    def from_settings(cls, settings: GraphSettings | None = None, **overrides: Any) -> "GraphBuildSettings":
        """The spec of the ``graph:`` settings (defaults when ``None``), with ``overrides`` (field=value) applied."""
        s = settings if settings is not None else _GRAPH_DEFAULTS
        base = cls(window=s.corr_window, stride=s.corr_stride, method=s.corr_method, min_abs_rho=s.min_abs_rho,
                   top_k=s.top_k)
        return replace(base, **overrides)


@dataclass
class GraphBuild:
    """A graph built from bars: snapshots, regime state, its build id and what the id was computed from."""

    snapshots: list[GraphSnapshot]
    regimes: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    build_id: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def resolved_regime_params(bars: dict[str, pd.DataFrame], spec: GraphBuildSettings) -> RegimeSettings:
    """The regime parameters a build uses: the spec's, else those for the bars' timeframe."""
    return spec.regimes or regime_params_for(infer_timeframe(next(iter(bars.values())).index))


def _spec_dict(spec: GraphBuildSettings) -> dict[str, Any]:
    """The spec as hashed into a build id; ``lead_min_abs_rho`` only when set (builds made before it existed keep
    their ids)."""
    d = asdict(spec)
    if d.get("lead_min_abs_rho") is None:
        d.pop("lead_min_abs_rho", None)
    return d


def _lead_kwargs(spec: GraphBuildSettings) -> dict[str, Any]:
    return {} if spec.lead_min_abs_rho is None else {"lead_min_abs_rho": float(spec.lead_min_abs_rho)}


def build_identity(bars: dict[str, pd.DataFrame], spec: GraphBuildSettings) -> tuple[str, dict[str, Any]]:
    """``(build id, info)``: the id is the first 16 hex digits of SHA-256 over ``info``, the JSON of the build
    format, the spec (regime parameters resolved), the universe (sorted symbols) and the bars fingerprint
    (:func:`~graphwiz_trader.data.qlib_bins.bars_fingerprint`: symbols, times and OHLCV values)."""
    if not bars:
        raise DataError("bars: no symbols to build a graph from")
    spec_d = _spec_dict(replace(spec, regimes=resolved_regime_params(bars, spec)))
    info = {"format": BUILD_FORMAT, "spec": spec_d, "universe": sorted(bars), "bars": bars_fingerprint(bars)}
    text = json.dumps(info, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], info


def build_graph(bars: dict[str, pd.DataFrame], spec: GraphBuildSettings, progress: bool = False) -> GraphBuild:
    """Snapshots and regime state from bars (in memory, nothing written), named by :func:`build_identity`."""
    build_id, info = build_identity(bars, spec)
    t0 = time.perf_counter()
    snaps = build_snapshots(bars, spec.window, spec.stride, spec.min_periods, spec.method, spec.min_abs_rho,
                            spec.top_k, spec.lead_max_lag, progress=progress, **_lead_kwargs(spec))
    t1 = time.perf_counter()
    regimes = build_regime_state(bars, resolved_regime_params(bars, spec), asset_times=[s.as_of for s in snaps],
                                 progress=progress)
    t2 = time.perf_counter()
    return GraphBuild(snaps, regimes, {"snapshots": t1 - t0, "regimes": t2 - t1}, build_id, info)


def panel_fingerprint(panel: pd.DataFrame, members: pd.DataFrame | None = None) -> str:
    """A content hash (16 hex digits) of a close panel (times, symbols, values) and of its membership mask."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, panel.columns)).encode())
    h.update(pd.DatetimeIndex(panel.index).as_unit("ns").asi8.tobytes())
    h.update(np.ascontiguousarray(panel.to_numpy("float64")).tobytes())
    if members is not None:
        h.update(b"members")
        h.update(np.ascontiguousarray(members_at(members, panel.index, list(panel.columns))).tobytes())
    return h.hexdigest()[:16]


def panel_build_identity(panel: pd.DataFrame, spec: GraphBuildSettings,
                         members: pd.DataFrame | None = None) -> tuple[str, dict[str, Any]]:
    """``(build id, info)`` of :func:`build_panel_graph` without building: the first 16 hex digits of SHA-256 over
    the JSON of the build format, the spec (regimes left out), the universe and :func:`panel_fingerprint`."""
    panel = close_panel(panel, where="close panel")
    info = {"format": BUILD_FORMAT, "kind": "panel", "spec": _spec_dict(replace(spec, regimes=None)),
            "universe": [str(c) for c in panel.columns], "panel": panel_fingerprint(panel, members)}
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:16], info


def build_panel_graph(panel: pd.DataFrame, spec: GraphBuildSettings, members: pd.DataFrame | None = None,
                      progress: bool = False) -> GraphBuild:
    """Correlation snapshots of a close panel, a node only where ``members`` says so; no regime state.

    Parameters
    ----------
    panel
        Closes (UTC times x symbols such as ``BTC/USDT`` or ``SH600000``), NaN where there is no bar.
    spec
        Window, stride, method and pruning (bars, fractions); ``spec.regimes`` is not used.
    members
        Point-in-time universe (booleans covering the panel's times and symbols), ``None``: all.

    Returns
    -------
    GraphBuild
        Snapshots, an empty regime frame, and a build id over the build format, the spec, the universe,
        the panel's content and the mask (:func:`panel_fingerprint`).
    """
    panel = close_panel(panel, where="close panel")
    build_id, info = panel_build_identity(panel, spec, members)
    params = SnapshotSettings(window=spec.window, stride=spec.stride, min_periods=spec.min_periods,
                              method=spec.method, min_abs_rho=spec.min_abs_rho, top_k=spec.top_k,
                              lead_max_lag=spec.lead_max_lag, **_lead_kwargs(spec))
    t0 = time.perf_counter()
    snaps = build_snapshots_from(panel, params, progress=progress, members=members)
    return GraphBuild(snaps, empty_regime_state(), {"snapshots": time.perf_counter() - t0}, build_id, info)


def write_graph(store: Any, build: GraphBuild, exchange: str) -> dict[str, float]:
    """Write a build's snapshots and regimes (batched, each switched in complete) under its build id.

    A build without regime records (:func:`build_panel_graph`) writes its snapshots only.
    """
    t0 = time.perf_counter()
    store.write_snapshots(build.snapshots, build=build.build_id, info=build.info, exchange=exchange)
    t1 = time.perf_counter()
    if len(build.regimes):
        store.write_regimes(build.regimes, build=build.build_id, info=build.info)
    return {"write_snapshots": t1 - t0, "write_regimes": time.perf_counter() - t1}


def read_graph(store: Any, build_id: str, symbols: list[str] | None, end: Any = None,
               regimes: bool = True) -> GraphBuild:
    """Read back one build: its snapshots and (``regimes``) its regime records (market and ``symbols``) as of
    ``end``; ``symbols=None`` reads every asset of the build, ``regimes=False`` is for a build that has none
    (:func:`build_panel_graph`)."""
    t0 = time.perf_counter()
    snaps = store.read_snapshots(build_id, symbols, end=end)
    reg = (store.read_regimes(build_id, [MARKET_SCOPE, *(symbols or [])], end=end) if regimes
           else empty_regime_state())
    return GraphBuild(snaps, reg, {"read": time.perf_counter() - t0}, build_id)


async def populate_sample_graph_data(symbols: list[str] | None = None, source: str | None = None,
                                     fmt: str = "freqtrade", timeframe: str = "1h", start: str | None = None,
                                     end: str | None = None, window: int | None = None, stride: int | None = None,
                                     settings: GraphSettings | None = None) -> dict[str, Any]:
    """Fill the graph store from the data layer (async, as users call it).

    With ``source``: bars from files (``fmt`` freqtrade/csv) or the Parquet store (``fmt="store"``).
    Without ``source``: the deterministic SYNTHETIC market (its symbols; real symbols such as
    ``BTC/USDT`` are refused there, never faked). ``window``/``stride`` (bars) default to the settings'
    ``corr_window``/``corr_stride``. Returns counts, the build id (read it back with it) and where it went.
    """
    from graphwiz_trader.data.sources import load_bars
    from graphwiz_trader.graph.store import AsyncGraphStore

    kind = fmt if source else "synthetic"
    bars, label = await asyncio.to_thread(load_bars, source, kind, timeframe, symbols, start, end)
    overrides: dict[str, Any] = {"exchange": "synthetic" if kind == "synthetic" else "binance"}
    overrides.update({k: v for k, v in (("window", window), ("stride", stride)) if v is not None})
    spec = GraphBuildSettings.from_settings(settings, **overrides)
    build = await asyncio.to_thread(build_graph, bars, spec)
    store = await AsyncGraphStore.connect(settings)
    try:
        await store.write_snapshots(build.snapshots, build=build.build_id, info=build.info, exchange=spec.exchange)
        await store.write_regimes(build.regimes, build=build.build_id, info=build.info)
        uri = store.uri
    finally:
        await store.close()
    edges = sum(len(s.edges) for s in build.snapshots)
    leads = sum(len(s.leads) for s in build.snapshots)
    log.info("graph populated from %s: build %s, %d snapshots, %d correlation edges, %d lead-lag edges at %s",
             label, build.build_id, len(build.snapshots), edges, leads, uri)
    return {"data": label, "symbols": list(bars), "build": build.build_id, "snapshots": len(build.snapshots),
            "correlation_edges": edges, "lead_edges": leads, "regime_records": len(build.regimes), "uri": uri}
