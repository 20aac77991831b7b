"""`graphwiz research walkforward --graph`: folds, reports and the hybrid comparison, end to end."""

import json

from graphwiz_trader.cli import main


def test_walkforward_command_writes_fold_metrics_reports_and_the_comparison(graph_settings, graph_store, monkeypatch,
                                                                            tmp_path):
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())
    out = tmp_path / "wf"
    code = main(["research", "walkforward", "--train-len", "1500", "--test-len", "400", "--max-folds", "2",
                 "--workers", "1", "--graph", "--graph-window", "240", "--qlib-dir", str(tmp_path / "q"), "--out", str(out),
                 "--json", str(tmp_path / "wf.json")])
    assert code == 0
    res = json.loads((tmp_path / "wf.json").read_text())
    assert set(res["runs"]) == {"alpha158", "hybrid"}
    for run in res["runs"].values():
        assert run["summary"]["n_folds"] == 2 and len(run["folds"]) == 2
    cmp = res["comparison"]
    assert len(cmp["per_fold"]) == 2 and cmp["n_folds"] == 2
    for f in ("report.html", "report.png", "folds_alpha158.csv", "folds_hybrid.json", "importance_hybrid.csv"):
        assert (out / f).exists(), f
    assert "SYNTHETIC" in res["data"]
    import pandas as pd

    preds = pd.read_parquet(out / "predictions.parquet")
    assert list(preds.index.names) == ["datetime", "instrument"]
    assert set(preds.columns) == {"alpha158", "hybrid", "fold"}
    assert sorted(preds["fold"].unique()) == [f["fold"] for f in res["runs"]["alpha158"]["folds"]]
    first = res["runs"]["alpha158"]["folds"][0]
    in_fold = preds.index.get_level_values("datetime")[preds["fold"] == first["fold"]]
    assert str(in_fold.min()) == first["test_start"] and str(in_fold.max()) == first["test_end"]
    assert res["outputs"]["predictions"] == str(out / "predictions.parquet")


def test_a_walkforward_that_cannot_fit_one_fold_is_refused_before_any_feature_is_computed(tmp_path, monkeypatch,
                                                                                           capsys):
    import graphwiz_trader.research.commands as commands

    def must_not_run(*a, **k):  # pragma: no cover - the check must come first
        raise AssertionError("Alpha158 ran before the fold check")

    monkeypatch.setattr(commands, "alpha_features", must_not_run)
    code = main(["research", "walkforward", "--train-len", "100000", "--test-len", "500",
                 "--qlib-dir", str(tmp_path / "q")])
    err = capsys.readouterr().err
    assert code == 1 and "one fold needs 100501 bars" in err and "Traceback" not in err


def test_walkforward_start_loads_the_warm_up_before_it_and_starts_the_folds_at_start(tmp_path, monkeypatch):
    import pandas as pd

    import graphwiz_trader.research.commands as commands

    seen = {}
    real_features, real_many = commands.alpha_features, commands.run_walkforward_many

    def features(bars, *a, **k):
        seen["first_bar"] = min(df.index[0] for df in bars.values())
        return real_features(bars, *a, **k)

    def many(panel, *a, **k):
        seen["panel"] = panel
        return real_many(panel, *a, **k)

    monkeypatch.setattr(commands, "alpha_features", features)
    monkeypatch.setattr(commands, "run_walkforward_many", many)
    out = tmp_path / "wf.json"
    code = main(["research", "walkforward", "--start", "2022-01-20", "--train-len", "600", "--test-len", "200",
                 "--max-folds", "1", "--workers", "1", "--qlib-dir", str(tmp_path / "q"), "--out", str(tmp_path / "r"),
                 "--json", str(out), "--no-progress"])
    assert code == 0
    start = pd.Timestamp("2022-01-20", tz="UTC")
    assert seen["first_bar"] <= start - pd.Timedelta(hours=61)                 # the look-back was loaded
    days = seen["panel"].index.get_level_values("datetime")
    assert days.min() == start.tz_localize(None)                                # inputs only: folds start at start
    assert seen["panel"].xs(days.min(), level="datetime")[["ROC60", "STD60"]].notna().all().all()
    fold = json.loads(out.read_text())["runs"]["alpha158"]["folds"][0]
    assert pd.Timestamp(fold["train_start"]) == start.tz_localize(None)
