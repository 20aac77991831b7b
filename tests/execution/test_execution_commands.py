"""`graphwiz execution train-ppo|evaluate` through register() on a fresh parser."""

from __future__ import annotations

import hashlib
import json

import pytest

from graphwiz_trader.data.paths import binance_dir
from graphwiz_trader.core.commandline import GraphwizParser
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.execution import commands

REAL_1H = binance_dir() / "1h"


def _run(argv: list[str]) -> int:
    parser = GraphwizParser(prog="graphwiz")
    commands.register(parser.add_subparsers(dest="command", parser_class=GraphwizParser))
    args = parser.parse_args(argv)
    return args.func(args)


def test_evaluate_on_the_synthetic_market_writes_the_table_as_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = _run(["execution", "evaluate", "--json", str(out), "--n-orders", "40", "--n-boot", "200",
               "--strategies", "MARKET,TWAP,VWAP,ALMGREN_CHRISS", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC MARKET" in text and "mean IS bps" in text
    doc = json.loads(out.read_text())
    s = doc["summary"]
    assert s["n_orders"] == 40 and list(s["strategies"]) == ["MARKET", "TWAP", "VWAP", "ALMGREN_CHRISS"]
    assert doc["symbols"] == ["SYN08/USDT", "SYN09/USDT", "SYN10/USDT", "SYN11/USDT"]
    assert doc["first_order_start_utc"] >= "2022-09-01"
    m, t = s["strategies"]["MARKET"], s["strategies"]["TWAP"]
    assert m["ci95_bps"][0] <= m["mean_shortfall_bps"] <= m["ci95_bps"][1]
    assert s["reductions"]["TWAP_vs_MARKET"]["mean_reduction_bps"] == pytest.approx(
        m["mean_shortfall_bps"] - t["mean_shortfall_bps"])
    assert m["mean_fill_rate"] == 1.0


def test_train_ppo_then_evaluate_out_of_sample_and_refuse_overlap(tmp_path):
    model = tmp_path / "ppo.zip"
    assert _run(["execution", "train-ppo", "--timesteps", "256", "--n-envs", "2", "--out", str(model),
                 "--no-progress", "--json", str(tmp_path / "train.json")]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["train_symbols"] == [f"SYN{i:02d}/USDT" for i in range(8)]
    assert meta["train_end_utc"] < "2022-09-01" and meta["total_timesteps"] == 256 and meta["seed"] == 0
    out = tmp_path / "eval.json"
    assert _run(["execution", "evaluate", "--json", str(out), "--model", str(model), "--n-orders", "12",
                 "--n-boot", "100", "--strategies", "TWAP,PPO", "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert list(doc["summary"]["strategies"]) == ["TWAP", "PPO"]
    assert doc["sensitivity"]["strategies"] == ["TWAP", "PPO"] and len(doc["sensitivity"]["cells"]) == 9
    assert doc["ppo_model"]["model_file"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert doc["ppo_model"]["train_end_utc"] == meta["train_end_utc"]
    with pytest.raises(ConfigError, match="evaluation symbols SYN00/USDT were used to train the PPO model"):
        _run(["execution", "evaluate", "--model", str(model), "--symbols", "SYN00/USDT", "--no-progress"])
    with pytest.raises(ConfigError, match="evaluation dates must come after training"):
        _run(["execution", "evaluate", "--model", str(model), "--start", "2022-08-01", "--no-progress"])


@pytest.mark.slow
@pytest.mark.realdata
def test_evaluate_on_real_binance_bars(tmp_path):
    if not REAL_1H.is_dir():
        pytest.skip(f"real data folder {REAL_1H} is absent")
    out = tmp_path / "real.json"
    assert _run(["execution", "evaluate", "--data", str(REAL_1H), "--symbols", "XLM/USDT", "--n-orders", "60",
                 "--n-boot", "200", "--strategies", "MARKET,TWAP", "--json", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert doc["data_label"].startswith("REAL DATA") and doc["summary"]["n_orders"] == 60
    assert doc["first_order_start_utc"] >= "2023-01-01"
    assert doc["summary"]["strategies"]["MARKET"]["mean_shortfall_bps"] > 0


@pytest.mark.realdata
def test_unknown_symbol_in_a_data_folder_lists_what_is_there(tmp_path):
    if not REAL_1H.is_dir():
        pytest.skip(f"real data folder {REAL_1H} is absent")
    with pytest.raises(Exception, match=r"unknown symbol\(s\) NOPE/USDT in .*available: AAVE/USDT"):
        _run(["execution", "evaluate", "--data", str(REAL_1H), "--symbols", "NOPE/USDT", "--no-progress"])


def test_evaluate_calls_the_impact_model_parametric_and_writes_the_sensitivity_table(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert _run(["execution", "evaluate", "--json", str(out), "--n-orders", "40", "--n-boot", "100",
                 "--sensitivity-orders", "20", "--strategies", "MARKET,TWAP", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "impact model: parametric (Almgren-Chriss-style; eta, gamma from equity literature, not fitted)" in text
    assert "sensitivity of mean IS (bps) to the impact constants" in text
    doc = json.loads(out.read_text())
    assert doc["impact_model"] == "parametric (Almgren-Chriss-style; eta, gamma from equity literature, not fitted)"
    sens = doc["sensitivity"]
    assert sens["n_orders"] == 20 and sens["strategies"] == ["MARKET", "TWAP"] and len(sens["cells"]) == 9
    market = {(c["eta_multiplier"], c["gamma_multiplier"]): c["mean_shortfall_bps"]["MARKET"] for c in sens["cells"]}
    assert market[(0.5, 1.0)] < market[(1.0, 1.0)] < market[(2.0, 1.0)]
    for line in (f"{c['mean_shortfall_bps']['MARKET']:.2f}" for c in sens["cells"]):
        assert line in text  # the printed table shows the JSON's numbers


def test_evaluate_skips_the_sensitivity_table_on_request_and_refuses_a_negative_size(tmp_path):
    out = tmp_path / "eval.json"
    assert _run(["execution", "evaluate", "--json", str(out), "--n-orders", "12", "--n-boot", "50",
                 "--sensitivity-orders", "0", "--strategies", "MARKET", "--no-progress"]) == 0
    assert json.loads(out.read_text())["sensitivity"] is None
    with pytest.raises(ConfigError, match="--sensitivity-orders must be >= 0"):
        _run(["execution", "evaluate", "--sensitivity-orders", "-1", "--no-progress"])
