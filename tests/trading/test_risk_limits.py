"""Portfolio limits and controls: drawdown and daily-loss breakers trip at the bar a hand computation says, the
model-quality floor uses the metrics' own definitions, stops and targets exit whole positions, breakers and the
kill switch block new orders but let exits through, and every decision lands in the journal with its reason."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.config.settings import RiskSettings
from graphwiz_trader.models.metrics import evaluate_predictions, ic_series
from graphwiz_trader.trading.journal import TradeJournal
from graphwiz_trader.trading.risk import (
    EXIT_LEG,
    FLATTEN_LEG,
    ModelQualityTracker,
    RiskError,
    RiskManager,
    request_pause,
    request_resume,
)
from graphwiz_trader.trading.types import AccountSnapshot, MarketRules, OrderRequest, Side, client_order_id

RUN = "limits-run"
DAY = pd.Timestamp("2024-06-03", tz="UTC")
RULES = {s: MarketRules(s, min_qty=0.0, min_notional_quote=1.0, qty_step=None) for s in
         ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")}


def settings(**kw) -> RiskSettings:
    base = dict(max_position_weight=1.0, max_gross_leverage=1.0, cash_buffer=0.0, max_drawdown=0.2,
                daily_loss_limit=0.5, max_order_notional_quote=1e9, max_orders_per_cycle=100)
    return RiskSettings(**{**base, **kw})


def test_the_drawdown_breaker_trips_at_the_bar_the_peak_to_equity_ratio_reaches_the_limit_and_stays_tripped():
    equity = [100_000.0, 110_000.0, 104_500.0, 99_000.0, 88_000.0, 95_000.0, 111_000.0]
    times = [DAY + pd.Timedelta(days=i) for i in range(len(equity))]
    # independent: exact rationals; trips where equity / running peak <= 0.8 first, then latched
    peak, expected_first = Fraction(0), None
    for i, e in enumerate(equity):
        peak = max(peak, Fraction(e))
        if expected_first is None and Fraction(e) / peak <= Fraction(4, 5):
            expected_first = i
    assert expected_first == 4 and 1 - 88_000.0 / 110_000.0 < 0.2  # float rounding: the slack is needed
    rm = RiskManager(settings())
    tripped = [rm.update(e, t)["breakers"]["drawdown"]["tripped"] for e, t in zip(equity, times)]
    assert tripped == [i >= expected_first for i in range(len(equity))]
    st = rm.state()
    assert st["breakers"]["drawdown"]["since"] == times[4] and st["halted"]
    assert st["reasons"] == ["drawdown 20.00% from the peak 110000 (equity 88000) reached max_drawdown 20.00%"]
    assert st["peak_equity"] == 111_000.0 and st["drawdown"] == 0.0  # a new peak: still halted until resume
    rm.resume(ts=times[-1])
    assert not rm.state()["halted"]


def test_the_daily_loss_is_measured_from_the_equity_at_the_utc_day_start_and_clears_the_next_day():
    rm = RiskManager(settings(daily_loss_limit=0.05, max_drawdown=0.9))
    path = [("2024-06-03 00:00", 100_000.0), ("2024-06-03 10:00", 96_000.0), ("2024-06-03 15:00", 95_000.0),
            ("2024-06-03 20:00", 97_000.0), ("2024-06-04 01:00", 96_500.0), ("2024-06-04 05:00", 92_000.0)]
    out = [rm.update(e, pd.Timestamp(t, tz="UTC")) for t, e in path]
    # day 1 reference: the 00:00 update (100,000); day 2: the last update at or before 00:00 (20:00, 97,000)
    assert [o["day_start_equity"] for o in out] == [100_000.0] * 4 + [97_000.0] * 2
    assert [o["daily_loss"] for o in out] == pytest.approx([0.0, 0.04, 0.05, 0.03, 1 - 96_500 / 97_000,
                                                            1 - 92_000 / 97_000], abs=1e-15)
    assert [o["breakers"]["daily_loss"]["tripped"] for o in out] == [False, False, True, True, False, True]


def test_the_model_quality_tracker_agrees_with_the_research_metrics_over_its_window():
    rng = np.random.default_rng(11)
    syms = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT"]
    times = pd.date_range("2024-06-01", periods=9, freq="h", tz="UTC")
    scores = pd.DataFrame(rng.normal(size=(9, 5)), index=times, columns=syms)
    realized = pd.DataFrame(rng.normal(size=(9, 5)), index=times, columns=syms)
    realized.iloc[2, 1] = 0.0           # no direction: left out of accuracy
    scores.iloc[3, 4] = np.nan          # a missing score: the row is left out
    tr = ModelQualityTracker(window_bars=6)
    for t in times:
        tr.add(t, scores.loc[t], realized.loc[t])
    last = times[-6:]

    def panel(df: pd.DataFrame) -> pd.Series:
        return df.loc[last].stack().rename_axis(["datetime", "instrument"])

    ref = evaluate_predictions(panel(scores), panel(realized), classification=False)
    q = tr.quality()
    assert q["n_bars"] == 6
    assert q["accuracy"] == pytest.approx(ref["accuracy"], abs=1e-12)
    assert q["ic"] == pytest.approx(ic_series(panel(scores), panel(realized)).mean(), abs=1e-12)
    with pytest.raises(RiskError, match="in time order"):
        tr.add(times[0], scores.iloc[0], realized.iloc[0])


def test_the_model_quality_floor_trips_once_the_window_is_full_and_clears_when_quality_recovers():
    rm = RiskManager(settings(min_model_accuracy=0.5, min_model_ic=0.0, model_quality_window_bars=24))
    t = DAY
    assert not rm.update(1e5, t, {"accuracy": 0.3, "ic": -0.2, "n_bars": 23})["halted"]  # window not full
    st = rm.update(1e5, t + pd.Timedelta(hours=1), {"accuracy": 0.48, "ic": 0.01, "n_bars": 24})
    assert [k for k, b in st["breakers"].items() if b["tripped"]] == ["model_accuracy"]
    assert st["reasons"] == ["model accuracy 0.4800 over the last 24 bars is below the floor min_model_accuracy 0.5000"]
    assert not rm.update(1e5, t + pd.Timedelta(hours=2), {"accuracy": 0.5, "ic": 0.0, "n_bars": 24})["halted"]


def test_stops_and_targets_exit_whole_positions_with_their_own_client_ids():
    rm = RiskManager(settings(stop_loss=0.10, take_profit=0.30, allow_short=True), run_id=RUN)
    positions = {"BTC/USDT": 0.5, "ETH/USDT": 10.0, "SOL/USDT": -100.0, "XRP/USDT": 1_000.0}
    entry = {"BTC/USDT": 50_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 100.0, "XRP/USDT": 0.5}
    prices = {"BTC/USDT": 45_000.0,   # -10% exactly: stop (45000/50000 - 1 is -0.09999999999999998 in floats)
              "ETH/USDT": 2_600.0,    # +30%: target
              "SOL/USDT": 111.0,      # short, price +11%: the position lost 11%: stop
              "XRP/USDT": 0.4505}     # -9.9%: holds
    t = DAY + pd.Timedelta(hours=5)
    out = rm.exit_orders(positions, entry, prices, RUN, 42, t)
    assert [(o.symbol, o.side, o.qty, o.reason) for o in out] == [
        ("BTC/USDT", Side.SELL, 0.5, "stop_loss"), ("ETH/USDT", Side.SELL, 10.0, "take_profit"),
        ("SOL/USDT", Side.BUY, 100.0, "stop_loss")]
    assert all(o.client_order_id == client_order_id(RUN, 42, o.symbol, EXIT_LEG) and o.decided_utc == t for o in out)
    assert [e["detail"] for e in rm.events] == [
        "BTC/USDT: long 0.5 entered at 50000, last 45000: return -10.00% vs stop_loss -10.00%",
        "ETH/USDT: long 10 entered at 2000, last 2600: return +30.00% vs take_profit +30.00%",
        "SOL/USDT: short 100 entered at 100, last 111: return -11.00% vs stop_loss -10.00%"]
    with pytest.raises(RiskError, match=r"missing for XRP/USDT"):
        rm.exit_orders(positions, {k: v for k, v in entry.items() if k != "XRP/USDT"}, prices, RUN, 43, t)


def test_a_tripped_breaker_blocks_new_orders_but_lets_a_stop_loss_exit_through():
    rm = RiskManager(settings(stop_loss=0.1), run_id=RUN)
    rm.update(100_000.0, DAY)
    rm.update(79_000.0, DAY + pd.Timedelta(days=1))
    acc = AccountSnapshot(cash_quote=50_000.0, positions={"BTC/USDT": 0.58}, ts_utc=DAY + pd.Timedelta(days=1))
    prices = {"BTC/USDT": 50_000.0, "ETH/USDT": 2_000.0}
    exits = rm.exit_orders({"BTC/USDT": 0.58}, {"BTC/USDT": 60_000.0}, prices, RUN, 2, acc.ts_utc)
    new = OrderRequest(client_order_id(RUN, 2, "ETH/USDT"), RUN, 2, "ETH/USDT", Side.BUY, 1.0, acc.ts_utc)
    dec = rm.check_orders([new] + exits, acc, prices, RULES, cycle=2)
    assert [o.reason for o in dec.accepted] == ["stop_loss"]
    assert dec.rejected[0][1] == ("ETH/USDT: trading halted (drawdown 21.00% from the peak 100000 (equity 79000) "
                                  "reached max_drawdown 20.00%); only exits that reduce a position pass")


def test_the_kill_switch_halts_returns_the_flatten_orders_and_they_pass_the_checks(tmp_path):
    with TradeJournal.open(tmp_path / "j.sqlite") as j:
        j.start_run(RUN, "s", "paper", {}, DAY)
        rm = RiskManager(settings(), journal=j, run_id=RUN)
        t = DAY + pd.Timedelta(hours=3)
        flat = rm.kill(flatten=True, positions={"BTC/USDT": 0.2, "ETH/USDT": 0.0, "SOL/USDT": -3.0}, cycle=9, ts=t,
                       reason="operator: exchange incident")
        assert [(o.symbol, o.side, o.qty, o.leg, o.reason) for o in flat] == [
            ("BTC/USDT", Side.SELL, 0.2, FLATTEN_LEG, "kill"), ("SOL/USDT", Side.BUY, 3.0, FLATTEN_LEG, "kill")]
        st = j.run_state(RUN)
        assert st["killed"] and st["reason"] == "operator: exchange incident"
        acc = AccountSnapshot(cash_quote=10_000.0, positions={"BTC/USDT": 0.2, "SOL/USDT": -3.0}, ts_utc=t)
        prices = {"BTC/USDT": 50_000.0, "SOL/USDT": 100.0, "ETH/USDT": 2_000.0}
        more = OrderRequest(client_order_id(RUN, 9, "ETH/USDT"), RUN, 9, "ETH/USDT", Side.BUY, 1.0, t)
        dec = RiskManager(settings(allow_short=True), journal=j, run_id=RUN).check_orders(
            flat + [more], acc, prices, RULES, cycle=9)  # a fresh manager reads the kill flag from the journal
        assert [o.symbol for o in dec.accepted] == ["BTC/USDT", "SOL/USDT"]
        assert dec.rejected[0][1].startswith("ETH/USDT: trading halted (kill switch (operator: exchange incident))")
        ev = j.risk_events_frame(RUN)
        assert list(ev["kind"])[:1] == ["kill"] and ev.iloc[0]["action"] == "cancel open orders; flatten 2 position(s)"
        assert "order_rejected" in set(ev["kind"]) and "orders_checked" in set(ev["kind"])


def test_every_decision_is_journaled_with_its_reason(tmp_path):
    with TradeJournal.open(tmp_path / "j.sqlite") as j:
        j.start_run(RUN, "s", "replay", {}, DAY)
        rm = RiskManager(settings(max_drawdown=0.1), journal=j, run_id=RUN)
        acc = AccountSnapshot(cash_quote=1_000.0, positions={}, ts_utc=DAY)
        small = OrderRequest(client_order_id(RUN, 1, "XRP/USDT"), RUN, 1, "XRP/USDT", Side.BUY, 1.0, DAY)
        rm.check_orders([small], acc, {"XRP/USDT": 0.5}, RULES, cycle=1)
        rm.update(1_000.0, DAY)
        rm.update(880.0, DAY + pd.Timedelta(hours=1))
        ev = j.risk_events_frame(RUN)
        assert list(zip(ev["kind"], ev["detail"], ev["action"])) == [
            ("order_rejected", "XRP/USDT: order notional 0.5 is below the exchange minimum notional 1",
             f"reject {small.client_order_id}"),
            ("orders_checked", "cycle 1: 0 accepted, 1 rejected of 1", "submit the accepted"),
            ("breaker_tripped", ("drawdown: drawdown 12.00% from the peak 1000 (equity 880) reached max_drawdown "
                                 "10.00%"), "halt new orders")]
        assert list(ev["cycle"].iloc[:2]) == [1, 1] and pd.isna(ev["cycle"].iloc[2])


def test_another_process_pauses_and_resumes_a_run_through_the_journal(tmp_path):
    path = tmp_path / "j.sqlite"
    with TradeJournal.open(path) as j, TradeJournal.open(path) as operator:
        j.start_run(RUN, "s", "live", {}, DAY)
        rm = RiskManager(settings(), journal=j, run_id=RUN)
        rm.update(100.0, DAY)
        rm.update(70.0, DAY + pd.Timedelta(hours=1))          # drawdown 30%: tripped
        request_pause(operator, RUN, "maintenance")
        acc = AccountSnapshot(cash_quote=100.0, positions={}, ts_utc=DAY)
        o = OrderRequest(client_order_id(RUN, 3, "SOL/USDT"), RUN, 3, "SOL/USDT", Side.BUY, 0.1, DAY)
        dec = rm.check_orders([o], acc, {"SOL/USDT": 100.0}, RULES, cycle=3)
        assert "paused (maintenance)" in dec.rejected[0][1] and "drawdown 30.00%" in dec.rejected[0][1]
        request_resume(operator, RUN)
        assert len(rm.check_orders([o], acc, {"SOL/USDT": 100.0}, RULES, cycle=4).accepted) == 1
        assert rm.state()["peak_equity"] == 70.0  # the drawdown restarts from the equity at the resume


def test_a_restarted_manager_restores_its_drawdown_peak_from_the_journal(tmp_path):
    with TradeJournal.open(tmp_path / "j.sqlite") as j:
        j.start_run(RUN, "s", "paper", {}, DAY)
        for h, e in enumerate([100_000.0, 120_000.0, 110_000.0]):
            j.record_equity(RUN, DAY + pd.Timedelta(hours=h), e, e, 0.0, 0.0)
        rm = RiskManager(settings(), journal=j, run_id=RUN)
        st = rm.update(95_000.0, DAY + pd.Timedelta(hours=3))  # 1 - 95/120 = 20.8%: above 20%
        assert st["peak_equity"] == 120_000.0 and st["breakers"]["drawdown"]["tripped"]
        with pytest.raises(RiskError, match="before the previous one"):
            rm.update(95_000.0, DAY)
