"""Crash safety: a process SIGKILLed in the middle of recording a batch of fills leaves every batch whole or
absent, and recording everything again after the restart adds exactly what was missing, never a duplicate."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.types import Fill, OrderRequest

RUN = "crash-run"
N_ORDERS = 40
N_BATCHES = 12
BATCH = 4000            # fills per record_fills call (one transaction; several INSERT statements)
KILLED_BATCH = 3        # "hook" mode: the process is killed inside this batch's transaction

# The batches are a pure function of the order ids, so the parent knows exactly what the child tried to write.
_SHARED = textwrap.dedent(f"""
    import pandas as pd
    from graphwiz_trader.trading.types import Fill, OrderRequest, Side, client_order_id, fill_id
    RUN, N_ORDERS, N_BATCHES, BATCH = {RUN!r}, {N_ORDERS}, {N_BATCHES}, {BATCH}
    T0 = pd.Timestamp("2024-05-01", tz="UTC")

    def orders():
        return [OrderRequest(client_order_id(RUN, 1, f"S{{i}}/USDT"), RUN, 1, f"S{{i}}/USDT",
                             Side.BUY if i % 3 else Side.SELL, 1000.0, T0) for i in range(N_ORDERS)]

    def batch(b):
        os_ = orders()
        return [Fill(fill_id(o.client_order_id, f"{{b}}-{{k}}"), o.client_order_id, o.symbol, o.side,
                     0.001 * (1 + (b + k) % 7), 100.0 + k % 13, 0.01, T0 + pd.Timedelta(minutes=b))
                for k in range(BATCH) for o in [os_[k % N_ORDERS]]]
""")

_CHILD = _SHARED + textwrap.dedent("""
    import os, sys, time
    from sqlalchemy import event
    from graphwiz_trader.trading.journal import TradeJournal
    path, mode, marker, killed_batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    j = TradeJournal.open(path)
    j.start_run(RUN, "s", "replay", {}, T0)
    j.begin_cycle(RUN, 1, T0)
    j.record_orders(orders())
    state = {"batch": -1, "inserts": 0}

    def hook(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO FILLS"):
            state["inserts"] += 1
            if mode == "hook" and state["batch"] == killed_batch and state["inserts"] == 2:
                open(marker, "w").write("inside")  # rows of this batch written, not committed
                time.sleep(120)

    event.listen(j.engine, "after_cursor_execute", hook)
    print("orders", flush=True)
    for b in range(N_BATCHES):
        state["batch"], state["inserts"] = b, 0
        j.record_fills(batch(b))
        print("batch", b, flush=True)
    print("done", flush=True)
""")


def _batches() -> list[list[Fill]]:
    ns: dict = {}
    exec(_SHARED, ns)  # the same definitions the child used
    return [ns["batch"](b) for b in range(N_BATCHES)]


def _orders() -> list[OrderRequest]:
    ns: dict = {}
    exec(_SHARED, ns)
    return ns["orders"]()


@pytest.mark.parametrize("mode", ["hook", "timer"])
def test_a_sigkill_mid_batch_leaves_each_batch_whole_or_absent_and_re_recording_adds_no_duplicate(tmp_path, mode):
    path = tmp_path / "journal.sqlite"
    marker = tmp_path / "inside"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), mode, str(marker), str(KILLED_BATCH)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "orders", proc.stderr.read()[-2000:]
        if mode == "hook":
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                assert time.monotonic() < deadline
                time.sleep(0.01)
        else:  # after two committed batches, at whatever point of a later one the clock lands
            for _ in range(2):
                assert proc.stdout.readline().startswith("batch")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    batches = _batches()
    with TradeJournal.open(path) as j:
        assert len(j.open_orders(RUN)) == N_ORDERS  # the write-ahead orders survived whole
        have = set(j.fills_frame(RUN)["fill_id"])
        counts = [sum(f.fill_id in have for f in b) for b in batches]
        assert all(c in (0, BATCH) for c in counts), counts  # all or none of each transaction
        complete = [c == BATCH for c in counts]
        assert complete == sorted(complete, reverse=True)      # batches committed in order, none after a gap
        if mode == "hook":
            assert counts == [BATCH] * KILLED_BATCH + [0] * (N_BATCHES - KILLED_BATCH)
        else:
            assert 2 <= sum(complete) < N_BATCHES

        added = sum(j.record_fills(b) for b in batches)      # the restarted process records everything again
        assert added == sum(BATCH - c for c in counts)
        frame = j.fills_frame(RUN)
        assert len(frame) == N_BATCHES * BATCH and frame["fill_id"].is_unique
        assert sum(j.record_fills(b) for b in batches) == 0

        expected: dict[str, float] = {}
        for f in (f for b in batches for f in b):
            expected[f.symbol] = expected.get(f.symbol, 0.0) + f.side.sign * f.qty
        got = j.positions_from_fills(RUN)
        assert got.keys() == expected.keys()
        assert all(abs(got[s] - expected[s]) < 1e-9 for s in got)
        assert {o.client_order_id for o, _ in j.open_orders(RUN)} == {o.client_order_id for o in _orders()}
