"""graphwiz paper (offline replay), graphwiz live (refusals) and graphwiz trading status|pause|resume|kill."""

import json

import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.trading.journal import TradeJournal

CONFIG = """
strategy:
  symbols: [BTC/USDT, ETH/USDT]
  use_graph_features: false
  train_window_bars: 500
  cov_window_bars: 120
  retrain_interval_hours:
risk:
  max_drawdown: 0.5
  daily_loss_limit: 0.3
execution:
  default_strategy: TWAP
  horizon_bars: 2
qlib:
  provider_uri: {qlib}
"""


@pytest.fixture()
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHWIZ_RUNS_DIR", str(tmp_path / "runs"))
    p = tmp_path / "cfg.yaml"
    p.write_text(CONFIG.format(qlib=tmp_path / "qlib"))
    return p


@pytest.fixture()
def replayed(config, tmp_path):
    out = tmp_path / "run"
    code = main(["paper", "--config", str(config), "--synthetic", "--synthetic-assets", "6", "--cycles", "40",
                 "--out", str(out), "--json", str(tmp_path / "s.json"), "--no-progress"])
    return code, out, json.loads((tmp_path / "s.json").read_text())


def test_paper_replay_trains_on_the_warm_up_trades_and_reports_beside_equal_weight(replayed):
    code, out, s = replayed
    assert code == 0 and s["engine"] == "replay" and s["cycles"] == 40
    assert s["counts"]["orders"] > 0 and s["counts"]["fills"] > 0
    assert s["counts"]["journal_orders"] == s["counts"]["orders"] and s["counts"]["journal_fills"] == s["counts"]["fills"]
    for side in ("strategy_metrics", "equal_weight_metrics"):
        m = s[side]
        assert {"final_equity", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "max_drawdown"} <= set(m)
    assert s["model"].startswith("alpha158-") and s["warmup"]["warmup_bars"] >= 500
    first = pd.Timestamp(s["period"]["first_decision"])
    assert pd.Timestamp(s["warmup"]["history_end"]) < first          # trained on bars before the first decision
    cycles = pd.read_parquet(out / "cycles.parquet")
    assert len(cycles) == 40 and cycles["equity"].iloc[-1] == pytest.approx(s["strategy_metrics"]["final_equity"])
    j = TradeJournal.open(out / "journal.sqlite")
    try:
        assert len(j.orders_frame(s["run_id"])) == s["counts"]["orders"]
        assert len(j.model_versions_frame(s["run_id"])) == 1
    finally:
        j.close()


def test_trading_commands_pause_resume_and_kill_a_run_through_its_journal(replayed, capsys):
    _, out, s = replayed
    journal = str(out / "journal.sqlite")
    assert main(["trading", "status", "--journal", journal]) == 0
    assert f"run {s['run_id']}" in capsys.readouterr().out
    assert main(["trading", "pause", "--journal", journal, "--reason", "maintenance"]) == 0
    assert main(["trading", "kill", "--journal", journal, "--flatten", "--reason", "test"]) == 0
    j = TradeJournal.open(journal)
    try:
        st = j.run_state(s["run_id"])
        assert st["paused"] and st["killed"] and st["reason"] == "flatten: test"
        assert main(["trading", "resume", "--journal", journal]) == 0
        st = j.run_state(s["run_id"])
        assert not st["paused"] and not st["killed"]
        kinds = list(j.risk_events_frame(s["run_id"])["kind"])
        assert kinds[-3:] == ["pause", "kill", "resume"]
    finally:
        j.close()


def test_trading_status_names_the_runs_there_when_the_run_id_is_unknown(replayed, capsys):
    _, out, s = replayed
    assert main(["trading", "status", "--journal", str(out / "journal.sqlite"), "--run-id", "nope"]) == 1
    assert f"no run 'nope' in the journal; runs there: {s['run_id']}" in capsys.readouterr().err


def test_live_refuses_to_start_without_keys(config, capsys, monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    assert main(["live", "--config", str(config), "--sandbox"]) == 1
    assert "live trading needs exchanges.binance.api_key and secret" in capsys.readouterr().err


def test_live_refuses_real_money_without_the_confirmation_flag_and_never_shows_the_keys(config, capsys, monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k" * 24)
    monkeypatch.setenv("BINANCE_API_SECRET", "s" * 24)
    text = config.read_text() + "exchanges:\n  binance:\n    api_key: ${BINANCE_API_KEY}\n    secret: ${BINANCE_API_SECRET}\n"
    config.write_text(text)
    assert main(["live", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "refusing to trade real money on binance" in err and "--confirm-real-money" in err
    assert "k" * 24 not in err and "s" * 24 not in err
