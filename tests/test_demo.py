"""The main job runs end to end offline and reports honest, labelled figures."""

import contextlib
import io
import json
import math

import pandas as pd
import pytest

from graphwiz_trader.demo import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One small demo run (6 assets, 120 days) shared by the tests: its figures, printed text and folder."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.delenv("NEO4J_URI", raising=False)
        res = run_demo(folder, n_assets=6, n_bars=24 * 120, seed=3)
    return res, printed.getvalue(), folder


@pytest.mark.slow
def test_the_demo_runs_end_to_end_on_the_synthetic_market(demo):
    res, out, folder = demo
    assert "SYNTHETIC" in out and "[8] walk-forward" in out
    assert res["model_oos"]["ic"] > 0.02 and res["planted_signal_oos"]["ic"] > res["model_oos"]["ic"]
    cmp = res["graph"]["comparison"]
    assert cmp["n_folds"] == 4 and len(cmp["per_fold"]) == 4
    saved = json.loads((folder / "demo.json").read_text())
    assert saved["data"].startswith("SYNTHETIC") and saved["features"] == 162
    assert (folder / "graph").is_dir()  # the embedded server kept its data in the run folder


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
def test_the_demo_ends_with_scores_to_a_twap_costed_portfolio_beside_equal_weight(demo):
    res, out, folder = demo
    step9 = out[out.index("[9] portfolio on the out-of-sample scores of step 8"):]
    assert "SYNTHETIC" in step9.splitlines()[0]
    assert "TWAP by the execution engine" in step9 and "max-Sharpe" in step9 and "block bootstrap" in step9
    for name in ("hybrid scores", "alpha158 scores", "equal weight"):  # one table, one run
        assert any(line.strip().startswith(name) for line in step9.splitlines()), name
    p = res["portfolio"]
    assert set(p["runs"]) == {"hybrid scores", "alpha158 scores", "equal weight"}
    for name, r in p["runs"].items():
        lo, hi = r["net_sharpe_ci"]
        assert all(_finite(v) for v in (r["net_sharpe"], lo, hi, r["gross_sharpe"], r["shortfall_bps"])), name
        assert lo < r["net_sharpe"] < hi and r["orders"] > 0, name
    assert p["twap_bars"] >= 2 and p["decisions"] > 100
    # the scores that drove it are the walk-forward's out-of-sample predictions, saved for graphwiz backtest --scores
    preds = pd.read_parquet(p["predictions"])
    assert list(preds.index.names) == ["datetime", "instrument"]
    assert list(preds.columns) == ["alpha158", "hybrid", "fold"]
    assert sorted(preds["fold"].unique()) == [0, 1, 2, 3]
    saved = json.loads((folder / "demo.json").read_text())
    assert saved["portfolio"]["runs"]["equal weight"]["net_sharpe"] == pytest.approx(
        p["runs"]["equal weight"]["net_sharpe"])
