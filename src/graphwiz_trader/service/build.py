"""The service's strategy session: the journal, the engine (replay, paper or live), the v2 strategy from
``strategies.factory``, the graph store and the trade mirror, and their orderly release.

The journal (``service.journal``, default ``service/journal.sqlite`` under the runs folder; in replay mode the run
folder's ``journal.sqlite``) holds the run ``service.run_id``: a restarted service resumes it (the strategy
continues at the last journaled cycle + 1 and reconciles its open orders). One service per journal file: a second
one on the same SQLite file is refused (an exclusive lock file beside it).
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.core.runs import runs_root
from graphwiz_trader.errors import ConfigError, GraphwizError

log = logging.getLogger(__name__)

__all__ = ["ServiceBusyError", "ServiceSession", "open_session", "replay_engine"]


class ServiceBusyError(GraphwizError):
    """Another service already runs on this journal."""


@dataclass
class ServiceSession:
    """What one service run holds open (see the module docstring)."""

    strategy: Any
    journal: Any
    store: Any = None
    label: str = ""
    replay: bool = False
    lock_fd: int | None = None
    closed: list[str] = field(default_factory=list)

    def release(self) -> None:
        """Close the graph store, stop its embedded server (when this process started it), close the journal,
        release the lock (each step once, each failure logged; never raises)."""
        steps: list[tuple[str, Any]] = []
        if self.store is not None:
            steps.append(("graph store", self.store.close))
            server = getattr(self.store, "embedded_server", None)
            if server is not None:
                steps.append(("embedded graph server", server.stop))
        steps.append(("journal", self.journal.close))
        for name, fn in steps:
            if name in self.closed:
                continue
            try:
                fn()
                self.closed.append(name)
            except Exception as exc:  # noqa: BLE001 - a failing close must not hide the others
                log.error("closing the %s failed: %s", name, exc)
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def journal_location(settings: TradingSettings, replay_folder: Path | None, override: str | None) -> str:
    """The journal path or URL (see the module docstring)."""
    if override:
        return override
    if replay_folder is not None:
        return str(replay_folder / "journal.sqlite")
    if settings.service.journal:
        return settings.service.journal
    folder = runs_root() / "service"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "journal.sqlite")


def _lock(journal: str) -> int | None:
    """An exclusive lock beside a SQLite journal file (None for a database URL)."""
    if "://" in journal:
        return None
    path = Path(journal).with_name(Path(journal).name + ".service.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServiceBusyError(f"another graphwiz service runs on the journal {journal} (lock {path} held); "
                               "stop it first, or give this one its own service.journal") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def replay_engine(settings: TradingSettings, replay_dir: str | Path, fmt: str = "freqtrade",
                  symbols: list[str] | None = None) -> tuple[Any, str]:
    """A :class:`~graphwiz_trader.trading.engines.replay.ReplayEngine` over the bars in ``replay_dir`` starting right
    after the strategy's warm-up, and a label naming the data."""
    from graphwiz_trader.data.sources import load_universe
    from graphwiz_trader.graph.pipeline import GraphBuildSettings
    from graphwiz_trader.strategies.core import warmup_bars_for
    from graphwiz_trader.strategies.session import replay_engine

    st = settings.strategy
    spec = GraphBuildSettings.from_settings(settings.graph) if st.use_graph_features else None
    warmup = warmup_bars_for(st, spec)
    loaded = load_universe(Path(replay_dir), fmt, st.timeframe, symbols or list(st.symbols), None, None)
    bars = loaded.bars
    idx = pd.DatetimeIndex(sorted(set().union(*[df.index for df in bars.values()])))
    if len(idx) <= warmup + 1:
        raise ConfigError(f"the replay folder {replay_dir} holds {len(idx)} bars of {st.timeframe}; the strategy "
                          f"needs {warmup} warm-up bars and at least one more to trade")
    engine = replay_engine(settings, bars, idx[warmup])
    return engine, f"replay of {len(bars)} pairs, {st.timeframe} bars from {replay_dir}"


