"""The hybrid generator: Alpha158 + graph features; an honest, same-folds comparison; no look-ahead."""

import numpy as np
import pytest
from scipy import stats

from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.features.graph_pipeline import GraphBuildSettings
from graphwiz_trader.graph.builders.regimes import RegimeSettings
from graphwiz_trader.models.hybrid import HybridSignalGenerator, create_hybrid_signal_generator
from graphwiz_trader.models.targets import LabelSpec

SPEC = GraphBuildSettings(window=120, stride=24, min_abs_rho=0.2, top_k=4, exchange="synthetic",
                      regimes=RegimeSettings(min_train=300, refit_every=100, burn_in=100, asset_vol_window=24,
                                           asset_min_history=100))


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=6, n_bars=1200, seed=17)


@pytest.fixture
def hybrid(graph_settings, tmp_path):
    return HybridSignalGenerator(label=LabelSpec("regression", 1), graph_spec=SPEC, graph_settings=graph_settings,
                                 work_dir=tmp_path, seed=1, num_boost_round=80)


def test_the_factory_uses_the_embedded_server_without_a_uri(monkeypatch):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    gen = create_hybrid_signal_generator(window=240, stride=12)
    assert gen.graph_settings.uri is None and gen.graph_spec.window == 240
    gen2 = create_hybrid_signal_generator(neo4j_uri="bolt://db:7687", neo4j_password="pw")
    assert gen2.graph_settings.uri == "bolt://db:7687" and gen2.graph_settings.password.get_secret_value() == "pw"


def test_hybrid_features_are_alpha158_plus_graph_columns(market, hybrid, graph_store):
    feats = hybrid.build_features(market.bars)
    g = [c for c in feats.columns if c.startswith("G_")]
    assert feats.shape[1] == 162 + len(g) and 10 <= len(g) <= 20


def test_compare_with_baseline_reports_same_fold_out_of_sample_figures(market, hybrid, graph_store):
    out = hybrid.compare_with_baseline(market.bars, train_len=500, test_len=150, max_folds=3)
    assert out["n_folds"] == 3 and len(out["per_fold"]) == 3
    for row in out["per_fold"]:
        expected = 100 * (row["acc_hybrid"] - row["acc_baseline"]) / row["acc_baseline"]
        assert row["accuracy_improvement_pct"] == pytest.approx(expected)
    assert out["accuracy_improvement_pct"] == pytest.approx(np.mean([r["accuracy_improvement_pct"] for r in out["per_fold"]]))
    # the interval is the HAC (Newey-West, 1 lag for 3 folds) t-interval of the per-fold improvements
    x = np.array([r["accuracy_improvement_pct"] for r in out["per_fold"]])
    d = x - x.mean()
    long_run_var = (d @ d + 2 * 0.5 * (d[1:] @ d[:-1])) / 3
    half = stats.t.ppf(0.975, 2) * np.sqrt(long_run_var / 3)
    assert out["accuracy_improvement_pct_ci_hac"] == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-12)
    assert out["accuracy_improvement_pct_stats"]["lag1_autocorr"] == pytest.approx((d[1:] @ d[:-1]) / (d @ d))
    assert out["accuracy_improvement_pct_ci_block_bootstrap"] is None and "3 folds < 10" in out["bootstrap_note"]
    for row in out["per_fold"]:  # accuracy is shown beside the naive baseline of the same fold
        assert 0.0 < row["majority_rate"] < 1.0 and 0.0 < row["balanced_acc_hybrid"] < 1.0
    assert list(out["baseline"])[1:3] == ["auc", "ic"] and out["folds"]["gap"] == 1


def test_the_hybrid_prediction_at_t_is_unchanged_when_later_data_is_removed(market, hybrid, graph_store):
    hybrid.train(market.bars)
    full = hybrid.predict(hybrid.build_features(market.bars))
    for cut in (800, 1199):
        graph_store.clear()
        trunc = {s: df.iloc[: cut + 1] for s, df in market.bars.items()}
        part = hybrid.predict(hybrid.build_features(trunc))
        t = market.bars["SYN00/USDT"].index[cut].tz_convert(None)
        # eigenvector centrality comes from an iterative eigen-solver: equal to float rounding
        np.testing.assert_allclose(part.loc[t].to_numpy(), full.loc[t].to_numpy(), rtol=0, atol=1e-12)
