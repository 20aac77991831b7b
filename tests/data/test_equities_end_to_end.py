"""A folder of US stock CSVs (made here) goes through import, validation on the NYSE calendar, Qlib bins,
Alpha158, the graph build and the graph features, with no weekend reported as a gap."""

import json

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.data.calendars import expected_opens

TICKERS = ["AAPL", "MSFT", "AMZN", "JPM", "XOM", "BRK.B"]
SESSIONS = expected_opens("XNYS", "1d", pd.Timestamp("2022-01-03", tz="UTC"), pd.Timestamp("2023-06-30", tz="UTC"))


@pytest.fixture(scope="module")
def stock_csvs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("us_stocks")
    rng = np.random.default_rng(11)
    market = rng.normal(0, 0.01, len(SESSIONS))
    for k, t in enumerate(TICKERS):
        c = 100 * np.exp(np.cumsum(0.6 * market + rng.normal(0, 0.012, len(SESSIONS))))
        o = np.r_[c[0], c[:-1]] * (1 + rng.normal(0, 0.002, len(SESSIONS)))
        df = pd.DataFrame({"Date": SESSIONS.strftime("%Y-%m-%d"), "Open": o, "High": np.maximum(o, c) * 1.004,
                           "Low": np.minimum(o, c) * 0.996, "Close": c, "Adj Close": c,
                           "Volume": rng.integers(1_000_000, 5_000_000, len(SESSIONS))})
        if t == "JPM":
            df = df.drop(index=[100])  # one session without a bar: a real gap
        df.to_csv(folder / f"{t}.csv", index=False)
    return folder


def _neo4j_env(monkeypatch, graph_settings):
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())


def test_import_validates_on_the_nyse_calendar_and_reports_only_the_real_gap(stock_csvs, tmp_path):
    out = tmp_path / "import.json"
    assert main(["data", "import", "--format", "csv", "--source", str(stock_csvs), "--timeframe", "1d",
                 "--store", str(tmp_path / "store"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())["validation"]
    assert report["calendar"] == "XNYS" and report["ok"]
    missing = {s["symbol"]: s["missing_bars"] for s in report["symbols"]}
    assert missing == {t: (1 if t == "JPM" else 0) for t in TICKERS}
    assert main(["data", "to-qlib", "--store", str(tmp_path / "store"), "--freq", "day", "--out", str(tmp_path / "q"),
                 "--json", str(tmp_path / "q.json")]) == 0
    bins = json.loads((tmp_path / "q.json").read_text())
    assert bins["calendar_length"] == len(SESSIONS)            # sessions only: no weekend in Qlib's calendar
    assert sorted(bins["instruments"]) == sorted(TICKERS)


@pytest.mark.slow
def test_alpha158_and_graph_features_are_computed_for_the_stocks(stock_csvs, tmp_path, graph_settings, graph_store,
                                                                  monkeypatch):
    _neo4j_env(monkeypatch, graph_settings)
    start = "2022-07-01"
    assert main(["features", "--source", str(stock_csvs), "--format", "csv", "--timeframe", "1d", "--start", start,
                 "--graph", "--graph-window", "60", "--graph-stride", "5", "--qlib-dir", str(tmp_path / "q"),
                 "--out", str(tmp_path / "f.parquet"), "--json", str(tmp_path / "f.json"), "--no-progress"]) == 0
    frame = pd.read_parquet(tmp_path / "f.parquet")
    days = frame.index.get_level_values("datetime")
    assert sorted(frame.index.get_level_values("instrument").unique()) == sorted(TICKERS)
    assert str(days.min().date()) == "2022-07-01"
    assert set(pd.DatetimeIndex(days.unique()).dayofweek) <= {0, 1, 2, 3, 4}
    first = frame.xs(days.min(), level="datetime")
    alpha = [c for c in frame.columns if not c.startswith("G_") and not c.startswith("GRAPH")]
    assert first[alpha].notna().to_numpy().mean() > 0.95      # warm-up loaded before --start
    graph_cols = [c for c in frame.columns if c not in alpha]
    assert graph_cols and frame[graph_cols].notna().to_numpy().mean() > 0.5

    assert main(["graph", "build", "--source", str(stock_csvs), "--format", "csv", "--timeframe", "1d",
                 "--window", "60", "--stride", "20", "--json", str(tmp_path / "g.json"), "--no-progress"]) == 0
    built = json.loads((tmp_path / "g.json").read_text())
    assets = graph_store.query("MATCH (a:Asset) RETURN a.symbol AS s, a.quote AS q")
    assert sorted(r["s"] for r in assets) == sorted(TICKERS) and all(r["q"] is None for r in assets)
    assert built["snapshots"] > 0
