"""The main job runs end to end offline and reports honest, labelled figures."""

import json

import pytest

from graphwiz_trader.demo import run_demo


@pytest.mark.slow
def test_the_demo_runs_end_to_end_on_the_synthetic_market(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    res = run_demo(tmp_path / "demo", n_assets=6, n_bars=24 * 120, seed=3)
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "[8] walk-forward" in out
    assert res["model_oos"]["ic"] > 0.02 and res["planted_signal_oos"]["ic"] > res["model_oos"]["ic"]
    cmp = res["graph"]["comparison"]
    assert cmp["n_folds"] == 4 and len(cmp["per_fold"]) == 4
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["data"].startswith("SYNTHETIC") and saved["features"] == 162
    assert (tmp_path / "demo" / "graph").is_dir()  # the embedded server kept its data in the run folder
