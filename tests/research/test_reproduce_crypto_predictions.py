"""graph-crypto writes its out-of-sample scores as predictions.parquet: a (datetime, instrument) index, one
column per variant and seed, and the fold whose test part holds each row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.research.experiment import WalkForwardSettings, run_walkforward
from graphwiz_trader.research.reproduce_crypto import seed_predictions, write_predictions

DATA = Path(os.environ.get("GRAPHWIZ_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")) \
    / "binance_spot_2020_2024"


def tiny_runs() -> dict:
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([pd.date_range("2024-01-01", periods=160, freq="h"), ["AUSDT", "BUSDT", "CUSDT"]],
                                     names=["datetime", "instrument"])
    y = pd.Series(rng.normal(size=len(idx)), index=idx)
    x = pd.DataFrame({"f0": y + rng.normal(size=len(idx)), "f1": rng.normal(size=len(idx))}, index=idx)
    xg = x.assign(G_f=rng.normal(size=len(idx)))
    runs = {}
    for seed in (0, 1):
        cfg = WalkForwardSettings(train_len=60, test_len=30, num_boost_round=5, seed=seed)
        runs[seed] = {"alpha158": run_walkforward(x, y, cfg, progress=False),
                      "hybrid": run_walkforward(xg, y, cfg, progress=False)}
    return runs


def assert_fold_ids_match_the_test_ranges(preds: pd.DataFrame, folds: pd.DataFrame) -> None:
    times = preds.index.get_level_values("datetime")
    assert sorted(preds["fold"].unique()) == sorted(folds["fold"])
    for _, f in folds.iterrows():
        inside = (times >= pd.Timestamp(f["test_start"])) & (times <= pd.Timestamp(f["test_end"]))
        assert (preds["fold"][inside] == f["fold"]).all()
        assert inside.sum() == (preds["fold"] == f["fold"]).sum()  # every row of the fold lies in its test range


def test_every_variant_and_seed_is_a_column_beside_the_fold_of_each_row(tmp_path):
    runs = tiny_runs()
    preds = seed_predictions(runs)
    assert list(preds.index.names) == ["datetime", "instrument"]
    assert list(preds.columns) == ["alpha158_seed0", "hybrid_seed0", "alpha158_seed1", "hybrid_seed1", "fold"]
    for seed, by_variant in runs.items():
        for variant, res in by_variant.items():
            pd.testing.assert_series_equal(preds[f"{variant}_seed{seed}"], res.predictions, check_names=False)
    assert_fold_ids_match_the_test_ranges(preds, runs[0]["alpha158"].folds)
    back = pd.read_parquet(write_predictions(preds, tmp_path / "predictions.parquet"))
    pd.testing.assert_frame_equal(back, preds)
    assert str(back["fold"].dtype) == "Int64"


@pytest.mark.slow
@pytest.mark.realdata
def test_graph_crypto_writes_predictions_parquet_on_a_tiny_real_configuration(graph_settings, graph_store, tmp_path,
                                                                              monkeypatch):
    if not (DATA / "1h").is_dir():
        pytest.skip(f"real data not found at {DATA}")
    from graphwiz_trader.research.reproduce_crypto import CryptoReproductionSettings, run_graph_crypto

    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())
    cfg = CryptoReproductionSettings(data=DATA, symbols=("BTC/USDT", "ETH/USDT", "SOL/USDT"), start="2021-01-01",
                                     end="2021-04-30", train_len=600, test_len=120, stride=120, max_folds=2,
                                     seeds=(0,), graph_window=240, graph_stride=24, qlib_dir=tmp_path / "qlib",
                                     out=tmp_path / "run", num_boost_round=20, early_stopping_rounds=5,
                                     workers=1)  # Ray is tested in its own process (tests/research/test_fanout.py)
    res = run_graph_crypto(cfg, progress=False)
    path = Path(res["outputs"]["predictions"])
    assert path == tmp_path / "run" / "predictions.parquet"
    preds = pd.read_parquet(path)
    assert list(preds.index.names) == ["datetime", "instrument"]
    assert list(preds.columns) == ["alpha158_seed0", "hybrid_seed0", "fold"]
    assert set(preds.index.get_level_values("instrument")) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    folds = pd.read_csv(tmp_path / "run" / "folds_alpha158.csv")
    assert len(folds) == 2
    assert_fold_ids_match_the_test_ranges(preds, folds)
    for _, f in folds.iterrows():
        in_fold = preds.index.get_level_values("datetime")[preds["fold"] == f["fold"]]
        assert in_fold.nunique() == 120 and str(in_fold.min()) == f["test_start"]
    assert preds[["alpha158_seed0", "hybrid_seed0"]].notna().all().all()
