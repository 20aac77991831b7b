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
    # shortfall recomputed from the bars and the journal: arrival = the close at the cycle that decided the order
    arrival = {o["client_order_id"]: (float(m.bars[o["symbol"]]["close"].loc[r["as_of"]]),
                                      1 if o["side"] == "buy" else -1) for r in results for o in r["orders"]}
    fills = j.fills_frame(strat.run_id)
    n = fills["qty"] * fills["price"]
    px0 = fills["client_order_id"].map(lambda c: arrival[c][0])
    sign = fills["client_order_id"].map(lambda c: arrival[c][1])
    bps = sign * (fills["price"] / px0 - 1) * 1e4 + (fills["spread_slippage_quote"] + fills["impact_quote"]) / n * 1e4
    eq = state.execution_quality()
    assert eq["fills"] == len(fills) > 0
    assert eq["mean_bps"] == pytest.approx(bps.mean()) and eq["p95_bps"] == pytest.approx(np.quantile(bps, 0.95))
    assert eq["fee_bps"] == pytest.approx((fills["fee_quote"] / n * 1e4).mean())
    assert eq["mean_bps"] >= 3.0          # at least the cost model's half spread (1 bps) + slippage (2 bps)


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


def test_with_the_live_graph_the_snapshot_has_the_regime_and_the_top_graph_features_rank_by_z(tmp_path):
    from graphwiz_trader.core.symbols import to_qlib_instrument
    from graphwiz_trader.graph.builders.regimes import RegimeSettings
    from graphwiz_trader.graph.pipeline import GraphBuildSettings

    spec = GraphBuildSettings(window=120, stride=24, top_k=4, regimes=RegimeSettings(
        min_train=300, refit_every=100, burn_in=100, asset_vol_window=24, asset_min_history=100))
    svc = replay_service(tmp_path, days=30, start_bar=500, cycles=8, graph_spec=spec)
    try:
        strat, state = svc.strategy, svc.state
        snap = state.snapshot()
        label, prob = strat.graph.regime_at()
        assert snap["regime"] == label and label in strat.graph.regime_names
        assert snap["regime_prob"] == pytest.approx(prob) and 0.5 <= prob <= 1.0
        top = state.top_graph_features(6)
        # independently: every G_* value at the newest bar, z against its cross-section, largest |z| first
        feats = strat.graph.features(strat.buffer.field("close", 26))
        z = (feats - feats.mean()) / feats.std(ddof=0)
        by_inst = {to_qlib_instrument(s): s for s in strat.symbols}
        expect = sorted(((abs(z.iloc[i, j]), feats.columns[j], by_inst[feats.index[i][1]], feats.iloc[i, j])
                         for i in range(len(feats)) for j in range(feats.shape[1]) if np.isfinite(z.iloc[i, j])),
                        key=lambda r: (-r[0], r[1], r[2]))[:6]
        assert [(r["feature"], r["symbol"]) for r in top] == [(f, s) for _, f, s, _ in expect]
        assert [r["value"] for r in top] == pytest.approx([v for *_, v in expect])
        assert [abs(r["z"]) for r in top] == pytest.approx([a for a, *_ in expect])
        assert all(r["feature"].startswith("G_") and r["symbol"] in strat.symbols for r in top)
    finally:
        svc.close()
