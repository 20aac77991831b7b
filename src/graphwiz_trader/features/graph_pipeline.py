"""Graph features read back from the graph store, point-in-time.

:func:`graph_features_for_bars` builds correlation snapshots and regime state from the bars (graph
builders), writes them to the graph store (the embedded Bolt server by default, Neo4j when
``NEO4J_URI`` is set) under their build id, reads that build back and computes the ``G_*`` features from
what was read (never from other builds the store holds). Each
feature at t uses the latest snapshot with ``as_of <= t`` and regime records at or before t
(see :mod:`graphwiz_trader.features.graph_features`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.features.graph_features import MOMENTUM_HORIZONS, graph_features
from graphwiz_trader.graph.pipeline import (
    GraphBuild,
    GraphBuildSettings,
    build_graph,
    build_panel_graph,
    panel_build_identity,
    read_graph,
    write_graph,
)

log = logging.getLogger(__name__)

__all__ = ["GraphBuildSettings", "graph_features_for_bars", "graph_features_for_panel"]


def graph_features_for_bars(bars: dict[str, pd.DataFrame], window: int | None = None, stride: int | None = None,
                            spec: GraphBuildSettings | None = None, store: Any = None,
                            settings: GraphSettings | None = None, timings: dict | None = None,
                            progress: bool = False) -> pd.DataFrame:
    """Build the graph from ``bars``, write it to the store, read that build back and compute the features.

    ``spec`` says how the graph is built; without one, ``window``/``stride`` (bars) override the
    ``settings``' ``corr_window``/``corr_stride`` (:meth:`GraphBuildSettings.from_settings`).
    ``store``: an open :class:`~graphwiz_trader.graph.store.GraphStore`; by default one is opened from
    ``settings`` (or ``NEO4J_*`` env; without ``NEO4J_URI`` the embedded server starts).
    """
    from graphwiz_trader.graph.store import GraphStore

    if spec is None:
        synthetic = any(df.attrs.get("synthetic") for df in bars.values())
        overrides: dict[str, Any] = {"exchange": "synthetic" if synthetic else "binance"}
        overrides.update({k: v for k, v in (("window", window), ("stride", stride)) if v is not None})
        spec = GraphBuildSettings.from_settings(settings, **overrides)
    own = store is None
    store = store or GraphStore.connect(settings)
    try:
        build = build_graph(bars, spec, progress=progress)
        w = write_graph(store, build, spec.exchange)
        back = read_graph(store, build.build_id, list(bars))
    finally:
        if own:
            store.close()
    t0 = time.perf_counter()
    feats = graph_features(back.snapshots, back.regimes, bars, progress=progress)
    return _finish(feats, build, back, w, t0, timings, "graph features")


def _finish(feats: pd.DataFrame, build: GraphBuild, back: GraphBuild, writes: dict[str, float], t0: float,
            timings: dict | None, what: str) -> pd.DataFrame:
    """Tz-naive UTC datetimes (Qlib's convention, and the Alpha158 frame's), the stage timings (seconds), a log."""
    feats.index = feats.index.set_levels(feats.index.levels[0].tz_convert(None), level=0)
    if timings is not None:
        timings.update(build.seconds, **writes, **back.seconds, features=time.perf_counter() - t0,
                       n_snapshots=len(back.snapshots))
    log.info("%s: build %s, %d snapshots read back, %d rows x %d columns", what, build.build_id,
             len(back.snapshots), *feats.shape)
    return feats


def graph_features_for_panel(panel: pd.DataFrame, spec: GraphBuildSettings, members: pd.DataFrame | None = None,
                             store: Any = None, settings: GraphSettings | None = None,
                             horizons: Sequence[int] = MOMENTUM_HORIZONS, gaps: bool = False,
                             timings: dict | None = None, progress: bool = False, reuse: bool = False) -> pd.DataFrame:
    """Graph features of a close panel through the store, with an optional point-in-time universe.

    The panel's snapshots are built (:func:`~graphwiz_trader.graph.pipeline.build_panel_graph`: an asset is
    a node only when it is a member on the snapshot's ``as_of``), written under their build id, read back,
    and the features computed from what was read, with rows only on the bars where the asset is a member.
    There is no regime state: the regime columns are NaN.

    Parameters
    ----------
    panel
        Closes, UTC times x symbols (``BTC/USDT``, ``SH600000``).
    spec
        How the graph is built (bars, fractions); ``spec.exchange`` names the assets' exchange in the store.
    members
        Booleans covering ``panel`` (True = member that bar); ``None``: every bar with a close.
    store, settings
        As :func:`graph_features_for_bars`.
    horizons, gaps
        Neighbour-momentum horizons (bars) and the gap columns (see :func:`graph_features`).
    reuse
        When the store already holds this build id with its snapshots (the id is a content hash of the spec,
        the panel and the mask, and a build's snapshots are switched in only once complete), read it back
        instead of building and writing it again.

    Returns
    -------
    DataFrame
        ``G_*`` columns, index ``(datetime, instrument)`` with tz-naive UTC datetimes (Qlib's convention).
    """
    from graphwiz_trader.graph.store import GraphStore

    own = store is None
    store = store or GraphStore.connect(settings)
    try:
        build_id, _ = panel_build_identity(panel, spec, members)
        held = store.list_builds() if reuse else None
        if held is not None and (held["build"] == build_id).any() and held.loc[
                held["build"] == build_id, "snapshots_gen"].notna().all():
            build, w = GraphBuild([], pd.DataFrame(), {}, build_id), {"write_snapshots": 0.0, "reused_build": 1.0}
            log.info("graph features (panel): build %s is in the store already; reading it back", build_id)
        else:
            build = build_panel_graph(panel, spec, members, progress=progress)
            w = write_graph(store, build, spec.exchange)
        back = read_graph(store, build.build_id, None, regimes=False)   # its nodes: members only
    finally:
        if own:
            store.close()
    t0 = time.perf_counter()
    feats = graph_features(back.snapshots, None, panel, horizons=horizons, gaps=gaps, members=members,
                           progress=progress)
    return _finish(feats, build, back, w, t0, timings, "graph features (panel)")
