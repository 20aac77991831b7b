"""Reconcile brings a trade journal (SQLite) up to what the venue did and reports every difference: orders in
another state, orders never sent, orders the journal does not expect, fills it missed, positions and cash that
differ. Venues: the live engine on the mock exchange (orders placed around it with ccxt directly) and the paper
engine after a stop before its fills were journaled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from graphwiz_trader.backtest.settings import CostModel
from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.ccxt_venue import build_exchange
from graphwiz_trader.trading.engines.fills import cash_change
from graphwiz_trader.trading.engines.live import LiveTradingEngine
from graphwiz_trader.trading.engines.paper import PaperTradingEngine
from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.reconcile import reconcile
from graphwiz_trader.trading.types import (
    OrderRequest,
    OrderState,
    OrderUpdate,
    Side,
    client_order_id,
)

pytestmark = pytest.mark.timeout(120)

START = "2024-03-01 12:00:30"
AS_OF = pd.Timestamp("2024-03-01 12:00", tz="UTC")
RUN = "run-rec"


@pytest.fixture()
def mock() -> Iterator[MockBinance]:
    with MockBinance([MockMarket("BTC/USDT", 50_000.0), MockMarket("ETH/USDT", 3_000.0)], clock=VirtualClock(START),
                     timeframe="1m", balances={"USDT": 100_000.0, "BTC": 0.3}) as m:
        yield m


@pytest.fixture()
def journal(tmp_path: Path) -> Iterator[TradeJournal]:
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    j.start_run(RUN, "test", "live", {}, AS_OF)
    j.begin_cycle(RUN, 1, AS_OF)
    try:
        yield j
    finally:
        j.close()


def order(symbol: str, qty: float, leg: int = 0, **kw) -> OrderRequest:
    return OrderRequest(client_order_id(RUN, 1, symbol, leg), RUN, 1, symbol, Side.BUY, qty, AS_OF, leg=leg, **kw)


def around(mock: MockBinance, body) -> None:
    """Act on the exchange with ccxt directly, around the engine (another process, a person, a crash)."""
    async def main():
        ex = build_exchange("binance", mock.settings())
        try:
            await ex.load_markets()
            await body(ex)
        finally:
            await ex.close()
    asyncio.run(main())


def reconciled(mock: MockBinance, journal: TradeJournal, **kw):
    async def main():
        eng = LiveTradingEngine(["BTC/USDT", "ETH/USDT"], settings=mock.settings(), timeframe="1m",
                                clock=mock.clock, use_websocket=False)
        await eng.start()
        try:
            return await reconcile(eng, journal, RUN, **kw)
        finally:
            await eng.close()
    return asyncio.run(main())


def test_reconcile_repairs_what_is_safe_and_reports_every_difference(mock, journal):
    sent = order("BTC/USDT", 0.1)                      # sent, filled; the journal never heard back
    never = order("ETH/USDT", 0.01)                    # journaled, never sent
    resting = order("ETH/USDT", 0.1, leg=1, order_type="limit", limit_price=1_000.0)  # acknowledged, then canceled
    journal.record_orders([sent, never, resting])

    async def act(ex):
        await ex.create_order("BTC/USDT", "market", "buy", 0.1, None, {"newClientOrderId": sent.client_order_id})
        placed = await ex.create_order("ETH/USDT", "limit", "buy", 0.1, 1_000.0,
                                       {"newClientOrderId": resting.client_order_id})
        journal.record_updates([OrderUpdate(resting.client_order_id, "ETH/USDT", OrderState.OPEN,
                                            venue_order_id=str(placed["id"]))])
        await ex.cancel_order(placed["id"], "ETH/USDT")
        await ex.create_order("ETH/USDT", "limit", "buy", 0.05, 1_000.0, {"newClientOrderId": "manual-open"})
        await ex.create_order("ETH/USDT", "market", "buy", 0.02, None, {"newClientOrderId": "manual-fill"})

    around(mock, act)
    report = reconciled(mock, journal, baseline_positions={"BTC/USDT": 0.3}, baseline_cash=100_000.0)
    by = {(d.kind, d.client_order_id or d.symbol): d for d in report.differences}

    d = by[("order_state", sent.client_order_id)]
    assert (d.journal, d.exchange, d.action) == ("new", "filled (filled 0.1)", "journal updated")
    d = by[("fills_missing", sent.client_order_id)]
    assert (d.journal, d.exchange, d.action) == (0, 1, "recorded 1 fill(s)")
    d = by[("order_missing", never.client_order_id)]
    assert (d.journal, d.exchange, d.action) == ("new", "absent", "journal: expired (never sent)")
    d = by[("order_state", resting.client_order_id)]
    assert (d.journal, d.exchange) == ("open", "canceled (filled 0)")
    assert by[("order_not_in_journal", "manual-open")].exchange == "open (filled 0)"
    eth_fill = next(t for t in mock.trades if t["symbol"] == "ETHUSDT")
    d = by[("position", "ETH/USDT")]  # the manual fill is on the exchange only
    assert (d.journal, d.exchange) == (0.0, pytest.approx(0.02))
    d = by[("cash", "USDT")]
    manual_cost = float(eth_fill["quoteQty"]) + float(eth_fill["commission"])
    assert d.exchange - d.journal == pytest.approx(-manual_cost, abs=1e-6)
    assert ("position", "BTC/USDT") not in by  # 0.3 held before the run + 0.1 filled = baseline + journal
    assert len(report.differences) == 7 and report.fills_recorded == 1
    assert {d.kind for d in report.unresolved} == {"order_not_in_journal", "position", "cash"}

    orders = journal.orders_frame(RUN).set_index("client_order_id")
    assert orders.loc[sent.client_order_id, "state"] == "filled"
    assert orders.loc[never.client_order_id, "state"] == "expired"
    assert orders.loc[resting.client_order_id, "state"] == "canceled"
    fills = journal.fills_frame(RUN)
    trade = mock.trades[0]
    assert list(fills["fill_id"]) == [f"{sent.client_order_id}:{trade['id']}"]
    assert fills["price"].iloc[0] == float(trade["price"]) and fills["qty"].iloc[0] == 0.1
    events = journal.risk_events_frame(RUN)
    assert (events["kind"] == "reconcile").sum() == len(report.differences)

    again = reconciled(mock, journal, baseline_positions={"BTC/USDT": 0.3}, baseline_cash=100_000.0)
    assert again.fills_recorded == 0 and again.updates_recorded == 0
    assert sorted(d.kind for d in again.differences) == ["cash", "order_not_in_journal", "position"]


def test_an_order_filled_in_the_journal_without_its_fills_gets_them(mock, journal):
    o = order("BTC/USDT", 0.2)
    journal.record_orders([o])

    async def act(ex):
        placed = await ex.create_order("BTC/USDT", "market", "buy", 0.2, None, {"newClientOrderId": o.client_order_id})
        # the crash came between journaling the update and the fills
        journal.record_updates([OrderUpdate(o.client_order_id, "BTC/USDT", OrderState.FILLED, 0.2,
                                            placed["average"], venue_order_id=str(placed["id"]))])

    around(mock, act)
    report = reconciled(mock, journal, baseline_positions={"BTC/USDT": 0.3})
    assert [(d.kind, d.action) for d in report.differences] == [("fills_missing", "recorded 1 fill(s)")]
    assert journal.positions_from_fills(RUN) == {"BTC/USDT": pytest.approx(0.2)}
    assert report.ok


def test_a_paper_engine_stopped_before_its_fills_were_journaled_reconciles_them_once(mock, journal, tmp_path):
    state = tmp_path / "paper.json"
    o = order("BTC/USDT", 0.4, execution="TWAP", horizon_bars=2)
    journal.record_orders([o])

    def engine() -> PaperTradingEngine:
        return PaperTradingEngine(["BTC/USDT", "ETH/USDT"], state_path=state, settings=mock.settings(),
                                  timeframe="1m", clock=mock.clock, use_websocket=False, costs=CostModel(),
                                  feed_options={"poll_interval_s": 0.01, "close_grace_s": 0.0})

    async def before_the_stop():
        eng = engine()
        await eng.start()
        await eng.submit([o])
        for _ in range(2):
            mock.advance(1)
            await eng.next_bars()
        await eng.close()  # stopped: the fills were never polled nor journaled

    async def after_restart():
        eng = engine()
        await eng.start()
        try:
            report = await reconcile(eng, journal, RUN, baseline_cash=100_000.0)
            _, fills = await eng.poll_updates()  # the fills the engine still had to report
            return report, fills, journal.record_fills(fills), await eng.account()
        finally:
            await eng.close()

    asyncio.run(before_the_stop())
    report, fills, new_again, account = asyncio.run(after_restart())
    assert [d.kind for d in report.differences] == ["order_state", "fills_missing"] and report.ok
    assert report.fills_recorded == 2 and new_again == 0  # recorded once
    assert journal.positions_from_fills(RUN) == {"BTC/USDT": pytest.approx(0.4)} == account.positions
    assert 100_000.0 + sum(cash_change(f) for f in fills) == pytest.approx(account.cash_quote, rel=1e-12)


def test_reconcile_before_the_run_is_journaled_reports_without_failing(mock, tmp_path):
    fresh = TradeJournal.open(tmp_path / "fresh.sqlite")  # a first start: the run is not journaled yet

    async def act(ex):
        await ex.create_order("ETH/USDT", "limit", "buy", 0.05, 1_000.0, {"newClientOrderId": "left-open"})

    around(mock, act)
    try:
        report = reconciled(mock, fresh, baseline_positions={"BTC/USDT": 0.3})
    finally:
        fresh.close()
    assert [(d.kind, d.client_order_id) for d in report.differences] == [("order_not_in_journal", "left-open")]


def test_an_order_reconcile_found_never_sent_can_still_be_sent_once(mock, journal, tmp_path):
    o = order("ETH/USDT", 0.01)
    journal.record_orders([o])

    async def main():
        eng = LiveTradingEngine(["BTC/USDT", "ETH/USDT"], settings=mock.settings(), timeframe="1m",
                                clock=mock.clock, use_websocket=False, journal=journal, run_id=RUN,
                                state_path=tmp_path / "live.json")  # baseline: the 0.3 BTC held before
        await eng.start()  # reconciles: the order is remembered, looked up, not found
        try:
            return eng.last_reconcile, await eng.submit([o]), await eng.submit([o])
        finally:
            await eng.close()

    report, first, second = asyncio.run(main())
    assert [d.kind for d in report.differences] == ["order_missing"]
    assert first[0].state is second[0].state is OrderState.FILLED
    assert mock.create_calls() == 1
