"""The trade journal records runs, cycles, orders, updates and fills once each, moves order states forward only,
keeps times in UTC, and names the journal and the operation when it refuses something.

Every test runs on SQLite; with ``DATABASE_URL`` set (and psycopg installed) it runs on PostgreSQL too.
"""

from __future__ import annotations

import math
import os
import sqlite3
import uuid
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from graphwiz_trader.errors import GraphwizError
from graphwiz_trader.trading.journal import JournalError, TradeJournal
from graphwiz_trader.trading.types import Fill, OrderRequest, OrderState, OrderUpdate, Side, client_order_id, fill_id

T0 = pd.Timestamp("2024-03-01 10:00", tz="UTC")


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.skip("DATABASE_URL is not set (the PostgreSQL journal tests run against "
                    "postgresql+psycopg://user:password@host/db)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]'), so PostgreSQL cannot be reached")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return _postgres_url()
    return str(tmp_path / "runs" / "x" / "journal.sqlite")


@pytest.fixture()
def journal(journal_url: str):
    j = TradeJournal.open(journal_url)
    yield j
    j.close()


@pytest.fixture()
def run_id() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"  # unique per test: a PostgreSQL journal is shared by the tests


def started(j: TradeJournal, run_id: str, cycles: int = 1) -> None:
    j.start_run(run_id, "qlib_hybrid_v2", "replay", {"symbols": ["BTC/USDT"], "seed": 7}, T0)
    for c in range(1, cycles + 1):
        j.begin_cycle(run_id, c, T0 + pd.Timedelta(hours=c))


def order(run_id: str, cycle: int, symbol: str = "BTC/USDT", side: Side = Side.BUY, qty: float = 1.0,
          leg: int = 0) -> OrderRequest:
    return OrderRequest(client_order_id(run_id, cycle, symbol, leg), run_id, cycle, symbol, side, qty,
                        T0 + pd.Timedelta(hours=cycle), leg=leg)


def fill(o: OrderRequest, n: int, qty: float, price: float = 100.0) -> Fill:
    return Fill(fill_id(o.client_order_id, n), o.client_order_id, o.symbol, o.side, qty, price, qty * price * 1e-3,
                T0 + pd.Timedelta(hours=o.cycle + 1, minutes=n))


# ---------------------------------------------------------------------------------------------- orders, fills
def test_recording_the_same_orders_twice_writes_them_once(journal, run_id):
    started(journal, run_id)
    orders = [order(run_id, 1, "BTC/USDT"), order(run_id, 1, "ETH/USDT", Side.SELL, 2.5)]
    assert journal.record_orders(orders) == 2
    assert journal.record_orders(orders) == 0
    assert journal.record_orders(list(reversed(orders))) == 0
    frame = journal.orders_frame(run_id)
    assert sorted(frame["client_order_id"]) == sorted(o.client_order_id for o in orders)
    assert set(frame["state"]) == {"new"}


def test_a_batch_commits_its_calls_together_and_another_reader_sees_none_of_them_before(journal, journal_url, run_id):
    started(journal, run_id)
    other = TradeJournal.open(journal_url)
    try:
        with journal.batch("cycle 1 records"):
            journal.record_orders([order(run_id, 1, "BTC/USDT")])
            journal.record_equity(run_id, T0 + pd.Timedelta(hours=2), 100.0, 100.0, 0.0, 0.0)
            assert len(journal.orders_frame(run_id)) == 1          # the batch reads its own writes
            assert len(other.orders_frame(run_id)) == 0            # nobody else does yet
        assert len(other.orders_frame(run_id)) == 1
        assert len(other.equity_frame(run_id)) == 1
    finally:
        other.close()


def test_an_exception_leaving_a_batch_writes_none_of_its_calls(journal, run_id):
    started(journal, run_id)
    with pytest.raises(RuntimeError, match="exchange down"):
        with journal.batch("cycle 1 records"):
            journal.record_orders([order(run_id, 1, "BTC/USDT")])
            raise RuntimeError("exchange down")
    assert len(journal.orders_frame(run_id)) == 0


