"""config/backtest.yaml validates strictly; `graphwiz backtest` runs offline and writes JSON + HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from graphwiz_trader.backtest import commands
from graphwiz_trader.backtest.settings import BacktestRunSettings, load_backtest_config
from graphwiz_trader.core.commandline import GraphwizParser
from graphwiz_trader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "binance_spot_2020_2024"


def _write(tmp_path: Path, raw: dict) -> Path:
    p = tmp_path / "bt.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _small(tmp_path: Path) -> dict:
    raw = yaml.safe_load((REPO / "config" / "backtest.yaml").read_text())
    raw["data"]["synthetic"].update({"n_assets": 5, "n_clusters": 2, "n_bars": 150})
    raw["portfolio"]["cov_window"] = "3D"
    raw["report"]["html"] = str(tmp_path / "report.html")
    return raw


def test_the_shipped_config_validates() -> None:
    cfg = load_backtest_config(REPO / "config" / "backtest.yaml")
    assert cfg.portfolio.optimiser.method == "max_sharpe"
    assert cfg.backtest.rebalance == "1D"
    assert cfg.backtest.costs.taker_fee_bps == 10


def test_unknown_keys_are_rejected_with_their_dotted_path(tmp_path: Path) -> None:
    raw = _small(tmp_path)
    raw["backtest"]["costs"]["taker_fee"] = 5
    with pytest.raises(ConfigError, match=r"unknown key 'backtest.costs.taker_fee'"):
        load_backtest_config(_write(tmp_path, raw))


def test_shorting_on_spot_is_rejected(tmp_path: Path) -> None:
    raw = _small(tmp_path)
    raw["portfolio"]["constraints"].update({"long_short": True, "max_gross_leverage": 1.5})
    with pytest.raises(ConfigError, match="long_short needs backtest.market: futures"):
        load_backtest_config(_write(tmp_path, raw))


def test_derived_optimiser_fields_cannot_be_set(tmp_path: Path) -> None:
    raw = _small(tmp_path)
    raw["portfolio"]["optimiser"]["cov_window_bars"] = 100
    with pytest.raises(ConfigError, match="portfolio.cov_window"):
        load_backtest_config(_write(tmp_path, raw))
    assert BacktestRunSettings().portfolio.cov_window == "30D"


def _run(argv: list[str]) -> int:
    parser = GraphwizParser(prog="graphwiz")
    commands.register(parser.add_subparsers(dest="command", parser_class=GraphwizParser))
    args = parser.parse_args(argv)
    return args.func(args)


def test_backtest_command_runs_offline_on_the_synthetic_market(tmp_path: Path, capsys) -> None:
    cfg = _write(tmp_path, _small(tmp_path))
    out = tmp_path / "out.json"
    assert _run(["backtest", "--config", str(cfg), "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "synthetic_planted_signal" in printed
    payload = json.loads(out.read_text())
    assert payload["label"].startswith("SYNTHETIC")
    runs = payload["metrics"]
    assert set(runs) == {"strategy", "strategy_gross_of_costs", "buy_and_hold_SYN00/USDT", "equal_weight",
                         "inverse_vol"}
    assert runs["strategy"]["total_return"] < runs["strategy_gross_of_costs"]["total_return"]
    assert payload["period"]["decisions"] == 150 - 72  # hourly decisions after a 72-bar warm-up
    html = Path(payload["report_html"]).read_text()
    assert "SYNTHETIC" in html and "Weights over time" in html and "sharpe" in html


@pytest.mark.slow
@pytest.mark.realdata
def test_backtest_command_runs_on_real_hourly_bars_with_a_named_point_in_time_score(tmp_path: Path) -> None:
    if not (DATA / "1h").is_dir():
        pytest.skip(f"real data not found at {DATA}")
    raw = _small(tmp_path)
    raw["data"]["source"].update({"symbols": ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"],
                                  "start": "2021-01-01", "end": "2021-02-14 23:00"})
    raw["portfolio"]["cov_window"] = "15D"
    out = tmp_path / "real.json"
    assert _run(["backtest", "--config", str(_write(tmp_path, raw)), "--source", str(DATA), "--json", str(out),
                 "--no-progress"]) == 0
    payload = json.loads(out.read_text())
    assert payload["label"].startswith("REAL DATA: 4 pairs, 1h bars")
    assert payload["score"].startswith("xs_reversal_24bar")
    assert "buy_and_hold_BTC/USDT" in payload["metrics"]
    # 45 days of hourly bars: daily decisions (23:00 bars) from day 16, after the 15-day warm-up
    assert payload["period"]["decisions"] == 45 - 15


def test_real_data_is_cut_at_the_earliest_last_bar_with_a_warning(caplog) -> None:
    from graphwiz_trader.backtest.runner import trim_to_common_end

    idx = pd.date_range("2024-01-01", periods=10, freq="1h", tz="UTC")
    frame = pd.DataFrame({"close": range(10)}, index=idx)
    with caplog.at_level("WARNING"):
        out = trim_to_common_end({"A/USDT": frame, "B/USDT": frame.iloc[2:7]})
    assert out["A/USDT"].index.max() == idx[6] and len(out["B/USDT"]) == 5
    assert "3 later bars of 1 symbols are not used" in caplog.text
