"""The graphwiz command line: every command is listed; data commands work end to end on files."""

import json

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.cli import build_parser, main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("data", "features", "demo"):
        assert cmd in out


def test_data_help_lists_its_actions(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    for action in ("download", "import", "validate", "to-qlib"):
        assert action in out


def candles(n, start="2024-01-01"):
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    c = 10 + np.sin(np.arange(n) / 5)
    return pd.DataFrame({"date": idx, "open": c, "high": c + 0.1, "low": c - 0.1, "close": c, "volume": 5.0})


def test_import_validate_to_qlib_and_features_from_freqtrade_files(tmp_path, capsys):
    src = tmp_path / "ft"
    src.mkdir()
    candles(120).to_feather(src / "BTC_USDT-1h.feather")
    candles(120).drop(index=[30, 31]).reset_index(drop=True).to_feather(src / "ETH_USDT-1h.feather")
    store = tmp_path / "store"
    assert main(["data", "import", "--format", "freqtrade", "--source", str(src), "--timeframe", "1h",
                 "--store", str(store), "--json", str(tmp_path / "imp.json")]) == 0
    imp = json.loads((tmp_path / "imp.json").read_text())
    assert imp["imported"]["ETH/USDT"]["rows"] == 118
    # gaps are warnings: strict validation still passes and reports them
    assert main(["data", "validate", "--strict", "--store", str(store), "--json", str(tmp_path / "v.json")]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    eth = [s for s in v["1h"]["symbols"] if s["symbol"] == "ETH/USDT"][0]
    assert eth["missing_bars"] == 2
    assert main(["data", "to-qlib", "--freq", "60min", "--out", str(tmp_path / "q"), "--store", str(store)]) == 0
    assert (tmp_path / "q" / "features" / "btcusdt" / "close.60min.bin").exists()
    out = tmp_path / "f.parquet"
    assert main(["features", "--source", str(src), "--format", "freqtrade", "--timeframe", "1h",
                 "--symbols", "BTC/USDT,ETH/USDT", "--out", str(out), "--qlib-dir", str(tmp_path / "fq"),
                 "--json", str(tmp_path / "f.json")]) == 0
    f = pd.read_parquet(out)
    assert f.shape == (238, 162)


def test_strict_validate_exits_non_zero_when_the_store_holds_errors(tmp_path, capsys):
    # write a broken file straight into the store (bypassing upsert's own check) to simulate corruption
    store = tmp_path / "store" / "1h"
    store.mkdir(parents=True)
    df = candles(10).set_index("date").rename_axis("datetime")
    df.iloc[4, df.columns.get_loc("close")] = np.nan
    df.to_parquet(store / "BTC_USDT.parquet")
    assert main(["data", "validate", "--store", str(tmp_path / "store")]) == 0
    assert main(["data", "validate", "--strict", "--store", str(tmp_path / "store")]) == 1
    assert "nan_close: 1" in capsys.readouterr().out


def test_import_errors_are_reported_without_a_traceback(tmp_path, capsys):
    (tmp_path / "ft").mkdir()
    candles(10).to_feather(tmp_path / "ft" / "BTC_USDT-1h.feather")
    code = main(["data", "import", "--format", "freqtrade", "--source", str(tmp_path / "ft"),
                 "--symbols", "NOPE/USDT", "--store", str(tmp_path / "s")])
    assert code == 1
    assert "unknown symbol(s) NOPE/USDT" in capsys.readouterr().err
