"""Graph store: snapshots and regimes in Neo4j 5 or the embedded ArcadeDB Bolt server, sync and async.

One code path for both servers and both drivers: each operation is a generator that yields
:class:`Step` objects (one Cypher statement = one transaction) and receives their results; the sync
:class:`GraphStore` and the async :class:`AsyncGraphStore` only differ in how they execute a step.

Modules, by job: ``frames`` (validation and canonical form of snapshots and regime frames, transition
statistics), ``steps`` (the Step plumbing), ``generations`` (builds, generations, crash-safe switching),
``ops_snapshots`` / ``ops_regimes`` / ``ops_trades`` / ``ops_base`` (the operations), ``connection`` (where to connect),
``sync`` and ``aio`` (the two stores).

Graph model (docs/graph.md has the diagram and exploration queries):

- ``(:Asset {symbol, base, quote})-[:LISTED_ON]->(:Exchange {id})``, ``(:Market {id: 'market'})``: shared
- ``(:Build {id, info, created, updated, snapshots, regimes})``: one per build; ``snapshots`` / ``regimes``
  name its current complete generations; ``(:Generation {id, build, kind, state, n, names, ...})``
- ``(:Snapshot {key, build, gen, as_of, method, window, assets, n_edges, n_leads})``: one per snapshot
- ``(:Asset)-[:CORRELATED_WITH {rho, method, window, as_of, gen}]->(:Asset)``, stored ``src < dst``
- ``(:Asset)-[:LEADS {lag, rho, method, window, as_of, gen}]->(:Asset)``: src's return ``lag`` bars earlier
  correlates with dst's return
- ``(:Asset)-[:MEMBER_OF]->(:Community {key, id, build, gen, as_of, method, window, size})``
- ``(:Market|:Asset)-[:IN_REGIME {from, to, prob}]->(:Regime {key, build, gen, scope, name})``
- ``(:Regime)-[:TRANSITIONS_TO {count, prob, mean_duration}]->(:Regime)`` (within one generation)
- ``(:Trade {id, run, fill_id, ...})-[:OF]->(:Asset)``, ``(:Trade)-[:DURING {build, prob, from}]->(:Regime)``,
  ``(:Signal {id, run, cycle, as_of, score, weight})-[:FOR]->(:Asset)``: a trading run mirrored (``ops_trades``)

``gen`` is ``<build id>:<token>``. Every write names a build and every read asks for one: results never mix
runs, universes or settings. Times are native Cypher ``datetime`` values in UTC (nanoseconds kept).

Point-in-time: ``read_snapshots(build, end=t)`` returns snapshots with ``as_of <= t`` only, and
``read_regimes(build, end=t)`` regime records with ``from <= t`` only (never a later label).
``TRANSITIONS_TO`` summarises a build's *whole* regime history, so it is for exploration, not features.
"""

from __future__ import annotations

from graphwiz_trader.graph.store.aio import AsyncGraphStore
from graphwiz_trader.graph.store.connection import settings_from_env
from graphwiz_trader.graph.store.frames import (
    MARKET_SCOPE,
    TRANSITION_COLUMNS,
    canonical_snapshot,
    regime_key,
    regime_transitions,
    snapshot_key,
    validate_regime_frame,
)
from graphwiz_trader.graph.store.generations import UnknownBuildError, check_build_id
from graphwiz_trader.graph.store.ops_trades import SIGNAL_COLUMNS, TRADE_COLUMNS, TradeWriteStats
from graphwiz_trader.graph.store.steps import Op, Progress, Step, StepResult, WriteStats
from graphwiz_trader.graph.store.sync import GraphStore

__all__ = [
    "MARKET_SCOPE", "SIGNAL_COLUMNS", "TRADE_COLUMNS", "TRANSITION_COLUMNS", "AsyncGraphStore", "GraphStore", "Op",
    "Progress", "Step", "StepResult", "TradeWriteStats", "UnknownBuildError", "WriteStats", "canonical_snapshot",
    "check_build_id", "regime_key", "regime_transitions", "settings_from_env", "snapshot_key", "validate_regime_frame",
]
