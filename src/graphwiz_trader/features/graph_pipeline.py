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
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.features.graph_features import graph_features
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_graph, read_graph, write_graph

log = logging.getLogger(__name__)

__all__ = ["GraphBuildSettings", "graph_features_for_bars"]


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
    # Qlib's convention (and the Alpha158 frame's): tz-naive UTC datetimes
    feats.index = feats.index.set_levels(feats.index.levels[0].tz_convert(None), level=0)
    if timings is not None:
        timings.update(build.seconds, **w, **back.seconds, features=time.perf_counter() - t0,
                       n_snapshots=len(back.snapshots))
    log.info("graph features: build %s, %d snapshots read back, %d rows x %d columns", build.build_id,
             len(back.snapshots), *feats.shape)
    return feats