def test_a_refused_call_inside_a_batch_writes_nothing_and_the_rest_of_the_batch_commits(journal, run_id):
    started(journal, run_id, cycles=2)
    first = order(run_id, 1, "BTC/USDT", qty=1.0)
    with journal.batch("cycle 1 records"):
        journal.record_orders([first])
        with pytest.raises(JournalError, match="names one order only"):
            journal.record_orders([order(run_id, 2, "ETH/USDT"), order(run_id, 1, "BTC/USDT", qty=2.0)])
        journal.record_orders([order(run_id, 2, "XRP/USDT")])
    assert sorted(journal.orders_frame(run_id)["symbol"]) == ["BTC/USDT", "XRP/USDT"]


def test_a_client_order_id_journaled_with_another_quantity_is_refused_and_nothing_is_written(journal, run_id):
    started(journal, run_id, cycles=2)
    first = order(run_id, 1, qty=1.0)
    journal.record_orders([first])
    changed = OrderRequest(first.client_order_id, run_id, 1, "BTC/USDT", Side.BUY, 1.5, first.decided_utc)
    other = order(run_id, 2, "SOL/USDT")
    with pytest.raises(JournalError, match=r"journaled with qty 1\.0; this request has 1\.5"):
        journal.record_orders([other, changed])
    assert list(journal.orders_frame(run_id)["client_order_id"]) == [first.client_order_id]  # `other` not written


def test_orders_need_their_cycle_begun_and_the_error_names_journal_and_operation(journal_url, journal, run_id):
    started(journal, run_id, cycles=1)
    with pytest.raises(JournalError) as err:
        journal.record_orders([order(run_id, 1), order(run_id, 5)])
    msg = str(err.value)
    assert "record_orders(2 orders)" in msg and "cycle(s) [5]" in msg and "begin_cycle first" in msg
    assert isinstance(err.value, GraphwizError)
    if journal_url.endswith(".sqlite"):
        assert journal_url in msg
    assert journal.orders_frame(run_id).empty


def test_fills_are_recorded_once_by_fill_id_and_the_count_says_how_many_were_new(journal, run_id):
    started(journal, run_id)
    o = order(run_id, 1, qty=3.0)
    journal.record_orders([o])
    batch = [fill(o, 1, 1.0), fill(o, 2, 0.5)]
    assert journal.record_fills(batch) == 2
    assert journal.record_fills(batch) == 0
    assert journal.record_fills(batch + [fill(o, 3, 1.5)]) == 1
    frame = journal.fills_frame(run_id)
    assert len(frame) == 3 and frame["fill_id"].is_unique
    assert set(frame["cycle"]) == {1} and set(frame["reason"]) == {"rebalance"}


def test_a_fill_id_recorded_with_another_price_or_of_an_unknown_order_is_refused(journal, run_id):
    started(journal, run_id)
    o = order(run_id, 1)
    journal.record_orders([o])
    journal.record_fills([fill(o, 1, 0.4, price=100.0)])
    with pytest.raises(JournalError, match=r"journaled with price 100\.0; this one has 101\.0"):
        journal.record_fills([fill(o, 1, 0.4, price=101.0)])
    ghost = order(run_id, 1, "XRP/USDT")
    with pytest.raises(JournalError, match=rf"order {ghost.client_order_id}, which was never journaled"):
        journal.record_fills([fill(ghost, 1, 1.0)])
    wrong_side = Fill(fill_id(o.client_order_id, 9), o.client_order_id, "BTC/USDT", Side.SELL, 0.1, 100.0, 0.0, T0)
    with pytest.raises(JournalError, match=r"is a sell of BTC/USDT; its order .* is a buy of BTC/USDT"):
        journal.record_fills([wrong_side])
    assert len(journal.fills_frame(run_id)) == 1


