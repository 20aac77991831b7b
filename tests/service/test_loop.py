"""The service loop on real engines and a real journal: cycles at bar closes on the clock, a failing exchange is
alerted and backed off (never a crash), a cycle over its deadline is failed in the journal, and SIGTERM to a real
``graphwiz serve --replay`` process mid-run leaves a consistent journal and exit code 0."""

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.errors import ExchangeUnavailableError
from graphwiz_trader.service.loop import (
    ProductionTradingService,
    ReplayClock,
    next_close,
)
from graphwiz_trader.strategies.session import cost_model
from graphwiz_trader.testkit.service_sinks import HttpSink
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

from .conftest import quick_settings, write_quick_config


def test_the_next_close_is_computed_from_the_clock_so_waits_do_not_drift():
    h = pd.Timedelta(hours=1)
    assert next_close(pd.Timestamp("2024-01-01 10:00:00", tz="UTC"), h) == pd.Timestamp("2024-01-01 11:00", tz="UTC")
    assert next_close(pd.Timestamp("2024-01-01 10:59:59.9", tz="UTC"), h) == pd.Timestamp("2024-01-01 11:00",
                                                                                          tz="UTC")
    assert next_close(pd.Timestamp("2024-01-01 10:07", tz="UTC"), pd.Timedelta(minutes=15)) == \
        pd.Timestamp("2024-01-01 10:15", tz="UTC")


def test_a_replay_clock_at_speed_n_runs_n_times_faster_and_max_speed_jumps():
    start = pd.Timestamp("2024-01-01", tz="UTC")
    fast = ReplayClock(start, speed=36_000.0)                  # one hour in 0.1 s
    stop = asyncio.Event()
    t0 = time.perf_counter()
    assert asyncio.run(fast.sleep_until(start + pd.Timedelta(hours=1), stop))
    assert 0.09 <= time.perf_counter() - t0 < 0.6
    jump = ReplayClock(start, speed=None)
    t0 = time.perf_counter()
    assert asyncio.run(jump.sleep_until(start + pd.Timedelta(days=30), stop))
    assert time.perf_counter() - t0 < 0.05 and jump.now() == start + pd.Timedelta(days=30)


class FlakyExchange(ReplayEngine):
    """A replay engine whose exchange is unreachable for the calls ``fail_calls`` of ``poll_updates`` (1-based)
    and hangs ``hang_s`` on the calls in ``hang_calls``."""

    def __init__(self, *a, fail_calls=(), hang_calls=(), hang_s=0.0, **kw):
        super().__init__(*a, **kw)
        self.fail_calls, self.hang_calls, self.hang_s, self.calls = set(fail_calls), set(hang_calls), hang_s, 0

    async def poll_updates(self):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise ExchangeUnavailableError(f"binance: 503 Service Unavailable (call {self.calls})")
        if self.calls in self.hang_calls:
            await asyncio.sleep(self.hang_s)
        return await super().poll_updates()


def engine(market, settings, **kw):
    start = market.bars["SYN00/USDT"].index[260]
    return FlakyExchange(market.bars, start=start, costs=cost_model(settings.execution),
                         initial_cash_quote=settings.strategy.initial_capital_quote, timeframe="1h", **kw)


def assert_consistent(journal, run_id):
    cycles = journal.cycles_frame(run_id)
    assert set(cycles["status"]) <= {"ok", "skipped", "failed"}, "a begun cycle was left running"
    orders = journal.orders_frame(run_id)
    assert set(orders["cycle"]) <= set(cycles["cycle"]), "an order without its cycle"
    fills = journal.fills_frame(run_id)
    assert set(fills["client_order_id"]) <= set(orders["client_order_id"])
    return cycles, orders


