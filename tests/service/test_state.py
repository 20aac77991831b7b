"""The service state read from a real strategy on the replay engine and its trade journal: snapshot, positions,
equity curve, signals, controls through the journal flags, and one event per cycle to subscribers."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.data.synthetic import (
    SyntheticMarketSettings,
    generate_synthetic_market,
)
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.service.state import ServiceState, ServiceStateError
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

SETTINGS = TradingSettings.model_validate({
    "strategy": {"use_graph_features": False, "cov_window_bars": 72, "cash_buffer": 0.03},
    "risk": {"max_position_weight": 0.3, "cash_buffer": 0.01, "max_drawdown": 0.5, "daily_loss_limit": 0.5},
    "execution": {"default_strategy": "MARKET", "small_order_adv_fraction": 1.0, "large_order_adv_fraction": 100.0},
})


@pytest.fixture
def running(tmp_path):
    m = generate_synthetic_market(SyntheticMarketSettings(n_assets=5, n_clusters=2, n_bars=24 * 12, seed=3))
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    eng = ReplayEngine(m.bars, start=m.bars["SYN00/USDT"].index[200], costs=CostModel())
    strat = create_qlib_strategy_v2(eng, sorted(m.bars), settings=SETTINGS, scores=m.signal, graph_store=False,
                                    journal=j, run_id="svc")
    state = ServiceState(strat, clock=lambda: eng.now())
    yield m, strat, state, j
    j.close()


def test_each_cycle_updates_the_snapshot_positions_signals_and_publishes_one_event(running):
    m, strat, state, j = running

    async def go():
        await strat.start()
        q = state.subscribe()
        results = []
        for _ in range(6):
            r = await strat.run_cycle()
            state.on_cycle(r)
            results.append(r)
        return q, results

    q, results = asyncio.run(go())
    last = results[-1]
    assert q.qsize() == 6
    snap = state.snapshot()
    assert snap["cycle"] == last["cycle"] == 5 and snap["equity"] == pytest.approx(last["equity"])
    assert snap["as_of"] == pd.Timestamp(last["as_of"]).isoformat() and snap["status"] == "ok"
    assert not snap["paused"] and not snap["killed"]
    # gross exposure recomputed from the positions and the newest closes
    close = {s: float(df["close"].loc[last["as_of"]]) for s, df in m.bars.items()}
    gross = sum(abs(q_) * close[s] for s, q_ in last["positions"].items())
    assert snap["gross_exposure"] == pytest.approx(gross / last["equity"])
    pos = state.positions()
    assert {p["symbol"] for p in pos} == {s for s, q_ in last["positions"].items() if q_}
    assert sum(p["weight"] for p in pos) == pytest.approx(gross / last["equity"])
    curve = state.equity_curve()
    assert [c["equity"] for c in curve] == pytest.approx([r["equity"] for r in results])
    sig = asyncio.run(state.latest_signals(["SYN01/USDT", "SYN03/USDT"]))
    expected = m.signal.loc[last["as_of"], ["SYN01/USDT", "SYN03/USDT"]]
    assert sig["scores"] == pytest.approx(expected.to_dict())
    assert sig["weights"]["SYN01/USDT"] == pytest.approx(last["target_weights"]["SYN01/USDT"])
    with pytest.raises(UnknownSymbolError, match="NOPE/USDT"):
        asyncio.run(state.latest_signals(["NOPE/USDT"]))
    eq = state.execution_quality()
    assert eq["fills"] == len(j.fills_frame("svc")) > 0 and np.isfinite(eq["mean_bps"])


def test_pause_and_kill_go_through_the_runs_journal_flags(running):
    _, strat, state, j = running

    async def go():
        await strat.start()
        await strat.run_cycle()
        p = await state.pause("maintenance")
        r = await state.resume("done")
        k = await state.kill(False, "stop now")
        return p, r, k

    p, r, k = asyncio.run(go())
    assert p["paused"] and not r["paused"] and k["killed"]
    flags = j.run_state("svc")
    assert flags["killed"] and flags["reason"] == "stop now"
    with pytest.raises(ServiceStateError, match="non-empty reason"):
        asyncio.run(state.pause("  "))
