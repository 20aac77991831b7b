"""One strategy cycle on the replay engine with a real trade journal: what is recorded, and what happens on a crash,
a kill, stale data, an unreachable exchange and an out-of-range limit."""

import asyncio
import json

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.config.settings import TradingSettings
from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market
from graphwiz_trader.errors import ConfigError, ExchangeUnavailableError
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.risk import request_kill

BASE = {
    "strategy": {"use_graph_features": False, "cov_window_bars": 72, "cash_buffer": 0.03, "cycle_retries": 3,
                 "cycle_retry_backoff_s": 0.5, "stale_after_bars": 2},
    "risk": {"max_position_weight": 0.3, "cash_buffer": 0.01, "max_drawdown": 0.5, "daily_loss_limit": 0.5},
    "execution": {"default_strategy": "MARKET", "small_order_adv_fraction": 1.0, "large_order_adv_fraction": 100.0},
}


def settings(**sections):
    raw = {k: dict(v) for k, v in BASE.items()}
    for k, v in sections.items():
        raw[k].update(v)
    return TradingSettings.model_validate(raw)


def market(seed=7, n_bars=24 * 20):
    return generate_synthetic_market(SyntheticMarketSettings(n_assets=6, n_clusters=2, n_bars=n_bars, seed=seed))


async def run_all(strategy, limit=None):
    await strategy.start()
    out = []
    while limit is None or len(out) < limit:
        r = await strategy.run_cycle()
        if r["status"] == "done":
            break
        out.append(r)
    return out


def make(m, tmp_path, s=None, engine=None, run_id="r1", start_bar=200, **kw):
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    eng = engine or ReplayEngine(m.bars, start=m.bars["SYN00/USDT"].index[start_bar], costs=CostModel())
    strat = create_qlib_strategy_v2(eng, sorted(m.bars), settings=s or settings(), scores=m.signal, graph_store=False,
                                    journal=j, run_id=run_id, **kw)
    return strat, j


def test_a_cycle_returns_the_documented_fields_and_the_journal_holds_its_signals_orders_fills_and_equity(tmp_path):
    m = market()
    strat, j = make(m, tmp_path)
    res = asyncio.run(run_all(strat, limit=24))
    first = res[0]
    assert {"cycle", "as_of", "signals_generated", "trades_executed", "orders", "rejected", "target_weights",
            "equity", "risk_state", "timings"} <= set(first)
    assert first["cycle"] == 0 and first["as_of"] == m.bars["SYN00/USDT"].index[200]
    assert first["signals_generated"] == 6 and len(first["orders"]) > 0 and first["trades_executed"] == 0
    assert res[1]["trades_executed"] == len(first["orders"])            # filled at the next bar's open
    orders, fills = j.orders_frame("r1"), j.fills_frame("r1")
    assert len(orders) == sum(len(r["orders"]) for r in res)
    assert len(fills) == sum(r["trades_executed"] for r in res) and (fills["cycle"] < 23).all()
    sig = j.signals_frame("r1")
    assert len(sig) == 24 * 6 and np.allclose(sig[sig["cycle"] == 0].set_index("symbol")["target_weight"].sort_index(),
                                              pd.Series(first["target_weights"]).sort_index())
    eq = j.equity_frame("r1")
    assert np.allclose(eq["equity_quote"].to_numpy(), [r["equity"] for r in res])
    assert (j.cycles_frame("r1")["status"] == "ok").all()
    assert j.positions_from_fills("r1") == pytest.approx(res[-1]["positions"])


