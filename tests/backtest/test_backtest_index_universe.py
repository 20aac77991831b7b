"""`graphwiz backtest --format qlib --market M`: the index membership is the backtest's universe, point in time."""

import json

import numpy as np
import pandas as pd
import yaml

from graphwiz_trader.cli import main
from graphwiz_trader.data.calendars import expected_opens
from graphwiz_trader.data.qlib_bins import write_qlib_bins

SESSIONS = expected_opens("XSHG", "1d", pd.Timestamp("2023-01-03", tz="UTC"), pd.Timestamp("2023-12-29", tz="UTC"))
CODES = ["SH600000", "SH600001", "SH600002", "SH600003", "SZ000001"]
LEAVES, JOINS = pd.Timestamp("2023-08-31", tz="UTC"), pd.Timestamp("2023-09-01", tz="UTC")


def bars(seed):
    rng = np.random.default_rng(seed)
    c = 10 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, len(SESSIONS))))
    o = np.r_[c[0], c[:-1]]
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.01, "low": np.minimum(o, c) * 0.99, "close": c,
                         "volume": 1e7}, index=pd.DatetimeIndex(SESSIONS, name="datetime"))


def test_a_leaver_is_sold_and_a_joiner_held_only_while_members(tmp_path):
    provider = tmp_path / "cn"
    write_qlib_bins({c: bars(k) for k, c in enumerate(CODES)}, provider, "day", calendar="XSHG")
    (provider / "instruments" / "idx.txt").write_text(
        "SH600000\t2023-01-03\t2023-12-29\nSH600001\t2023-01-03\t2023-08-31\nSH600002\t2023-01-03\t2023-12-29\n"
        "SH600003\t2023-01-03\t2023-12-29\nSZ000001\t2023-09-01\t2023-12-29\n")
    cfg = yaml.safe_load(open("config/backtest.yaml"))
    cfg["data"]["source"].update({"timeframe": "1d", "start": "2023-01-03", "end": "2023-12-29"})
    cfg["portfolio"]["cov_window"] = "40D"
    cfg["scores"]["lookback"] = "5D"
    cfg["backtest"]["rebalance"] = "1D"
    (tmp_path / "bt.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["backtest", "--config", str(tmp_path / "bt.yaml"), "--format", "qlib", "--provider", str(provider),
                 "--market", "idx", "--out", str(out), "--json", str(tmp_path / "s.json"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["label"].startswith("REAL DATA: 5 instruments on the XSHG calendar, 1d bars from Qlib idx in ")
    w = pd.read_parquet(out / "weights.parquet")
    assert (w.loc[w.index > LEAVES + pd.Timedelta(days=1), "SH600001"].abs() < 1e-12).all()   # sold after leaving
    assert (w.loc[w.index < JOINS, "SZ000001"].abs() < 1e-12).all()                          # never before joining
    assert (w.loc[w.index >= JOINS, "SZ000001"].abs() > 1e-6).any()                           # held once a member
    assert (w.loc[w.index <= LEAVES, "SH600001"].abs() > 1e-6).any()