def test_positions_are_the_signed_sum_of_every_fill(journal, run_id):
    started(journal, run_id, cycles=3)
    trades = [(1, "BTC/USDT", Side.BUY, [0.1, 0.2]), (2, "BTC/USDT", Side.SELL, [0.3]),
              (2, "ETH/USDT", Side.BUY, [1.25, 0.75]), (3, "ETH/USDT", Side.SELL, [0.5])]
    expected: dict[str, Fraction] = {}
    for cycle, sym, side, qtys in trades:
        o = order(run_id, cycle, sym, side, qty=sum(qtys))
        journal.record_orders([o])
        journal.record_fills([fill(o, n, q) for n, q in enumerate(qtys)])
        for q in qtys:  # exact rational arithmetic on the same floats
            expected[sym] = expected.get(sym, Fraction(0)) + side.sign * Fraction(q)
    got = journal.positions_from_fills(run_id)
    assert got == {sym: float(v) for sym, v in expected.items()}
    assert got["ETH/USDT"] == 1.5 and abs(got["BTC/USDT"]) < 1e-16


# ---------------------------------------------------------------------------------------------- order states
def test_an_order_state_moves_forward_only_and_never_leaves_a_final_state(journal, run_id):
    started(journal, run_id)
    o = order(run_id, 1, qty=1.0)
    journal.record_orders([o])
    cid = o.client_order_id
    applied = journal.record_updates([
        OrderUpdate(cid, o.symbol, OrderState.OPEN, 0.0, venue_order_id="V1"),
        OrderUpdate(cid, o.symbol, OrderState.PARTIALLY_FILLED, 0.4, 100.0),
        OrderUpdate(cid, o.symbol, OrderState.OPEN, 0.0),                      # stale poll: behind the order
    ])
    assert applied == 1
    row = journal.orders_frame(run_id).iloc[0]
    assert (row["state"], row["filled_qty"], row["avg_price"], row["venue_order_id"]) == \
        ("partially_filled", 0.4, 100.0, "V1")
    journal.record_updates([OrderUpdate(cid, o.symbol, OrderState.FILLED, 1.0, 100.5)])
    assert journal.record_updates([OrderUpdate(cid, o.symbol, OrderState.CANCELED, 1.0, reason="late cancel"),
                                   OrderUpdate(cid, o.symbol, OrderState.OPEN, 0.0)]) == 0
    row = journal.orders_frame(run_id).iloc[0]
    assert (row["state"], row["filled_qty"], row["avg_price"]) == ("filled", 1.0, 100.5)
    assert journal.open_orders(run_id) == []
    with journal.engine.connect() as conn:
        hist = pd.read_sql(f"SELECT state, filled_qty, applied FROM order_updates WHERE client_order_id = '{cid}' "
                           "ORDER BY id", conn)
    assert list(zip(hist["state"], hist["filled_qty"], hist["applied"].astype(bool))) == [
        ("open", 0.0, True), ("partially_filled", 0.4, True), ("filled", 1.0, True), ("canceled", 1.0, False)]


def test_open_orders_are_the_orders_not_yet_final_with_their_requests_intact(journal, run_id):
    started(journal, run_id)
    a, b, c = order(run_id, 1, "BTC/USDT"), order(run_id, 1, "ETH/USDT", Side.SELL, 2.0), order(run_id, 1, "SOL/USDT")
    journal.record_orders([a, b, c])
    journal.record_updates([OrderUpdate(b.client_order_id, b.symbol, OrderState.OPEN),
                            OrderUpdate(c.client_order_id, c.symbol, OrderState.REJECTED, reason="min notional")])
    got = journal.open_orders(run_id)
    assert [(req, st) for req, st in got] == [(a, OrderState.NEW), (b, OrderState.OPEN)]


