"""The trade journal mirrored into the graph store, tagged with the run id.

```python
from graphwiz_trader.trading.graph_mirror import GraphMirror, mirror_run
stats = mirror_run(journal, store, run_id, build=build_id)      # whole run (idempotent: run it again any time)
mirror = GraphMirror(journal, store, build=build_id)            # during a run, after each cycle:
stats = mirror.mirror_cycle(run_id, cycle)                      # that cycle's signals + fills recorded since
```

Writes ``(:Trade {run, client_order_id, fill_id, ...})-[:OF]->(:Asset)`` per fill,
``(:Trade)-[:DURING]->(:Regime)`` (the regime record of the given graph build whose ``[from, to)`` holds the
fill time: the market's, or with ``regime_scope="asset"`` the traded asset's own) and
``(:Signal {run, cycle, as_of, score, weight})-[:FOR]->(:Asset)`` per (cycle, symbol). The journal stays the
record; the graph is a view for exploration (docs/graph.md, "Trades and signals"). DURING describes the regime
the build labels the market with at that time, which is not what the strategy knew when it decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from graphwiz_trader.graph.store import SIGNAL_COLUMNS, TRADE_COLUMNS, TradeWriteStats

__all__ = ["GraphMirror", "MirrorStats", "journal_signals", "journal_trades", "mirror_run", "mirror_run_async"]


@dataclass(frozen=True)
class MirrorStats:
    """Trades and signals written for ``run``; ``linked``/``unlinked``: trades with / without a regime record at
    or before their time in ``build``'s current regime ``generation``."""

    run: str
    trades: int
    signals: int
    linked: int
    unlinked: int
    build: str | None
    generation: str | None
    transactions: int
    seconds: float

    @classmethod
    def of(cls, t: TradeWriteStats, s: TradeWriteStats) -> "MirrorStats":
        return cls(run=t.run, trades=t.trades, signals=s.signals, linked=t.linked, unlinked=t.unlinked,
                   build=t.build, generation=t.generation, transactions=t.transactions + s.transactions,
                   seconds=t.seconds + s.seconds)


def journal_trades(journal: Any, run_id: str, from_cycle: int | None = None) -> pd.DataFrame:
    """The run's fills as the store's trade rows (:data:`~graphwiz_trader.graph.store.TRADE_COLUMNS`)."""
    return _trade_rows(journal.fills_frame(run_id), from_cycle)


def _trade_rows(fills: pd.DataFrame, from_cycle: int | None = None) -> pd.DataFrame:
    if fills.empty:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    if from_cycle is not None:
        fills = fills[fills["cycle"] >= int(from_cycle)]
    return fills.rename(columns={"ts_utc": "ts"})[TRADE_COLUMNS].reset_index(drop=True)


def journal_signals(journal: Any, run_id: str, from_cycle: int | None = None,
                    cycle: int | None = None) -> pd.DataFrame:
    """The run's signals as the store's signal rows (:data:`~graphwiz_trader.graph.store.SIGNAL_COLUMNS`)."""
    sig = journal.signals_frame(run_id, cycle, from_cycle)
    if sig.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    return sig.rename(columns={"target_weight": "weight"})[SIGNAL_COLUMNS].reset_index(drop=True)


def mirror_run(journal: Any, store: Any, run_id: str, *, build: str | None = None, regime_scope: str = "market",
               from_cycle: int | None = None, batch_size: int | None = None) -> MirrorStats:
    """Mirror a run's trades and signals (all, or those of cycles >= ``from_cycle``) into a ``GraphStore``;
    with ``build``, link each trade to that build's regime at its time. Idempotent."""
    journal.run_state(run_id)  # an unknown run is an error naming the runs there, not an empty mirror
    t = store.write_trades(journal_trades(journal, run_id, from_cycle), run=run_id, build=build,
                           regime_scope=regime_scope, batch_size=batch_size)
    s = store.write_signals(journal_signals(journal, run_id, from_cycle), run=run_id, batch_size=batch_size)
    return MirrorStats.of(t, s)


async def mirror_run_async(journal: Any, store: Any, run_id: str, *, build: str | None = None,
                           regime_scope: str = "market", from_cycle: int | None = None,
                           batch_size: int | None = None) -> MirrorStats:
    """:func:`mirror_run` through an ``AsyncGraphStore`` (the journal reads are short and stay synchronous)."""
    journal.run_state(run_id)
    t = await store.write_trades(journal_trades(journal, run_id, from_cycle), run=run_id, build=build,
                                 regime_scope=regime_scope, batch_size=batch_size)
    s = await store.write_signals(journal_signals(journal, run_id, from_cycle), run=run_id, batch_size=batch_size)
    return MirrorStats.of(t, s)


class GraphMirror:
    """Mirrors a running strategy into the graph store cycle by cycle (sync ``GraphStore``).

    :meth:`mirror_cycle` writes the cycle's signals and the fills the journal recorded since the previous call
    (by the journal's recording clock, re-reading an ``overlap`` before it: MERGE makes the repeats no-ops, and
    a clock stepping back by less than the overlap loses nothing). ``build`` is a build id, or a callable
    returning the current one (a live graph writes a build per snapshot), or None (no DURING links).
    :func:`mirror_run` at the end of a run is the exact, complete mirror.
    """

    def __init__(self, journal: Any, store: Any, *, build: str | Callable[[], str | None] | None = None,
                 regime_scope: str = "market", batch_size: int | None = None,
                 overlap: pd.Timedelta = pd.Timedelta(minutes=10)) -> None:
        self.journal, self.store = journal, store
        self.build, self.regime_scope, self.batch_size, self.overlap = build, regime_scope, batch_size, overlap
        self._mark: dict[str, pd.Timestamp] = {}

    def _build(self) -> str | None:
        return self.build() if callable(self.build) else self.build

    def mirror_cycle(self, run_id: str, cycle: int) -> MirrorStats:
        since = self._mark.get(run_id)
        fills = (self.journal.fills_frame(run_id) if since is None
                 else self.journal.fills_frame(run_id, since - self.overlap))
        t = self.store.write_trades(_trade_rows(fills), run=run_id, build=self._build(),
                                    regime_scope=self.regime_scope, batch_size=self.batch_size)
        s = self.store.write_signals(journal_signals(self.journal, run_id, cycle=cycle), run=run_id,
                                     batch_size=self.batch_size)
        if len(fills):
            newest = fills["recorded_utc"].max()
            self._mark[run_id] = newest if since is None else max(newest, since)
        return MirrorStats.of(t, s)

    def mirror_run(self, run_id: str) -> MirrorStats:
        return mirror_run(self.journal, self.store, run_id, build=self._build(), regime_scope=self.regime_scope,
                          batch_size=self.batch_size)
