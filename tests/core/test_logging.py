"""Logging shows graphwiz's steps, keeps third-party libraries at WARNING, and never shows a secret."""

from __future__ import annotations

import io
import logging

import pytest

from graphwiz_trader.core.logging import THIRD_PARTY, SecretMaskFilter, configure_logging
from graphwiz_trader.core.secrets import forget_secrets, register_secret

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


@pytest.fixture
def app_logging(monkeypatch):
    """configure_logging writing to a buffer; every logger level and root handler restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    for h in saved_handlers:  # a command run by an earlier test left its handler: start without it
        if getattr(h, "_graphwiz", False):
            root.removeHandler(h)
    names = ["graphwiz_trader", *THIRD_PARTY, "ccxt.base.exchange", "ccxt.async_support.base.exchange"]
    saved_levels = {n: logging.getLogger(n).level for n in names}
    buf = io.StringIO()
    monkeypatch.setenv("BINANCE_API_KEY", API_KEY)
    forget_secrets()
    yield buf
    forget_secrets()
    for h in list(root.handlers):
        if h not in saved_handlers:
            root.removeHandler(h)
    for h in saved_handlers:
        if h not in root.handlers:
            root.addHandler(h)
    root.setLevel(saved_level)
    for n, level in saved_levels.items():
        logging.getLogger(n).setLevel(level)


def test_verbose_shows_graphwiz_debug_but_keeps_third_party_libraries_at_warning(app_logging):
    configure_logging(verbose=True, stream=app_logging)
    logging.getLogger("graphwiz_trader.data.store").debug("merged %d rows", 12)
    logging.getLogger("ccxt.base.exchange").debug("GET https://api.binance.com, Request: %s", {"X": 1})
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    out = app_logging.getvalue()
    assert "DEBUG graphwiz_trader.data.store: merged 12 rows" in out
    assert "ccxt" not in out and "urllib3" not in out
    for name in ("ccxt", "ccxt.async_support.base.exchange", "urllib3", "neo4j", "qlib", "mlflow", "asyncio"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


def test_without_verbose_graphwiz_logs_info_in_one_line(app_logging):
    configure_logging(verbose=False, stream=app_logging)
    logging.getLogger("graphwiz_trader.x").debug("hidden")
    logging.getLogger("graphwiz_trader.x").info("step %s done", "import")
    lines = app_logging.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO graphwiz_trader.x: step import done")


def test_configuring_twice_keeps_one_handler(app_logging):
    first = configure_logging(verbose=False, stream=app_logging)
    second = configure_logging(verbose=True, stream=app_logging)
    assert first is second
    assert sum(getattr(h, "_graphwiz", False) for h in logging.getLogger().handlers) == 1


def test_a_ccxt_debug_line_with_the_api_key_header_is_masked_even_when_ccxt_is_lowered(app_logging):
    configure_logging(verbose=True, stream=app_logging)
    ccxt_log = logging.getLogger("ccxt.base.exchange")
    ccxt_log.setLevel(logging.DEBUG)  # someone lowers it anyway: the filter is the second line of defence
    headers = {"X-MBX-APIKEY": API_KEY, "Content-Type": "application/json"}
    ccxt_log.debug("%s %s, Request: %s %s", "GET", "https://api.binance.com/api/v3/account", headers, None)
    out = app_logging.getvalue()
    assert "Request: {'X-MBX-APIKEY': '***', 'Content-Type': 'application/json'}" in out
    assert API_KEY not in out


def test_a_registered_secret_at_debug_is_masked_in_message_args_and_exception(app_logging):
    configure_logging(verbose=True, stream=app_logging)
    register_secret("hunter2-graph-password")
    log = logging.getLogger("graphwiz_trader.graph")
    log.debug("password is hunter2-graph-password")
    log.debug("connecting with %s", "hunter2-graph-password")
    try:
        raise RuntimeError("auth failed for hunter2-graph-password")
    except RuntimeError:
        log.exception("could not connect to bolt://neo4j:hunter2-graph-password@db:7687")
    out = app_logging.getvalue()
    assert "hunter2-graph-password" not in out
    assert "password is ***" in out and "connecting with ***" in out
    assert "RuntimeError: auth failed for ***" in out
    assert "could not connect to bolt://db:7687" in out


def test_the_filter_masks_a_record_for_any_handler():
    register_secret("abcd-secret-token")
    try:
        record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "token=%s", ("abcd-secret-token",), None)
        assert SecretMaskFilter().filter(record) is True
        assert record.getMessage() == "token=***"
    finally:
        forget_secrets()
