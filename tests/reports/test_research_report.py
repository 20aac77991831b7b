"""The research report: IC by horizon, quantile returns and signal turnover match a direct computation; graph
features are marked; the page loads nothing from the network and says what it cannot draw."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from graphwiz_trader.research.report import write_walkforward_outputs
from graphwiz_trader.research.report_signal import (
    GRAPH_FEATURES,
    ic_by_horizon,
    is_graph_feature,
    quantile_returns,
    signal_turnover,
)

SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.I)


@pytest.fixture(scope="module")
def prices():
    """Log prices of 7 instruments over 120 bars and a score that knows part of the next 3 bars' move."""
    rng = np.random.default_rng(5)
    dates = pd.date_range("2024-03-01", periods=120, freq="h", tz="UTC")
    inst = [f"I{i}" for i in range(7)]
    logp = pd.DataFrame(np.cumsum(rng.normal(0, 0.01, (120, 7)), axis=0), index=dates, columns=inst)
    fwd3 = logp.shift(-3) - logp
    score = (fwd3 + rng.normal(0, 0.02, fwd3.shape)).iloc[:100]
    return logp, score


def _long(wide: pd.DataFrame) -> pd.Series:
    s = wide.stack(future_stack=True).dropna()
    s.index.names = ["datetime", "instrument"]
    return s


def test_ic_by_horizon_equals_the_ic_with_the_h_bar_forward_return(prices):
    logp, score = prices
    fwd1 = _long(logp.shift(-1) - logp)
    tab = ic_by_horizon(_long(score), fwd1, 1, multiples=(1, 3, 6)).set_index("horizon_bars")
    for h in (1, 3, 6):
        fh = (logp.shift(-h) - logp).iloc[:100]
        ics = [np.corrcoef(score.iloc[t], fh.iloc[t])[0, 1] for t in range(100) if fh.iloc[t].notna().all()]
        assert tab.at[h, "ic"] == pytest.approx(np.mean(ics), abs=1e-12)
        assert tab.at[h, "dates"] == len(ics) and tab.at[h, "non_overlapping_dates"] == len(ics[::h])
    assert tab.at[3, "ic"] > tab.at[1, "ic"]  # the score was built on 3-bar moves
    # with a 2-bar label, horizon 2m sums m non-overlapping labels
    fwd2 = _long(logp.shift(-2) - logp)
    two = ic_by_horizon(_long(score), fwd2, 2, multiples=(1, 3)).set_index("horizon_bars")
    assert two.at[6, "ic"] == pytest.approx(tab.at[6, "ic"], abs=1e-12)


def test_quantile_returns_average_each_fifth_on_non_overlapping_dates(prices):
    logp, score = prices
    fwd2 = (logp.shift(-2) - logp).iloc[:100]
    q = quantile_returns(_long(score), _long(fwd2), 2).set_index("quantile")
    per = {k: [] for k in range(1, 6)}
    for t in range(0, 100, 2):  # dates two bars apart
        s, f = score.iloc[t], fwd2.iloc[t]
        if f.isna().any():
            continue
        order = np.argsort(s.to_numpy(), kind="stable")
        group = np.empty(7, int)
        group[order] = np.ceil(np.arange(1, 8) * 5 / 7).astype(int)
        for k in range(1, 6):
            per[k].append(f.to_numpy()[group == k].mean())
    for k in range(1, 6):
        assert q.at[k, "mean"] == pytest.approx(np.mean(per[k]), abs=1e-12)
        assert q.at[k, "dates"] == len(per[k])
    assert q.at[5, "mean"] > q.at[1, "mean"]


def test_signal_turnover_counts_new_names_in_the_top_fifth_and_the_rank_autocorrelation(prices):
    _, score = prices
    wide = score.copy()
    wide.iloc[10, 2] = np.nan  # an instrument missing at one time
    out = signal_turnover(_long(wide), 0.3)
    for t in (5, 10, 11, 60):
        a, b = wide.iloc[t - 1], wide.iloc[t]
        k_b = max(1, int(np.floor(b.notna().sum() * 0.3)))
        k_a = max(1, int(np.floor(a.notna().sum() * 0.3)))
        top_b, top_a = set(b.nlargest(k_b).index), set(a.nlargest(k_a).index)
        assert out["top_turnover"].iloc[t - 1] == pytest.approx(1 - len(top_a & top_b) / k_b)
        both = a.notna() & b.notna()
        assert out["rank_autocorr"].iloc[t - 1] == pytest.approx(spearmanr(a[both], b[both]).statistic)


def test_graph_features_are_the_graph_feature_module_columns():
    from graphwiz_trader.features.graph_features import feature_names

    assert set(feature_names()) <= GRAPH_FEATURES
    assert {"G_leadlag", "G_eigvec", "G_mkt_regime_vol_4", "G_mkt_regime_low_vol"} <= GRAPH_FEATURES
    assert not is_graph_feature("KMID0") and not is_graph_feature("G_unknown")
    # the CSI300 variant's columns: momentum and its gap at 5 days
    assert all(is_graph_feature(c) for c in feature_names(horizons=(5,), gaps=True))
    assert not is_graph_feature("G_nbr_mom_x")


def test_the_report_draws_signal_panels_marks_graph_features_and_needs_no_network(walkforward_runs, tmp_path,
                                                                                   plotly_figures):
    results, comparison, fwd = walkforward_runs
    paths = write_walkforward_outputs(results, tmp_path / "wf", "walk-forward test", comparison, "SYNTHETIC",
                                      fwd_returns=fwd)
    html = open(paths["html"]).read()
    for heading in ("Summary across folds", "IC by fold (out of sample)", "Hybrid against baseline (same folds)",
                    "IC time series", "IC by horizon", "Quantile returns (5 quantiles by score, non-overlapping)",
                    "Signal turnover", "Feature importance (mean |SHAP| over folds)"):
        assert f">{heading}<" in html, heading
    assert not SCRIPT_SRC.search(html)  # before: include_plotlyjs='cdn' left every chart blank offline
    assert "hybrid: top 8 of 8 features (5 of its 5 graph features among them)" in html
    bars = [t for data in plotly_figures(html).values() for t in data if t.get("orientation") == "h"]
    graph = [t for t in bars if t["name"] == "graph feature"]
    assert len(graph) == 1 and set(graph[0]["y"]) == {"G_wdeg", "G_pagerank", "G_nbr_mom_1",
                                                      "G_mkt_regime_high_vol", "G_leadlag"}
    assert not any(is_graph_feature(y) for t in bars if t["name"] != "graph feature" for y in t["y"])
    imp = pd.read_csv(tmp_path / "wf" / "importance_hybrid.csv", index_col=0)
    assert imp.loc["G_leadlag", "graph_feature"] and not imp.loc["KMID0", "graph_feature"]
    assert imp.index[0] == "G_leadlag"  # the planted signal, seen with the least noise


def test_without_forward_returns_the_report_says_what_it_cannot_draw(walkforward_runs, tmp_path):
    results, _, _ = walkforward_runs
    paths = write_walkforward_outputs(results, tmp_path, "t", None, "SYNTHETIC")
    html = open(paths["html"]).read()
    assert "Not drawn: the report was written without the forward returns" in html
    assert ">IC time series<" not in html and ">Signal turnover<" in html
    assert set(paths) == {"folds_alpha158", "folds_hybrid", "html", "png"}
