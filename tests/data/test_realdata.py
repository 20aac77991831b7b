"""Integration on the real Binance candles in ../shared/data (skipped with a reason when absent)."""

import numpy as np
import pytest

from graphwiz_trader.data.paths import MAJORS_20, binance_dir
from graphwiz_trader.data.qlib_bins import write_qlib_bins
from graphwiz_trader.data.sources import read_bars
from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def majors():
    if not (binance_dir() / "1h").is_dir():
        pytest.skip(f"real data not found at {binance_dir()} (see ../shared/data/README.md)")
    return read_bars(binance_dir(), "1h", list(MAJORS_20), strict=True)


def test_the_20_majors_import_and_validate_with_only_gaps_reported(majors):
    bars, report = majors
    assert report.ok
    assert all(len(df) == 34_976 for df in bars.values())
    btc = report["BTC/USDT"]
    assert btc.start == "2020-05-11 00:00:00+00:00" and btc.end == "2024-05-08 06:00:00+00:00"
    assert {i.kind for s in report.symbols for i in s.errors} == set()
    assert btc.missing_bars > 0  # the README says a few exchange-down hours are missing


def test_bins_and_alpha158_at_60min_on_the_majors(majors, tmp_path):
    bars, _ = majors
    sub = {s: df.loc["2023-01-01":"2023-03-31"] for s, df in bars.items()}
    summary = write_qlib_bins(sub, tmp_path / "q", "60min")
    assert len(summary["instruments"]) == 20
    feats = AlphaFeatureExtractor(tmp_path / "q", "60min", mlflow_dir=tmp_path / "ml").extract(list(sub))
    assert feats.shape[1] == 162
    assert len(feats) == sum(len(df) for df in sub.values())
    btc = feats.xs("BTCUSDT", level="instrument")
    c = sub["BTC/USDT"]["close"].astype("float32").astype("float64")
    o = sub["BTC/USDT"]["open"].astype("float32").astype("float64")
    np.testing.assert_allclose(btc["KMID"].to_numpy(), ((c - o) / o).to_numpy(), rtol=2e-5, atol=1e-9)
    assert btc.iloc[60:].drop(columns=["VWAP0"]).notna().mean().min() > 0.99
