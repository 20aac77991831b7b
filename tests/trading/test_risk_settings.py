"""The risk section of the config: every new limit has an allowed range that a bad value is named against, an
empty value switches an optional limit off, and the shipped config loads with the values it documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphwiz_trader.config import load_config
from graphwiz_trader.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p, env={})


@pytest.mark.parametrize("key, value, interval", [
    ("max_order_notional_quote", "0", r"\(0, 1000000000\]"),
    ("price_band_bps", "9000", r"\(0, 5000\]"),
    ("max_orders_per_cycle", "0", r"\[1, 10000\]"),
    ("stop_loss", "0.95", r"\(0, 0.9\]"),
    ("take_profit", "-0.1", r"\(0, 10\]"),
    ("min_model_accuracy", "1.5", r"\[0, 1\]"),
    ("min_model_ic", "-2", r"\[-1, 1\]"),
    ("model_quality_window_bars", "0", r"\[1, 100000\]"),
])
def test_a_risk_limit_outside_its_range_fails_at_load_naming_the_key_and_the_range(tmp_path, key, value, interval):
    with pytest.raises(ConfigError, match=rf"'risk\.{key}': .*\(allowed range {interval}\)"):
        load(tmp_path, f"risk:\n  {key}: {value}\n")


def test_an_empty_optional_limit_is_off(tmp_path):
    cfg = load(tmp_path, "risk:\n  stop_loss:\n  take_profit: ''\n  min_model_ic: 0.02\n")
    assert cfg.risk.stop_loss is None and cfg.risk.take_profit is None and cfg.risk.min_model_ic == 0.02


def test_the_shipped_config_sets_the_documented_risk_limits():
    r = load_config(ROOT / "config" / "trading_config.yaml", env={}).risk
    assert (r.max_order_notional_quote, r.price_band_bps, r.max_orders_per_cycle) == (1_000_000.0, 200.0, 50)
    assert (r.stop_loss, r.take_profit, r.min_model_accuracy, r.min_model_ic) == (0.10, None, 0.45, -0.10)
    assert (r.model_quality_window_bars, r.allow_short) == (168, False)
