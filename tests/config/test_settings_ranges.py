"""Every limit in the settings has an allowed range; a value outside it fails at load, naming path and range."""

from pathlib import Path

import annotated_types
import pytest

from graphwiz_trader.config import load_config
from graphwiz_trader.config.loader import allowed_range
from graphwiz_trader.config.settings import ExecutionSettings, GraphSettings, RiskSettings, StrategySettings
from graphwiz_trader.errors import ConfigError


def load(tmp_path: Path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p, env={})


@pytest.mark.parametrize("section, key, value, message", [
    ("risk", "max_gross_leverage", "1e6", r"less than or equal to 10 \(allowed range \(0, 10\]\)"),
    ("risk", "cash_buffer", "0.999", r"less than or equal to 0.5 \(allowed range \[0, 0.5\]\)"),
    ("risk", "max_position_weight", "0", r"greater than 0 \(allowed range \(0, 1\]\)"),
    ("risk", "max_drawdown", "0.95", r"\(allowed range \(0, 0.9\]\)"),
    ("risk", "daily_loss_limit", "-0.1", r"\(allowed range \(0, 0.5\]\)"),
    ("execution", "max_participation", "3", r"\(allowed range \(0, 0.5\]\)"),
    ("execution", "taker_fee_bps", "10000", r"\(allowed range \[0, 500\]\)"),
    ("execution", "horizon_bars", "100000", r"\(allowed range \[1, 1440\]\)"),
    ("strategy", "horizon_bars", "0", r"\(allowed range \[1, 1000\]\)"),
    ("strategy", "topk", "10000", r"\(allowed range \[1, 500\]\)"),
])
def test_an_absurd_limit_fails_at_load_with_its_dotted_path_and_allowed_range(tmp_path, section, key, value, message):
    with pytest.raises(ConfigError, match=rf"'{section}\.{key}': Input should be .*{message}"):
        load(tmp_path, f"{section}:\n  {key}: {value}\n")


def test_a_range_error_under_a_named_exchange_names_the_full_path(tmp_path):
    with pytest.raises(ConfigError, match=r"'exchanges\.binance\.max_retries': .* \(allowed range \[0, 20\]\)"):
        load(tmp_path, "exchanges:\n  binance:\n    max_retries: 1000\n")


def test_a_single_position_cannot_exceed_the_gross_exposure(tmp_path):
    with pytest.raises(ConfigError, match=r"'risk': Value error, max_position_weight 0.8 exceeds max_gross_leverage 0.5"):
        load(tmp_path, "risk:\n  max_position_weight: 0.8\n  max_gross_leverage: 0.5\n")


def test_a_bad_strategy_timeframe_or_symbol_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'strategy\.timeframe': .*did you mean '1h'"):
        load(tmp_path, "strategy:\n  timeframe: 1H\n")
    with pytest.raises(ConfigError, match=r"'strategy\.symbols': .*malformed symbol 'BTC_USDT'"):
        load(tmp_path, "strategy:\n  symbols: [BTC_USDT]\n")


@pytest.mark.parametrize("model", [RiskSettings, ExecutionSettings, StrategySettings, GraphSettings])
def test_every_numeric_limit_has_a_lower_and_an_upper_bound_that_its_docstring_states(model):
    for name, info in model.model_fields.items():
        kinds = {type(m) for m in info.metadata}
        numeric = info.annotation in (int, float, int | None, float | None)
        if not numeric:
            continue
        assert kinds & {annotated_types.Gt, annotated_types.Ge}, f"{model.__name__}.{name} has no lower bound"
        assert kinds & {annotated_types.Lt, annotated_types.Le}, f"{model.__name__}.{name} has no upper bound"
        doc = " ".join(model.__doc__.split())
        rng = allowed_range(info)
        assert f"``{name}``" in doc and rng in doc, f"{model.__name__} docstring lacks {name} {rng}"


def test_allowed_ranges_are_written_as_intervals():
    assert allowed_range(RiskSettings.model_fields["max_gross_leverage"]) == "(0, 10]"
    assert allowed_range(RiskSettings.model_fields["cash_buffer"]) == "[0, 0.5]"
    assert allowed_range(StrategySettings.model_fields["topk"]) == "[1, 500]"


@pytest.mark.parametrize("section, key, value", [
    ("constraints", "max_gross_leverage", 1e6),
    ("constraints", "cash_buffer", 0.999),
    ("sizing", "max_leverage", 50.0),
    ("optimiser", "target_volatility", 100.0),
])
def test_portfolio_limits_of_the_backtest_file_have_ranges_too(tmp_path, section, key, value):
    import yaml

    from graphwiz_trader.backtest.settings import load_backtest_config

    path = tmp_path / "bt.yaml"
    path.write_text(yaml.safe_dump({"portfolio": {section: {key: value}}}))
    with pytest.raises(ConfigError, match=rf"portfolio\.{section}\.{key}"):
        load_backtest_config(path)
