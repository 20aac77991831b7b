"""Alerts: logged always; delivered over real HTTP (Telegram Bot API, Slack webhook) and SMTP servers on 127.0.0.1;
deduplicated per key within the window, rate-limited per hour; triggers computed from a cycle; no secret in logs."""

import asyncio
import logging

from graphwiz_trader.config.settings import AlertSettings, TelegramSettings
from graphwiz_trader.errors import ExchangeUnavailableError
from graphwiz_trader.service.alerts import Alert, AlertManager
from graphwiz_trader.testkit.service_sinks import HttpSink, SmtpSink

TOKEN = "123456:tok-SECRET-abcdef"


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def manager(http=None, smtp=None, clock=None, **alerts):
    a = AlertSettings(**({"slack_webhook_url": f"{http.url}/hooks/T0/B0/slacksecret"} if http else {}),
                      **({"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_starttls": False,
                          "email_to": ["ops@example.org"]} if smtp else {}), **alerts)
    tg = TelegramSettings(bot_token=TOKEN, chat_ids=[11, 22], api_url=http.url) if http else TelegramSettings()
    return AlertManager(a, tg, clock=clock or FakeClock(), run_id="r1", quality_window_bars=10)


def test_an_alert_reaches_telegram_chats_slack_and_email_and_the_log_without_secrets(caplog):
    caplog.set_level(logging.INFO)
    with HttpSink() as http, SmtpSink() as smtp:
        m = manager(http, smtp)
        assert m.channels == ["telegram", "slack", "email"]
        sent = asyncio.run(m.send(m.exception(ExchangeUnavailableError("binance down"), "cycle")))
        asyncio.run(m.close())
        tg = http.sent("/sendMessage")
        assert sent and sorted(b["chat_id"] for b in tg) == [11, 22]
        assert all("ExchangeUnavailableError: binance down" in b["text"] for b in tg)
        assert any(r["path"] == f"/bot{TOKEN}/sendMessage" for r in http.requests)
        slack = [r for r in http.requests if r["path"] == "/hooks/T0/B0/slacksecret"]
        assert len(slack) == 1 and "binance down" in slack[0]["json"]["text"]
        assert len(smtp.messages) == 1 and smtp.envelopes[0]["to"] == ["<ops@example.org>"]
        assert smtp.messages[0]["Subject"] == "[graphwiz critical] error in the service loop (cycle)"
    assert "ALERT exception:ExchangeUnavailableError" in caplog.text
    assert TOKEN not in caplog.text and "slacksecret" not in caplog.text


def test_the_same_key_is_sent_once_per_window_and_again_after_it():
    clock = FakeClock()
    m = manager(clock=clock, dedupe_window_s=600)
    a = Alert("drawdown", "critical", "drawdown", "12%")
    results = [asyncio.run(m.send(a))]
    clock.t += 599
    results.append(asyncio.run(m.send(a)))
    results.append(asyncio.run(m.send(Alert("stale_data", "warning", "stale", "old"))))   # another key passes
    clock.t += 1
    results.append(asyncio.run(m.send(a)))
    assert results == [True, False, True, True] and m.suppressed == 1


def test_at_most_max_per_hour_alerts_are_sent_in_any_rolling_hour():
    clock = FakeClock()
    m = manager(clock=clock, dedupe_window_s=0, max_per_hour=3)
    sent = []
    for i in range(5):
        sent.append(asyncio.run(m.send(Alert(f"k{i}", "warning", "t", "x"))))
        clock.t += 60
    clock.t = 1000.0 + 3600            # the first one left the hour
    sent.append(asyncio.run(m.send(Alert("k5", "warning", "t", "x"))))
    assert sent == [True, True, True, False, False, True]


def test_a_failing_channel_is_logged_and_never_raises(caplog):
    with HttpSink(status=500) as http:
        m = manager(http)
        assert asyncio.run(m.send(Alert("x", "warning", "t", "x")))
        asyncio.run(m.close())
    assert m.delivery_failures == 1 and "the slack channel failed" in caplog.text
    assert "slacksecret" not in caplog.text


def snapshot(**kw):
    base = {"drawdown": 0.0, "model_accuracy": None, "model_quality_bars": 0, "breakers": {"drawdown": False},
            "data_age_s": 10.0, "reasons": [], "model_version": "m1"}
    base.update(kw)
    return base


def test_cycle_triggers_large_loss_drawdown_accuracy_breaker_and_stale_data():
    m = manager(large_loss=0.03, drawdown=0.1, min_accuracy=0.45, stale_data_s=3600)
    assert m.check_cycle({"equity": 100.0}, snapshot()) == []
    keys = [a.key for a in m.check_cycle({"equity": 96.0, "reasons": []},                 # -4% in one cycle
                                         snapshot(drawdown=0.12, model_accuracy=0.40, model_quality_bars=10,
                                                  breakers={"drawdown": True}, reasons=["drawdown 12%"],
                                                  data_age_s=4000.0))]
    assert keys == ["large_loss", "drawdown", "accuracy_drop", "breaker:drawdown", "stale_data"]
    # a breaker still tripped is not a new trip; accuracy over a window not yet full does not count
    keys = [a.key for a in m.check_cycle({"equity": 95.9}, snapshot(breakers={"drawdown": True},
                                                                      model_accuracy=0.1, model_quality_bars=9))]
    assert keys == []
