"""The paper engine: live bars from the mock exchange through ccxt, fills simulated as in the replay (the bars
after the decision, the backtester's costs, a participation cap), the exchange's own rules, and a state file a
restarted engine resumes from. Expected fills and cash are computed here by hand from the mock's true bars."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.errors import ConfigError, DataError
from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.base import TradingEngine
from graphwiz_trader.trading.engines.paper import PaperTradingEngine
from graphwiz_trader.trading.types import (
    OrderRequest,
    OrderState,
    Side,
    client_order_id,
)

pytestmark = pytest.mark.timeout(120)

START = "2024-03-01 12:00:30"
COSTS = CostModel()  # 10 bps fee, 1 bp half-spread, 2 bps slippage, 10 bps impact at 100% ADV, 24-bar ADV
DECIDED = pd.Timestamp("2024-03-01 12:00", tz="UTC")  # close of the 11:59 bar, the engine clock at start


@pytest.fixture()
def mock() -> Iterator[MockBinance]:
    with MockBinance([MockMarket("BTC/USDT", 50_000.0, bar_volume=20.0), MockMarket("ETH/USDT", 3_000.0)],
                     clock=VirtualClock(START), timeframe="1m") as m:
        yield m


def paper(mock: MockBinance, state: Path, **kw) -> PaperTradingEngine:
    return PaperTradingEngine(["BTC/USDT", "ETH/USDT"], state_path=state, settings=mock.settings(), timeframe="1m",
                              clock=mock.clock, use_websocket=False, costs=COSTS,
                              feed_options={"poll_interval_s": 0.01, "close_grace_s": 0.0}, **kw)


def run(engine: PaperTradingEngine, body):
    async def main():
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.close()
    return asyncio.run(main())


def order(qty: float, side: Side = Side.BUY, symbol: str = "BTC/USDT", **kw) -> OrderRequest:
    return OrderRequest(client_order_id("run-paper", 1, symbol), "run-paper", 1, symbol, side, qty, DECIDED, **kw)


def expected_fill(mock: MockBinance, symbol: str, bar_open: pd.Timestamp, qty: float) -> dict[str, float]:
    """The backtester's costs for ``qty`` at ``bar_open``'s open, with the trailing ADV of the bars before it."""
    bars = mock.closed_bars(symbol)
    before = bars[bars.index < bar_open].iloc[-COSTS.impact_volume_window_bars:]
    adv = float((before["volume"] * before["close"]).mean())
    price = float(bars.loc[bar_open, "open"])
    n = qty * price
    return {"price": price, "fee": n * 10 / 1e4, "ss": n * 3 / 1e4, "impact": 10 / 1e4 * n * math.sqrt(n / adv),
            "notional": n}


def test_the_paper_engine_implements_the_engine_interface(mock, tmp_path):
    assert isinstance(paper(mock, tmp_path / "s.json"), TradingEngine)


def test_a_market_order_fills_at_the_next_bars_open_with_the_backtesters_costs(mock, tmp_path):
    async def body(eng):
        await eng.history(["BTC/USDT"], 30)
        ups = await eng.submit([order(0.5)])
        before = await eng.poll_updates()
        mock.advance(1)
        await eng.next_bars()
        return eng.now(), ups, before, await eng.poll_updates(), await eng.account()

    now, ups, before, (updates, fills), account = run(paper(mock, tmp_path / "s.json"), body)
    assert now == DECIDED + pd.Timedelta(minutes=1)
    assert ups[0].state is OrderState.OPEN and before == ([], [])  # nothing fills at the decision bar's close
    bar = pd.Timestamp("2024-03-01 12:00", tz="UTC")  # the first bar opening after the decision
    want = expected_fill(mock, "BTC/USDT", bar, 0.5)
    (f,) = fills
    assert f.ts_utc == bar and f.qty == 0.5 and f.price == want["price"]
    assert (f.fee_quote, f.spread_slippage_quote, f.impact_quote) == pytest.approx(
        (want["fee"], want["ss"], want["impact"]), rel=1e-9)
    assert updates[0].state is OrderState.FILLED and updates[0].avg_price == want["price"]
    cash = 100_000.0 - want["notional"] - want["fee"] - want["ss"] - want["impact"]
    assert account.cash_quote == pytest.approx(cash, rel=1e-12) and account.positions == {"BTC/USDT": 0.5}


def test_an_order_above_the_participation_cap_fills_partially_then_expires(mock, tmp_path):
    o = order(1.0, execution="TWAP", horizon_bars=3)

    async def body(eng):
        await eng.submit([o])
        for _ in range(3):
            mock.advance(1)
            await eng.next_bars()
        return await eng.poll_updates()

    updates, fills = run(paper(mock, tmp_path / "s.json", max_participation=0.01), body)
    bars = mock.closed_bars("BTC/USDT")
    filled, want = 0.0, []
    for i, t in enumerate(pd.date_range("2024-03-01 12:00", periods=3, freq="1min", tz="UTC")):
        child = min(1.0 * (i + 1) / 3 - filled, 0.01 * bars.loc[t, "volume"])  # TWAP slice, capped
        want.append(child)
        filled += child
    assert [f.qty for f in fills] == pytest.approx(want, rel=1e-12)
    assert updates[-1].state is OrderState.EXPIRED and updates[-1].filled_qty == pytest.approx(filled)
    assert "participation cap 0.01" in updates[-1].reason


def test_a_restarted_paper_engine_resumes_and_works_its_orders_over_the_bars_it_missed(mock, tmp_path):
    state = tmp_path / "paper.json"
    o = order(0.6, execution="TWAP", horizon_bars=3)

    async def first(eng):
        await eng.submit([o])
        mock.advance(1)
        await eng.next_bars()  # slot 1 fills; its fill is not polled before the stop

    run(paper(mock, state), first)
    saved = json.loads(state.read_text())
    assert len(saved["pending_fills"]) == 1 and saved["orders"][o.client_order_id]["state"] == "partially_filled"
    mock.advance(2)  # two bars close while the engine is down

    async def second(eng):
        return await eng.poll_updates(), await eng.account(), eng.now(), await eng.submit([o])

    (updates, fills), account, now, again = run(paper(mock, state), second)
    opens = pd.date_range("2024-03-01 12:00", periods=3, freq="1min", tz="UTC")
    assert [f.ts_utc for f in fills] == list(opens) and [f.qty for f in fills] == pytest.approx([0.2] * 3)
    cash = 100_000.0
    for f, t in zip(fills, opens):
        want = expected_fill(mock, "BTC/USDT", t, 0.2)
        assert f.price == want["price"] and f.impact_quote == pytest.approx(want["impact"], rel=1e-9)
        cash -= want["notional"] + want["fee"] + want["ss"] + want["impact"]
    assert account.cash_quote == pytest.approx(cash, rel=1e-12)
    assert account.positions == {"BTC/USDT": pytest.approx(0.6)}
    assert updates[-1].state is OrderState.FILLED and now == opens[-1] + pd.Timedelta(minutes=1)
    assert again[0].state is OrderState.FILLED  # resubmitting the id returns the order, no second one


def test_submitting_a_client_id_twice_keeps_one_order(mock, tmp_path):
    async def body(eng):
        await eng.submit([order(0.1)])
        await eng.submit([order(0.1)])
        return await eng.open_orders()

    assert len(run(paper(mock, tmp_path / "s.json"), body)) == 1


def test_the_paper_venue_rejects_what_the_exchange_would_saying_why(mock, tmp_path):
    async def body(eng):
        await eng.history(["BTC/USDT", "ETH/USDT"], 2)
        small = order(0.0001)  # ~4.4 USDT
        short = order(0.01, Side.SELL, "ETH/USDT")
        rich = OrderRequest(client_order_id("run-paper", 1, "BTC/USDT", 1), "run-paper", 1, "BTC/USDT", Side.BUY,
                            5.0, DECIDED, leg=1)
        return await eng.submit([small, short, rich])

    small, short, rich = run(paper(mock, tmp_path / "s.json"), body)
    close = mock.closed_bars("BTC/USDT")["close"].iloc[-1]
    assert all(u.state is OrderState.REJECTED for u in (small, short, rich))
    assert small.reason == (f"order notional {0.0001 * close:.2f} USDT below BTC/USDT's minimum notional 10 USDT")
    assert short.reason.startswith("insufficient balance: sell 0.01 ETH/USDT exceeds the free position 0")
    need = 5.0 * close * (1 + 13 / 1e4)
    assert rich.reason == (f"insufficient balance: buy 5 BTC/USDT needs ~{need:.2f} USDT (at {close:g} plus costs), "
                           "free cash is 100000.00 USDT")


def test_a_second_paper_process_on_one_state_file_is_refused(mock, tmp_path):
    state = tmp_path / "s.json"

    async def body(eng):
        other = paper(mock, state)
        with pytest.raises(ConfigError, match=r"is in use by another process \(PID \d+\)"):
            await other.start()
        return True

    assert run(paper(mock, state), body)


def test_an_unreadable_or_foreign_state_file_is_refused_clearly(mock, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"paper state .*bad.json is unreadable"):
        run(paper(mock, bad), lambda eng: eng.account())
    state = tmp_path / "s.json"
    run(paper(mock, state), lambda eng: eng.account())
    hourly = PaperTradingEngine(["BTC/USDT"], state_path=state, settings=mock.settings(), timeframe="1h",
                                clock=mock.clock, use_websocket=False)
    with pytest.raises(ConfigError, match=r"written for timeframe='1m', not '1h'"):
        run(hourly, lambda eng: eng.account())