def test_a_failing_exchange_raises_one_alert_and_backs_off_exponentially_without_crashing(synthetic_market, tmp_path,
                                                                                          caplog):
    caplog.set_level(logging.INFO)
    with HttpSink() as http:
        s = quick_settings(alerts={"slack_webhook_url": f"{http.url}/hooks/slack", "dedupe_window_s": 3600})
        eng = engine(synthetic_market, s, fail_calls={3, 4, 5})
        svc = ProductionTradingService(settings=s, engine=eng, cycles=8, run_folder=tmp_path, serve_http=False)
        assert asyncio.run(svc.run()) == 0
        posts = [r for r in http.requests if r["path"] == "/hooks/slack"]
    assert svc.cycles_done == 8 and svc.failures_in_row == 0
    # three failures in a row: waits of 0.5, 1 and 2 (capped at backoff_max_s) seconds, then recovery
    waits = [float(w) for w in re.findall(r"cycle failed \d time\(s\) in a row; next attempt in ([\d.]+) s",
                                          caplog.text)]
    assert waits == [0.5, 1.0, 2.0]
    # alerted once (the two repeats within the dedupe window are logged, not sent)
    assert [a.key for a in svc.alerts.sent] == ["exception:ExchangeUnavailableError"] and svc.alerts.suppressed == 2
    assert len(posts) == 1 and "503 Service Unavailable" in posts[0]["json"]["text"]
    assert svc.metrics.errors._value.get() == 3
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    try:
        cycles, _ = assert_consistent(j, svc.state.run_id)
        assert (cycles["status"] == "failed").sum() == 3 and (cycles["status"] == "ok").sum() == 8
        assert list(cycles["cycle"]) == list(range(11))        # a failed number is not reused
    finally:
        j.close()


def test_a_cycle_past_its_deadline_is_failed_in_the_journal_and_the_loop_goes_on(synthetic_market, tmp_path):
    s = quick_settings(cycle_deadline_s=0.3)
    eng = engine(synthetic_market, s, hang_calls={2}, hang_s=30.0)
    svc = ProductionTradingService(settings=s, engine=eng, cycles=3, run_folder=tmp_path, serve_http=False)
    t0 = time.perf_counter()
    assert asyncio.run(svc.run()) == 0
    assert time.perf_counter() - t0 < 25
    assert [a.key for a in svc.alerts.sent] == ["exception:CycleDeadlineError"]
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    try:
        cycles, _ = assert_consistent(j, svc.state.run_id)
        assert list(cycles["status"]) == ["ok", "failed", "ok", "ok"]
        assert "service.cycle_deadline_s" in json.loads(cycles["summary"].iloc[1])["error"]
    finally:
        j.close()


def _get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def test_health_answers_while_the_first_model_trains_at_start(synthetic_market, tmp_path, free_port, monkeypatch):
    from graphwiz_trader.strategies.signals import ModelScores

    train = ModelScores.prepare

    def slow_train(self, buffer):                      # a training that takes 2 s more than this small one
        time.sleep(2.0)
        return train(self, buffer)

    monkeypatch.setattr(ModelScores, "prepare", slow_train)
    s = quick_settings()
    svc = ProductionTradingService(settings=s, engine=engine(synthetic_market, s), cycles=1, run_folder=tmp_path,
                                   port=free_port)
    answers: list[tuple[float, str]] = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                status, body = _get(f"http://127.0.0.1:{free_port}/health", timeout=5)
                answers.append((time.perf_counter() - t0, json.loads(body)["phase"]))
            except OSError:
                pass                                   # not listening yet, or already stopped
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        assert asyncio.run(svc.run()) == 0
    finally:
        done.set()
        prober.join(10)
    starting = [lat for lat, phase in answers if phase == "starting"]
    assert len(starting) >= 10, answers                # answered throughout the 2 s of training
    assert float(np.median(starting)) < 0.25          # at once, not after the training
    assert max(starting) < 1.0                         # none waited for half of the 2 s training (a loaded machine
    #                                                    may delay one answer by a few hundred ms)


@pytest.mark.slow
def test_sigterm_mid_run_leaves_a_consistent_journal_and_exits_0(bars_folder, tmp_path, free_port):
    cfg = write_quick_config(tmp_path / "cfg.yaml", api={"metrics_open_to_localhost": True})
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "graphwiz_trader.cli", "serve", "--config", str(cfg), "--replay", str(bars_folder),
           "--port", str(free_port), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            try:
                status, body = _get(f"http://127.0.0.1:{free_port}/health")
                health = json.loads(body)
                if (health.get("cycle") or 0) >= 5:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert health is not None and health["cycle"] >= 5, health
        status, metrics = _get(f"http://127.0.0.1:{free_port}/metrics")
        assert status == 200 and b"graphwiz_equity_quote" in metrics
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    log_text = proc.stdout.read().decode()
    assert code == 0, log_text[-3000:]
    assert "stop requested (SIGTERM)" in log_text
    j = TradeJournal.open(out / "journal.sqlite")
    try:
        run_id = j.runs()["run_id"].iloc[0]
        cycles, orders = assert_consistent(j, run_id)
        assert 5 <= len(cycles) < 900 - 260 and len(orders) > 0      # stopped mid-run, after trading
        assert (cycles["status"] == "ok").all()
    finally:
        j.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "SIGTERM" and summary["cycles"] == len(cycles)