def test_updates_of_orders_never_journaled_are_refused(journal, run_id):
    started(journal, run_id)
    with pytest.raises(JournalError, match=r"updates for 1 order\(s\) never journaled"):
        journal.record_updates([OrderUpdate("gwdoesnotexist", "BTC/USDT", OrderState.OPEN)])


# ---------------------------------------------------------------------------------------------- runs and cycles
def test_a_run_restarted_under_its_id_is_kept_and_one_with_another_config_is_refused(journal, run_id):
    started(journal, run_id)
    later = T0 + pd.Timedelta(1, "D")
    journal.start_run(run_id, "qlib_hybrid_v2", "replay", {"symbols": ["BTC/USDT"], "seed": 7}, later)
    assert journal.run_state(run_id)["started_utc"] == T0
    with pytest.raises(JournalError, match=r"exists with another config"):
        journal.start_run(run_id, "qlib_hybrid_v2", "replay", {"symbols": ["ETH/USDT"], "seed": 7}, T0)


def test_a_failed_cycle_can_be_retried_but_a_finished_one_cannot_be_begun_again(journal, run_id):
    started(journal, run_id, cycles=2)
    journal.finish_cycle(run_id, 2, "failed", {"error": "exchange unreachable"}, {"total": 1.5})
    journal.begin_cycle(run_id, 2, T0 + pd.Timedelta(hours=2))
    cycles = journal.cycles_frame(run_id).set_index("cycle")
    assert (cycles.loc[2, "status"], cycles.loc[2, "attempts"]) == ("running", 2)
    journal.finish_cycle(run_id, 2, "ok", {"orders": 0}, {"total": 0.2})
    assert journal.cycle_status(run_id, 2) == "ok" and journal.last_cycle(run_id) == 2
    with pytest.raises(JournalError, match=r"already finished ok; begin cycle 3 next"):
        journal.begin_cycle(run_id, 2, T0 + pd.Timedelta(hours=2))
    with pytest.raises(JournalError, match=r"was begun at as_of"):
        journal.begin_cycle(run_id, 1, T0)
    with pytest.raises(JournalError, match=r"status must be 'ok', 'failed' or 'skipped'"):
        journal.finish_cycle(run_id, 1, "done")


def test_pause_and_kill_flags_are_stored_with_their_reason(journal, run_id):
    started(journal, run_id)
    state = journal.set_run_state(run_id, paused=True, reason="operator: exchange maintenance")
    assert (state["paused"], state["killed"], state["reason"]) == (True, False, "operator: exchange maintenance")
    journal.set_run_state(run_id, killed=True)
    assert journal.run_state(run_id)["killed"] is True and journal.run_state(run_id)["paused"] is True
    with pytest.raises(JournalError, match=r"unknown run state flag\(s\) \['halted'\]"):
        journal.set_run_state(run_id, halted=True)
    with pytest.raises(JournalError, match=r"no run 'nope' in the journal"):
        journal.run_state("nope")


def test_signals_of_a_cycle_are_replaced_when_recorded_again_and_nan_is_missing(journal, run_id):
    started(journal, run_id)
    journal.record_signals(run_id, 1, T0, pd.Series({"BTC/USDT": 0.5, "ETH/USDT": -0.2}),
                           pd.Series({"BTC/USDT": 0.25}), "m1")
    assert journal.record_signals(run_id, 1, T0, pd.Series({"BTC/USDT": 0.4, "SOL/USDT": math.nan}),
                                  pd.Series({"BTC/USDT": 0.2, "SOL/USDT": 0.0}), "m1") == 2
    s = journal.signals_frame(run_id).set_index("symbol")
    assert list(s.index) == ["BTC/USDT", "SOL/USDT"]
    assert s.loc["BTC/USDT", "score"] == 0.4 and s.loc["BTC/USDT", "target_weight"] == 0.2
    assert pd.isna(s.loc["SOL/USDT", "score"]) and s.loc["SOL/USDT", "target_weight"] == 0.0


