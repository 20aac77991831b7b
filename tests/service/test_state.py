"""The service state read from a real strategy on the replay engine and its trade journal: snapshot, positions,
equity curve, signals, controls through the journal flags, and one event per cycle to subscribers."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.service.state import ServiceStateError
from graphwiz_trader.testkit.service import replay_service


@pytest.fixture
def running(tmp_path):
    """A started replay strategy (no cycle run yet), its state and journal (testkit.service.replay_service)."""
    svc = replay_service(tmp_path, n_assets=5, cycles=0)
    yield svc.market, svc.strategy, svc.state, svc.journal
    svc.close()


def test_each_cycle_updates_the_snapshot_positions_signals_and_publishes_one_event(running):
    m, strat, state, j = running

    async def go():
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
    assert eq["fills"] == len(j.fills_frame(strat.run_id)) > 0 and np.isfinite(eq["mean_bps"])


def test_pause_and_kill_go_through_the_runs_journal_flags(running):
    _, strat, state, j = running

    async def go():
        await strat.run_cycle()
        p = await state.pause("maintenance")
        r = await state.resume("done")
        k = await state.kill(False, "stop now")
        return p, r, k

    p, r, k = asyncio.run(go())
    assert p["paused"] and not r["paused"] and k["killed"]
    flags = j.run_state(strat.run_id)
    assert flags["killed"] and flags["reason"] == "stop now"
    with pytest.raises(ServiceStateError, match="non-empty reason"):
        asyncio.run(state.pause("  "))