def test_in_a_crash_the_drawdown_breaker_trips_and_blocks_every_new_buy(tmp_path):
    m = market(seed=7)                                   # the planted crash regime starts at bar 322
    strat, j = make(m, tmp_path, settings(risk={"max_drawdown": 0.08}))   # costs alone cost ~4.5% before it
    res = asyncio.run(run_all(strat))
    ev = j.risk_events_frame("r1")
    trips = ev[(ev["kind"] == "breaker_tripped") & ev["detail"].str.startswith("drawdown")]
    assert len(trips) == 1
    t_trip = trips["ts_utc"].iloc[0]
    crash = m.regimes.index[m.regimes.eq("crash").to_numpy()]
    assert crash[0] < t_trip <= crash[-1]                         # it tripped in the crash
    after = [r for r in res if r["as_of"] + pd.Timedelta("1h") > t_trip]
    assert after and all(r["status"] == "skipped" for r in after)
    assert not any(o["side"] == "buy" for r in after for o in r["orders"])
    blocked = [x["reason"] for r in after for x in r["rejected"]]
    assert blocked and all("trading halted" in why and "drawdown" in why for why in blocked)


def test_the_kill_switch_from_another_process_cancels_the_open_orders(tmp_path):
    m = market()
    s = settings(execution={"default_strategy": "TWAP", "small_strategy": "TWAP", "horizon_bars": 12})
    strat, j = make(m, tmp_path, s)

    async def go():
        await strat.start()
        first = await strat.run_cycle()
        open_before = await strat.engine.open_orders()
        request_kill(j, "r1", "operator: stop now", ts=first["as_of"] + pd.Timedelta("1h"))
        second = await strat.run_cycle()
        return first, open_before, second, await strat.engine.open_orders()

    first, open_before, second, open_after = asyncio.run(go())
    assert len(open_before) == len(first["orders"]) > 0 and open_after == []
    assert second["status"] == "skipped" and second["orders"] == []
    states = j.orders_frame("r1").set_index("client_order_id")["state"]
    assert set(states[[o["client_order_id"] for o in first["orders"]]]) == {"canceled"}


def test_stale_data_means_no_trading_and_a_recorded_event(tmp_path):
    m = market()
    bars = {s: df.copy() for s, df in m.bars.items()}
    bars["SYN03/USDT"] = bars["SYN03/USDT"].drop(bars["SYN03/USDT"].index[205:210])   # its feed stops for 5 bars
    eng = ReplayEngine(bars, start=m.bars["SYN00/USDT"].index[200], costs=CostModel())
    strat, j = make(m, tmp_path, engine=eng)
    res = asyncio.run(run_all(strat, limit=12))
    stale = [r for r in res if r["status"] == "skipped"]
    assert [r["as_of"] for r in stale] == list(m.bars["SYN00/USDT"].index[207:210])  # 3+ bars old: over the limit of 2
    assert all(r["orders"] == [] for r in stale) and all("stale data" in r["reasons"][0] for r in stale)
    ev = j.risk_events_frame("r1")
    assert (ev["kind"] == "stale_data").sum() == 3 and ev[ev["kind"] == "stale_data"]["detail"].str.contains(
        "SYN03/USDT").all()


class FlakyReplay(ReplayEngine):
    """A replay venue that cannot be reached for its first ``failures`` submits at one bar."""

    def __init__(self, *a, fail_at=None, failures=2, **kw):
        super().__init__(*a, **kw)
        self.fail_at, self.failures, self.submits = fail_at, failures, 0

    async def submit(self, orders):
        self.submits += 1
        if self.now() - self.bar == self.fail_at and self.failures > 0:
            self.failures -= 1
            raise ExchangeUnavailableError("binance: network unreachable (injected)")
        return await super().submit(orders)


def test_an_unreachable_exchange_fails_the_cycle_retries_it_with_backoff_and_writes_nothing_twice(tmp_path):
    m = market()
    t_fail = m.bars["SYN00/USDT"].index[203]
    eng = FlakyReplay(m.bars, start=m.bars["SYN00/USDT"].index[200], costs=CostModel(), fail_at=t_fail, failures=2)
    waits = []

    async def sleep(s):
        waits.append(s)

    strat, j = make(m, tmp_path, engine=eng, sleep=sleep)
    res = asyncio.run(run_all(strat, limit=6))
    assert waits == [0.5, 1.0]                                     # exponential backoff
    cyc = j.cycles_frame("r1").set_index("cycle")
    assert cyc.loc[3, "status"] == "ok" and cyc.loc[3, "attempts"] == 3 and (cyc["status"] == "ok").all()
    orders = j.orders_frame("r1")
    assert orders["client_order_id"].is_unique and len(orders[orders["cycle"] == 3]) == len(res[3]["orders"]) > 0
    assert set(orders[orders["cycle"] == 3]["state"]) <= {"open", "filled"}


