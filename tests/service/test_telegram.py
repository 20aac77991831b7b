"""Telegram commands over a real HTTP Bot API server on 127.0.0.1, against a real strategy's service state:
allow-listed chats get answers that match the state; other chats get none (a log line); pause and kill land in
the run's journal flags; the bot token never appears in the log."""

import asyncio
import logging

import pytest

from graphwiz_trader.config.settings import TelegramSettings
from graphwiz_trader.service.state import ServiceState
from graphwiz_trader.service.telegram import TelegramCommands
from graphwiz_trader.strategies import create_qlib_strategy_v2
from graphwiz_trader.strategies.session import cost_model
from graphwiz_trader.testkit.service_sinks import HttpSink
from graphwiz_trader.trading.engines.replay import ReplayEngine
from graphwiz_trader.trading.journal import TradeJournal

from .conftest import quick_settings

TOKEN = "987654:bot-token-SECRET"
OWNER, STRANGER = 4242, 777


def test_commands_are_answered_for_allow_listed_chats_only_and_controls_use_the_journal(synthetic_market, tmp_path,
                                                                                      caplog):
    caplog.set_level(logging.INFO)
    s = quick_settings()
    j = TradeJournal.open(tmp_path / "journal.sqlite")
    eng = ReplayEngine(synthetic_market.bars, start=synthetic_market.bars["SYN00/USDT"].index[260],
                       costs=cost_model(s.execution), timeframe="1h")
    strat = create_qlib_strategy_v2(eng, sorted(synthetic_market.bars), settings=s, scores=synthetic_market.signal,
                                    graph_store=False, journal=j, run_id="tg")
    state = ServiceState(strat, clock=eng.now)
    with HttpSink() as api:
        bot = TelegramCommands(TelegramSettings(bot_token=TOKEN, chat_ids=[OWNER], api_url=api.url,
                                                poll_timeout_s=0), state)

        async def go():
            await strat.start()
            for _ in range(4):
                state.on_cycle(await strat.run_cycle())
            for chat, text in [(STRANGER, "/status"), (OWNER, "/status"), (OWNER, "/positions"), (OWNER, "/pnl"),
                               (OWNER, "/pause maintenance window"), (STRANGER, "/resume"),
                               (OWNER, "/kill stop everything")]:
                api.push_message(chat, text)
            n = await bot.poll_once()
            n += await bot.poll_once()                    # nothing new: the offset moved past every update
            await bot.close()
            return n

        n = asyncio.run(go())
        replies = api.sent()
    j_state = j.run_state("tg")
    snap = state.snapshot()
    j.close()
    assert n == 7 and bot.answered == 5 and bot.ignored == 2
    assert all(r["chat_id"] == OWNER for r in replies)
    status, positions, pnl, pause, kill = (r["text"] for r in replies)
    assert status.startswith(f"run tg: cycle 3 at {snap['as_of']}") and f"{snap['equity']:,.2f}" in status
    held = [p for p in state.positions()]
    assert len(positions.splitlines()) == len(held) > 0 and all(p["symbol"] in positions for p in held)
    assert pnl.startswith(f"equity {snap['equity']:,.2f}")
    assert pause == "paused: paused (maintenance window)"
    assert kill.startswith("killed (stop everything): ")
    assert j_state["killed"] and j_state["paused"] and j_state["reason"] == "stop everything"
    assert f"/status from chat {STRANGER} ignored" in caplog.text and f"/resume from chat {STRANGER} ignored" in caplog.text
    assert TOKEN not in caplog.text


def test_a_bot_without_a_token_is_refused_clearly():
    from graphwiz_trader.service.telegram import TelegramError

    with pytest.raises(TelegramError, match="bot_token is not set"):
        TelegramCommands(TelegramSettings(), state=None)
