"""The ``service:`` section: every limit has a range its docstring states, secrets come from the environment and
never show in a repr, an allow-list can be one comma-separated variable, and the shipped file loads."""

from pathlib import Path

import annotated_types
import pytest

from graphwiz_trader.config import load_config
from graphwiz_trader.config.loader import allowed_range
from graphwiz_trader.config.settings import (
    AlertSettings,
    RetrainSettings,
    ServiceSettings,
    TelegramSettings,
)
from graphwiz_trader.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path, text, env=None):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p, env=env or {})


@pytest.mark.parametrize("model", [ServiceSettings, AlertSettings, TelegramSettings, RetrainSettings])
def test_every_numeric_service_limit_has_both_bounds_stated_in_its_docstring(model):
    for name, info in model.model_fields.items():
        if info.annotation not in (int, float, int | None, float | None):
            continue
        kinds = {type(m) for m in info.metadata}
        assert kinds & {annotated_types.Gt, annotated_types.Ge}, f"{model.__name__}.{name} has no lower bound"
        assert kinds & {annotated_types.Lt, annotated_types.Le}, f"{model.__name__}.{name} has no upper bound"
        doc = " ".join(model.__doc__.split())
        assert f"``{name}``" in doc and allowed_range(info) in doc, f"{model.__name__} docstring lacks {name}"


@pytest.mark.parametrize("text, message", [
    ("service:\n  port: 70000\n", r"'service\.port': .*\(allowed range \[1, 65535\]\)"),
    ("service:\n  cycle_deadline_s: 0\n", r"'service\.cycle_deadline_s': .*\(allowed range \(0, 86400\]\)"),
    ("service:\n  alerts:\n    drawdown: 2\n", r"'service\.alerts\.drawdown': .*\(allowed range \(0, 1\]\)"),
    ("service:\n  retrain:\n    margin: -1\n", r"'service\.retrain\.margin': .*\(allowed range \[0, 1\]\)"),
    ("service:\n  backoff_initial_s: 60\n  backoff_max_s: 10\n", r"backoff_max_s 10.0 is below backoff_initial_s"),
    ("service:\n  telegrm: {}\n", r"service\.telegrm"),
])
def test_a_bad_service_value_fails_at_load_naming_its_path(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_secrets_and_the_chat_allow_list_come_from_the_environment_and_secrets_never_show(tmp_path):
    text = ("service:\n  telegram:\n    bot_token: ${TG}\n    chat_ids: ${IDS}\n  alerts:\n"
            "    slack_webhook_url: ${HOOK}\n    smtp_password: ${PW:-}\n    email_to: ${TO:-}\n")
    env = {"TG": "123:secret-token", "IDS": "11, -42", "HOOK": "https://hooks.example/T0/B0/xyzsecret"}
    s = load(tmp_path, text, env).service
    assert s.telegram.chat_ids == [11, -42] and s.alerts.email_to == [] and s.alerts.smtp_password is None
    assert s.telegram.bot_token.get_secret_value() == "123:secret-token"
    shown = repr(s) + str(s.model_dump())
    assert "secret-token" not in shown and "xyzsecret" not in shown


def test_a_webhook_that_is_not_a_url_is_refused_without_echoing_it(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, "service:\n  alerts:\n    slack_webhook_url: not-a-url-secret\n")
    assert "must be an http(s) URL" in str(e.value) and "not-a-url-secret" not in str(e.value)


def test_the_shipped_config_has_a_service_section_with_local_defaults():
    s = load_config(ROOT / "config" / "trading_config.yaml", env={}).service
    assert s.host == "127.0.0.1" and s.port == 8000 and s.engine == "paper" and s.run_id == "service"
    assert s.telegram.bot_token is None and s.alerts.slack_webhook_url is None and not s.retrain.enabled