def test_the_same_risk_decision_is_recorded_once_and_model_versions_update_their_info(journal, run_id):
    started(journal, run_id)
    args = (run_id, 1, T0, "order_rejected", "BTC/USDT: notional 4.5 below the minimum 5.0", "reject")
    assert journal.record_risk_event(*args) is True
    assert journal.record_risk_event(*args) is False
    assert len(journal.risk_events_frame(run_id)) == 1
    journal.record_model_version(run_id, "lgbm-2024-03-01", {"train_end": T0})
    journal.record_model_version(run_id, "lgbm-2024-03-01", {"train_end": T0, "ic": 0.03})
    mv = journal.model_versions_frame(run_id)
    assert len(mv) == 1 and mv.iloc[0]["info"] == '{"ic": 0.03, "train_end": "2024-03-01T10:00:00+00:00"}'


# ---------------------------------------------------------------------------------------------- times
def test_times_are_stored_in_utc_and_naive_or_nanosecond_times_are_refused(journal_url, journal, run_id):
    started(journal, run_id)
    berlin = pd.Timestamp("2024-03-01 12:30", tz="Europe/Berlin")  # = 11:30 UTC
    journal.record_equity(run_id, berlin, 10_000.0, 2_000.0, 0.8, 0.01)
    eq = journal.equity_frame(run_id)
    assert eq["ts_utc"].iloc[0] == pd.Timestamp("2024-03-01 11:30", tz="UTC")
    assert str(eq["ts_utc"].dt.tz) == "UTC"
    if journal_url.endswith(".sqlite"):
        raw = sqlite3.connect(journal_url).execute("SELECT ts_utc FROM equity WHERE run_id = ?", (run_id,)).fetchone()
        assert raw[0].startswith("2024-03-01 11:30:00")
    with pytest.raises(JournalError, match=r"record_equity.*ts: timestamp 2024-03-01 11:30:00 is naive"):
        journal.record_equity(run_id, pd.Timestamp("2024-03-01 11:30"), 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(JournalError, match=r"has nanoseconds"):
        journal.record_equity(run_id, pd.Timestamp("2024-03-01 11:30:00.000000001", tz="UTC"), 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(JournalError, match=r"equity_quote must be finite"):
        journal.record_equity(run_id, T0, math.inf, 1.0, 0.0, 0.0)


def test_positions_without_a_price_keep_no_value_rather_than_zero(journal, run_id):
    started(journal, run_id)
    assert journal.record_positions(run_id, T0, {"BTC/USDT": 0.5, "ETH/USDT": -2.0}, {"BTC/USDT": 60_000.0}) == 2
    with journal.engine.connect() as conn:
        rows = pd.read_sql(f"SELECT symbol, qty, value_quote FROM positions WHERE run_id = '{run_id}' ORDER BY symbol",
                           conn)
    assert rows["value_quote"].iloc[0] == 30_000.0 and pd.isna(rows["value_quote"].iloc[1])


# ---------------------------------------------------------------------------------------------- opening
def test_a_path_opens_sqlite_in_wal_mode_with_a_busy_timeout(tmp_path):
    path = tmp_path / "new" / "journal.sqlite"
    with TradeJournal.open(path, busy_timeout_s=7.5) as j:
        assert j.url == f"sqlite:///{path}"
        with j.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7500
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_an_unsupported_or_unreachable_database_is_a_journal_error_without_credentials():
    with pytest.raises(JournalError, match=r"unsupported database 'mysql'") as err:
        TradeJournal.open("mysql://admin:hunter22secret@db.example:3306/trades")
    assert "hunter22secret" not in str(err.value) and "mysql://db.example:3306/trades" in str(err.value)
    with pytest.raises(JournalError) as err:
        TradeJournal.open("postgresql+psycopg://trader:s3cretpass@127.0.0.1:1/journal")
    msg = str(err.value)
    assert "postgresql+psycopg://127.0.0.1:1/journal" in msg and "s3cretpass" not in msg
    assert "open" in msg or "migrate" in msg
