"""Graph store: snapshots and regimes in Neo4j 5 or the embedded ArcadeDB Bolt server, sync and async.

One code path for both servers and both drivers: each operation is a generator that yields
:class:`Step` objects (one Cypher statement = one transaction) and receives their results; the sync
:class:`GraphStore` and the async :class:`AsyncGraphStore` only differ in how they execute a step.

Graph model (docs/graph.md has the diagram and exploration queries):

- ``(:Asset {symbol, base, quote})-[:LISTED_ON]->(:Exchange {id})``
- ``(:Asset)-[:CORRELATED_WITH {rho, method, window, as_of}]->(:Asset)``, stored ``src < dst``
- ``(:Asset)-[:LEADS {lag, rho, method, window, as_of}]->(:Asset)``: src's return ``lag`` bars earlier
  correlates with dst's return
- ``(:Asset)-[:MEMBER_OF]->(:Community {key, id, as_of, method, window, size})``
- ``(:Snapshot {key, as_of, method, window, assets, n_edges, n_leads, complete})``: one per snapshot;
  keeps the asset list (assets without edges included) and marks the snapshot complete once all its parts
  are written, so a reader never sees half a snapshot
- ``(:Market {id: 'market'})`` and ``(:Asset)`` ``-[:IN_REGIME {from, to, prob}]->(:Regime {key, scope, name})``
- ``(:Regime)-[:TRANSITIONS_TO {count, prob, mean_duration}]->(:Regime)``
- ``(:Signal {id})``, ``(:Trade {id})``: uniqueness constraints only, for the trading layer

Times are native Cypher ``datetime`` values in UTC (nanoseconds kept). A snapshot is identified by
``(method, window, as_of)``; writing it again replaces it (idempotent).

Point-in-time: ``read_snapshots(end=t)`` returns snapshots with ``as_of <= t`` only, and
``read_regimes(end=t)`` returns regime records with ``from <= t`` only (never a later label).
``TRANSITIONS_TO`` summarises a scope's *whole* stored history, so it is for exploration, not features.
"""


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
from graphwiz_trader.graph.store.steps import Op, Progress, Step, StepResult, WriteStats
from graphwiz_trader.graph.store.sync import GraphStore

__all__ = [
    "MARKET_SCOPE", "TRANSITION_COLUMNS", "AsyncGraphStore", "GraphStore", "Op", "Progress", "Step", "StepResult",
    "WriteStats", "canonical_snapshot", "regime_key", "regime_transitions", "settings_from_env", "snapshot_key",
    "validate_regime_frame",
]