def _exchange_engine(settings: TradingSettings, folder: Path, journal: Any, run_id: str) -> tuple[Any, str]:
    from graphwiz_trader.strategies.commands import check_live_allowed
    from graphwiz_trader.strategies.session import cost_model

    sv, st = settings.service, settings.strategy
    names = list(settings.exchanges)
    exchange_id = sv.exchange or (names[0] if names else None)
    if exchange_id is None or exchange_id not in settings.exchanges:
        raise ConfigError(f"service.exchange {exchange_id!r} is not configured under exchanges: (configured: "
                          f"{', '.join(names) or 'none'})")
    ex = settings.exchanges[exchange_id]
    symbols = list(st.symbols)
    if sv.engine == "paper":
        from graphwiz_trader.trading.engines.paper import PaperTradingEngine

        return PaperTradingEngine(symbols, state_path=folder / f"paper_state-{run_id}.json", exchange_id=exchange_id,
                                  settings=ex, timeframe=st.timeframe, initial_cash_quote=st.initial_capital_quote,
                                  costs=cost_model(settings.execution),
                                  max_participation=settings.execution.max_participation,
                                  ppo_model=str(settings.execution.ppo_model) if settings.execution.ppo_model
                                  else None), f"paper trading on live {exchange_id} bars"
    from graphwiz_trader.trading.engines.live import LiveTradingEngine

    sandbox = bool(sv.sandbox or ex.sandbox)
    check_live_allowed(ex, exchange_id, sandbox, sv.confirm_real_money)
    engine = LiveTradingEngine(symbols, settings=ex.model_copy(update={"sandbox": sandbox}), exchange_id=exchange_id,
                               timeframe=st.timeframe, journal=journal, run_id=run_id,
                               state_path=folder / f"live_state-{run_id}.json")
    return engine, f"LIVE trading on {exchange_id} ({'sandbox' if sandbox else 'REAL MONEY'})"


def open_session(settings: TradingSettings, *, run_folder: Path, replay_dir: str | Path | None = None,
                 replay_format: str = "freqtrade", engine: Any = None, journal: str | None = None,
                 run_id: str | None = None, graph_store: bool | None = None) -> ServiceSession:
    """Open the journal (locked), build the engine and the v2 strategy (``strategies.factory``), connect the graph
    store and the trade mirror. ``engine``: use this engine instead (tests, benchmarks)."""
    from graphwiz_trader.strategies.factory import create_qlib_strategy_v2
    from graphwiz_trader.trading.journal import TradeJournal

    replay = replay_dir is not None or engine is not None
    where = journal_location(settings, run_folder if replay else None, journal)
    fd = _lock(where)
    j = None
    try:
        j = TradeJournal.open(where)
        rid = run_id or (settings.service.run_id if not replay else f"replay-{run_folder.name}")
        if engine is not None:
            eng, label = engine, f"engine {getattr(engine, 'name', type(engine).__name__)}"
        elif replay_dir is not None:
            eng, label = replay_engine(settings, replay_dir, replay_format)
        else:
            state_dir = Path(where).parent if "://" not in where else run_folder
            eng, label = _exchange_engine(settings, state_dir, j, rid)
        use_store = settings.service.graph_store if graph_store is None else graph_store
        store: Any = False
        if use_store and settings.strategy.use_graph_features:
            from graphwiz_trader.graph.store import GraphStore

            store = GraphStore.connect(settings.graph)
        symbols = sorted(eng.panel.symbols) if replay and hasattr(eng, "panel") else list(settings.strategy.symbols)
        try:
            strategy = create_qlib_strategy_v2(eng, symbols, settings=settings, journal=j, run_id=rid,
                                               graph_store=store, model_dir=run_folder / "models")
        except BaseException:
            if store is not False:
                store.close()
            raise
        if store is not False and strategy.graph is not None:
            from graphwiz_trader.trading.graph_mirror import GraphMirror

            g = strategy.graph
            strategy.mirror = GraphMirror(j, store, build=lambda: g.build_ids[-1] if g.build_ids else None)
        return ServiceSession(strategy, j, store if store is not False else None, label, replay, fd)
    except BaseException:
        if j is not None:
            j.close()
        if fd is not None:
            os.close(fd)
        raise
