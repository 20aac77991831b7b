"""Bars -> graph (snapshots + regime state) -> the graph store, and back.

:func:`build_graph` runs the builders in memory; :func:`write_graph` / :func:`read_graph` move a build
through a :class:`~graphwiz_trader.graph.store.GraphStore`; :func:`populate_sample_graph_data` fills the
store from the data layer (async, as users call it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.core.timeframes import infer_timeframe, timeframe_minutes
from graphwiz_trader.graph.builders.regimes import MARKET_SCOPE, RegimeParams, build_regime_state
from graphwiz_trader.graph.builders.snapshots import build_snapshots
from graphwiz_trader.graph.snapshot import GraphSnapshot

log = logging.getLogger(__name__)


def regime_params_for(timeframe: str) -> RegimeParams:
    """Regime-model lengths for a bar size: 60 days of history before the first fit, weekly re-fits,
    a one-week realised-volatility window for asset regimes (all converted to bars)."""
    per_day = max(1, 1440 // timeframe_minutes(timeframe))
    return RegimeParams(min_train=max(60 * per_day, 60), refit_every=max(7 * per_day, 5),
                        asset_vol_window=max(7 * per_day, 5), asset_min_history=max(30 * per_day, 20),
                        burn_in=min(500, 20 * per_day))


@dataclass(frozen=True)
class GraphBuildSpec:
    """How the graph is built from bars (lengths in bars, correlations as fractions)."""

    window: int = 720
    stride: int = 24
    method: str = "pearson"
    min_abs_rho: float = 0.3
    top_k: int | None = 10
    min_periods: int | None = None
    lead_max_lag: int = 6
    regimes: RegimeParams | None = None
    exchange: str = "binance"

    @classmethod
    def from_settings(cls, settings: GraphSettings, **overrides: Any) -> "GraphBuildSpec":
        base = cls(window=settings.corr_window, stride=settings.corr_stride, method=settings.corr_method,
                   min_abs_rho=settings.min_abs_rho, top_k=settings.top_k)
        return replace(base, **overrides)


@dataclass
class GraphBuild:
    snapshots: list[GraphSnapshot]
    regimes: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def build_graph(bars: dict[str, pd.DataFrame], spec: GraphBuildSpec, progress: bool = False) -> GraphBuild:
    """Snapshots and regime state from bars (in memory, nothing written)."""
    t0 = time.perf_counter()
    snaps = build_snapshots(bars, spec.window, spec.stride, spec.min_periods, spec.method, spec.min_abs_rho,
                            spec.top_k, spec.lead_max_lag, progress=progress)
    t1 = time.perf_counter()
    tf = infer_timeframe(next(iter(bars.values())).index)
    params = spec.regimes or regime_params_for(tf)
    regimes = build_regime_state(bars, params, asset_times=[s.as_of for s in snaps], progress=progress)
    t2 = time.perf_counter()
    return GraphBuild(snaps, regimes, {"snapshots": t1 - t0, "regimes": t2 - t1})


def write_graph(store: Any, build: GraphBuild, exchange: str) -> dict[str, float]:
    """Write snapshots and regimes (batched) to a :class:`GraphStore`."""
    t0 = time.perf_counter()
    store.write_snapshots(build.snapshots, exchange=exchange)
    t1 = time.perf_counter()
    store.write_regimes(build.regimes)
    return {"write_snapshots": t1 - t0, "write_regimes": time.perf_counter() - t1}


def read_graph(store: Any, symbols: list[str], spec: GraphBuildSpec, end: Any = None) -> GraphBuild:
    """Read back the snapshots (this method and window) and the regime records as of ``end``."""
    t0 = time.perf_counter()
    snaps = store.read_snapshots(symbols, end=end, method=spec.method, window=spec.window)
    regimes = store.read_regimes([MARKET_SCOPE, *symbols], end=end)
    return GraphBuild(snaps, regimes, {"read": time.perf_counter() - t0})


async def populate_sample_graph_data(symbols: list[str] | None = None, source: str | None = None,
                                     fmt: str = "freqtrade", timeframe: str = "1h", start: str | None = None,
                                     end: str | None = None, window: int = 720, stride: int = 24,
                                     settings: GraphSettings | None = None) -> dict[str, Any]:
    """Fill the graph store from the data layer (async, as users call it).

    With ``source``: bars from files (``fmt`` freqtrade/csv) or the Parquet store (``fmt="store"``).
    Without ``source``: the deterministic SYNTHETIC market (its symbols; real symbols such as
    ``BTC/USDT`` are refused there, never faked). Returns counts and where the data went.
    """
    from graphwiz_trader.data.sources import load_bars
    from graphwiz_trader.graph.store import AsyncGraphStore

    kind = fmt if source else "synthetic"
    bars, label = await asyncio.to_thread(load_bars, source, kind, timeframe, symbols, start, end)
    spec = GraphBuildSpec(window=window, stride=stride, exchange="synthetic" if kind == "synthetic" else "binance")
    build = await asyncio.to_thread(build_graph, bars, spec)
    store = await AsyncGraphStore.connect(settings)
    try:
        await store.write_snapshots(build.snapshots, exchange=spec.exchange)
        await store.write_regimes(build.regimes)
        uri = store.uri
    finally:
        await store.close()
    edges = sum(len(s.edges) for s in build.snapshots)
    leads = sum(len(s.leads) for s in build.snapshots)
    log.info("graph populated from %s: %d snapshots, %d correlation edges, %d lead-lag edges at %s",
             label, len(build.snapshots), edges, leads, uri)
    return {"data": label, "symbols": list(bars), "snapshots": len(build.snapshots), "correlation_edges": edges,
            "lead_edges": leads, "regime_records": len(build.regimes), "uri": uri}
