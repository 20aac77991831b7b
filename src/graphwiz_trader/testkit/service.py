"""A real service state to exercise the API, the dashboard and the load benchmark: the strategy of
``create_qlib_strategy_v2`` on the replay engine over a SYNTHETIC market, its trade journal, and a
:class:`~graphwiz_trader.service.state.ServiceState` fed by real cycles (scores are the market's planted signal).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.data.synthetic import (
    SyntheticMarketSettings,
    generate_synthetic_market,
)
from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.service.state import ServiceState
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

REPLAY_SETTINGS = TradingSettings.model_validate({
    "strategy": {"use_graph_features": False, "cov_window_bars": 72, "cash_buffer": 0.03},
    "risk": {"max_position_weight": 0.3, "cash_buffer": 0.01, "max_drawdown": 0.5, "daily_loss_limit": 0.5},
    "execution": {"default_strategy": "MARKET", "small_order_adv_fraction": 1.0, "large_order_adv_fraction": 100.0},
})


@dataclass
class ReplayService:
    """A started strategy after ``cycles`` real cycles, with its state and journal (close the journal)."""

    market: Any
    strategy: Any
    state: ServiceState
    journal: TradeJournal
    results: list[dict[str, Any]]

    async def run_cycles(self, n: int) -> list[dict[str, Any]]:
        """Run ``n`` more cycles, each handed to the state (one event per cycle)."""
        out = []
        for _ in range(n):
            r = await self.strategy.run_cycle()
            self.state.on_cycle(r)
            out.append(r)
        self.results.extend(out)
        return out

    def close(self) -> None:
        self.journal.close()


def replay_service(folder: str | Path, *, n_assets: int = 6, days: int = 12, start_bar: int = 200,
                   cycles: int = 6, seed: int = 3, graph_store: Any = None,
                   graph_build: str | None = None, graph_spec: Any = None) -> ReplayService:
    """Start a replay strategy on a SYNTHETIC market and run ``cycles`` cycles through a ServiceState.

    Parameters
    ----------
    folder : path
        Where the trade journal (``journal.sqlite``) is written.
    n_assets, days, seed : int
        The synthetic market (hourly bars, ``SYN00/USDT`` ...).
    start_bar : int
        The replay's first bar (bars before it are history).
    cycles : int
        Cycles run before returning (0: started, none run).
    graph_store, graph_build : optional
        A graph store and build id the state exposes to the explorer.
    graph_spec : GraphBuildSettings, optional
        With it the strategy keeps its live graph in memory (correlations, communities, the market regime, the
        ``G_*`` features the dashboard shows); without it, no graph.
    """
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=n_assets, n_clusters=2, n_bars=24 * days,
                                                          seed=seed))
    journal = TradeJournal.open(Path(folder) / "journal.sqlite")
    first = next(iter(m.bars.values())).index[start_bar]
    eng = ReplayEngine(m.bars, start=first, costs=CostModel())
    settings = REPLAY_SETTINGS
    if graph_spec is not None:
        settings = settings.model_copy(update={"strategy": settings.strategy.model_copy(
            update={"use_graph_features": True})})
    strat = create_qlib_strategy_v2(eng, sorted(m.bars), settings=settings, scores=m.signal, graph_store=False,
                                    graph_spec=graph_spec, journal=journal, run_id="service-test")
    state = ServiceState(strat, clock=lambda: eng.now())
    if graph_store is not None:
        state.graph_store = graph_store
        state.graph_build = lambda: graph_build
    svc = ReplayService(m, strat, state, journal, [])

    async def go() -> None:
        await strat.start()
        await svc.run_cycles(cycles)

    asyncio.run(go())
    return svc


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread (``with`` stops it)."""

    def __init__(self, app: Any, access_log: bool = True) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        # log_config=None: uvicorn's records (the access log too) go to the root logger, where tests read them
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=access_log,
                                lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="uvicorn-test", daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def __enter__(self) -> ServedApp:
        import time

        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise GraphwizError(f"uvicorn did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