def test_when_every_retry_fails_the_cycle_stays_failed_with_the_error(tmp_path):
    m = market()
    eng = FlakyReplay(m.bars, start=m.bars["SYN00/USDT"].index[200], costs=CostModel(),
                      fail_at=m.bars["SYN00/USDT"].index[201], failures=10)

    async def sleep(s):
        return None

    strat, j = make(m, tmp_path, engine=eng, sleep=sleep)
    with pytest.raises(ExchangeUnavailableError, match="network unreachable"):
        asyncio.run(run_all(strat, limit=3))
    cyc = j.cycles_frame("r1").set_index("cycle")
    assert cyc.loc[1, "status"] == "failed" and cyc.loc[1, "attempts"] == 4
    assert "network unreachable" in json.loads(cyc.loc[1, "summary"])["error"]
    assert j.fills_frame("r1")["cycle"].max() == 0 if len(j.fills_frame("r1")) else True

    async def next_two():
        return [await strat.run_cycle() for _ in range(2)]

    after = asyncio.run(next_two())  # the failed bar is used up: the next bars are the next cycles, not stuck
    assert [r["cycle"] for r in after] == [2, 3] and {r["status"] for r in after} <= {"ok", "skipped"}
    assert j.cycles_frame("r1").set_index("cycle").loc[[2, 3], "status"].isin(["ok", "skipped"]).all()


@pytest.mark.parametrize("override, message", [
    ({"max_position_weight": 5}, r"'risk\.max_position_weight': Input should be less than or equal to 1 \(allowed range \(0, 1\]\)"),
    ({"max_drawdown": 0.95}, r"'risk\.max_drawdown': .*\(allowed range \(0, 0\.9\]\)"),
    ({"signal_threshold": 0.7}, r"'strategy\.signal_threshold': .*\(allowed range \[0, 0\.5\]\)"),
    ({"large_order_adv_fraction": 0}, r"'execution\.large_order_adv_fraction': .*\(allowed range \(0, 100\]\)"),
    ({"max_positoin_weight": 0.2}, r"unknown strategy config key 'max_positoin_weight'"),
])
def test_a_limit_outside_its_allowed_range_is_a_clear_config_error(override, message):
    m = market(n_bars=300)
    eng = ReplayEngine(m.bars, start=m.bars["SYN00/USDT"].index[200])
    with pytest.raises(ConfigError, match=message):
        create_qlib_strategy_v2(eng, sorted(m.bars), config=override, scores=m.signal, graph_store=False)


def test_kill_with_flatten_cancels_open_orders_then_closes_every_position_and_trades_no_more(tmp_path):
    from graphwiz_trader.trading.commands import FLATTEN_PREFIX

    m = market()
    strat, j = make(m, tmp_path)

    async def go():
        await strat.start()
        for _ in range(5):
            last = await strat.run_cycle()
        held = {s: q for s, q in last["positions"].items() if q}
        request_kill(j, "r1", FLATTEN_PREFIX + "operator", ts=last["as_of"] + pd.Timedelta("1h"))
        after = [await strat.run_cycle() for _ in range(3)]
        return held, after

    before, after = asyncio.run(go())
    held = {s: q for s, q in after[0]["positions"].items() if q}   # after the last rebalance's fills came in
    assert before and held
    flatten = after[0]["orders"]
    assert {o["symbol"] for o in flatten} == set(held) and all(o["reason"] == "kill" for o in flatten)
    assert all(o["side"] == "sell" for o in flatten)
    assert not any(after[-1]["positions"].get(s) for s in held)                 # closed at the next open
    assert after[1]["orders"] == [] and after[2]["orders"] == []                # and nothing new afterwards
