"""The crash test from the venue side: a process journals orders (write-ahead), sends them to the mock exchange
through the live engine and is SIGKILLed before their fills are journaled (one order's response still in
flight). A restarted engine reconciles: no order is doubled on the exchange, no fill is lost (fetched from
myTrades and journaled once), and the journal's positions equal the exchange's balances."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from graphwiz_trader.testkit.mock_exchange import MockBinance, MockMarket, VirtualClock
from graphwiz_trader.trading.engines.live import LiveTradingEngine
from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.reconcile import reconcile
from graphwiz_trader.trading.types import OrderRequest, Side, client_order_id

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")]

RUN = "run-crash"
AS_OF = pd.Timestamp("2024-03-01 12:00", tz="UTC")
PLAN = [("BTC/USDT", 0.1), ("ETH/USDT", 1.0), ("BTC/USDT", 0.05)]  # (symbol, qty) of legs 0, 1, 2


def orders() -> list[OrderRequest]:
    return [OrderRequest(client_order_id(RUN, 1, s, leg), RUN, 1, s, Side.BUY, q, AS_OF, leg=leg)
            for leg, (s, q) in enumerate(PLAN)]


# The submitting process: start (reconcile), journal the cycle's orders, send them one by one, journal each
# acknowledgement; the fills would be polled and journaled after all are sent: it is killed before that.
CHILD = r"""
import asyncio, json, os, sys
import pandas as pd
from graphwiz_trader.config.settings import ExchangeSettings
from graphwiz_trader.trading.engines.live import LiveTradingEngine
from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.types import OrderRequest, Side, client_order_id

a = json.loads(sys.argv[1])
as_of = pd.Timestamp(a["as_of"])
settings = ExchangeSettings(api_key=os.environ["MOCK_API_KEY"], secret=os.environ["MOCK_SECRET"], api_url=a["url"],
                            timeout_ms=60000, max_retries=0, rate_limit_ms=1)

async def main():
    j = TradeJournal.open(a["journal"])
    j.start_run(a["run"], "crash-test", "live", {}, as_of)
    eng = LiveTradingEngine(["BTC/USDT", "ETH/USDT"], settings=settings, timeframe="1m", use_websocket=False,
                            journal=j, run_id=a["run"], state_path=a["state"])
    await eng.start()
    j.begin_cycle(a["run"], 1, as_of)
    orders = [OrderRequest(client_order_id(a["run"], 1, s, leg), a["run"], 1, s, Side.BUY, q, as_of, leg=leg)
              for leg, (s, q) in enumerate(a["plan"])]
    j.record_orders(orders)
    for o in orders:
        up = (await eng.submit([o]))[0]
        j.record_updates([up])
        print("SENT", o.client_order_id, up.state.value, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def wait_for(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkill_after_sending_before_fills_are_journaled_loses_nothing_and_doubles_nothing(tmp_path: Path):
    journal_path, state = tmp_path / "journal.sqlite", tmp_path / "live-state.json"
    o1, o2, o3 = orders()
    with MockBinance([MockMarket("BTC/USDT", 50_000.0), MockMarket("ETH/USDT", 3_000.0)],
                     clock=VirtualClock("2024-03-01 12:00:30"), timeframe="1m", hang_s=60, lifetime_s=170) as mock:
        mock.inject("POST", "order", "lost_response", after=1)  # order 2 is executed; its response never comes
        args = {"journal": str(journal_path), "state": str(state), "url": mock.base_url, "run": RUN,
                "as_of": AS_OF.isoformat(), "plan": PLAN}
        env = {**os.environ, "MOCK_API_KEY": mock.api_key, "MOCK_SECRET": mock.secret}
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: mock.order_by_client_id(o2.client_order_id) or child.poll() is not None, 120,
                     "the second order to reach the exchange")
            assert child.poll() is None, child.stderr.read()
            os.kill(child.pid, signal.SIGKILL)  # mid-cycle: order 2's response in flight, no fill journaled
        finally:
            if child.poll() is None:
                child.kill()
            out, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        assert out.splitlines() == [f"SENT {o1.client_order_id} filled"], err

        journal = TradeJournal.open(journal_path)
        try:
            before = journal.orders_frame(RUN).set_index("client_order_id")["state"].to_dict()
            assert before == {o1.client_order_id: "filled", o2.client_order_id: "new", o3.client_order_id: "new"}
            assert len(journal.fills_frame(RUN)) == 0

            async def restart():
                eng = LiveTradingEngine(["BTC/USDT", "ETH/USDT"], settings=mock.settings(), timeframe="1m",
                                        use_websocket=False, journal=journal, run_id=RUN, state_path=state)
                await eng.start()  # reconciles
                try:
                    report = eng.last_reconcile
                    # the cycle is retried with the same client ids: nothing is sent twice
                    resent = await eng.submit([o1, o2])
                    journal.record_updates(resent)
                    _, fills = await eng.poll_updates()
                    new_fills = journal.record_fills(fills)
                    again = await reconcile(eng, journal, RUN)
                    return report, resent, new_fills, again, await eng.account()
                finally:
                    await eng.close()

            report, resent, new_fills, again, account = asyncio.run(restart())
            kinds = sorted((d.kind, d.client_order_id) for d in report.differences)
            assert kinds == sorted([("order_state", o2.client_order_id), ("fills_missing", o1.client_order_id),
                                    ("fills_missing", o2.client_order_id), ("order_missing", o3.client_order_id)])
            assert report.ok and report.fills_recorded == 2

            # no duplicate order: each client id once on the exchange; order 3 was never sent
            assert mock.create_calls() == 2
            assert [len(mock.order_by_client_id(o.client_order_id)) for o in (o1, o2, o3)] == [1, 1, 0]
            assert [u.venue_order_id for u in resent] == [str(mock.order_by_client_id(o.client_order_id)[0]["orderId"])
                                                        for o in (o1, o2)]
            # no lost fill, each recorded once: the journal's fills are exactly the exchange's trades
            fills = journal.fills_frame(RUN)
            trades = {f"{o.client_order_id}:{t['id']}": t for o in (o1, o2)
                      for t in mock.trades if t["orderId"] == mock.order_by_client_id(o.client_order_id)[0]["orderId"]}
            assert sorted(fills["fill_id"]) == sorted(trades)
            for fid, qty, price in zip(fills["fill_id"], fills["qty"], fills["price"]):
                assert (qty, price) == (float(trades[fid]["qty"]), float(trades[fid]["price"]))
            assert new_fills == 0 and again.fills_recorded == 0 and again.differences == []
            # positions reconcile: journal = exchange balances (the account held none before the run)
            assert journal.positions_from_fills(RUN) == pytest.approx({"BTC/USDT": 0.1, "ETH/USDT": 1.0})
            assert account.positions == pytest.approx({"BTC/USDT": 0.1, "ETH/USDT": 1.0})
            after = journal.orders_frame(RUN).set_index("client_order_id")["state"].to_dict()
            assert after == {o1.client_order_id: "filled", o2.client_order_id: "filled", o3.client_order_id: "expired"}
        finally:
            journal.close()
