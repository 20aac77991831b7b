"""`graphwiz reproduce qlib-csi300`: the published workflow, point-in-time graph features, an end-to-end run.

Fast tests check the workflow config against the published YAML and the graph features against plain
loops; the real-data tests (``slow``, ``realdata``) run Qlib end to end on 20 instruments.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.paths import csi300_dir
from graphwiz_trader.errors import ConfigError
from graphwiz_trader.research import commands_reproduce
from graphwiz_trader.research.reproduce_csi300 import (
    DATA_SEGMENTS,
    GRAPH_FEATURES,
    METRICS,
    PUBLISHED,
    CSI300ReproductionSettings,
    GraphFeatureSettings,
    ReproductionResult,
    SeedResult,
    Segments,
    alpha158_default_processors,
    build_workflow_config,
    format_table,
    graph_feature_columns,
    graph_features_csi300,
    published_model_kwargs,
    summarize,
)

# ---------------------------------------------------------------------------------------------------------------
# The published workflow (values copied from Qlib's workflow_config_lightgbm_Alpha158.yaml)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def workflow(tmp_path):
    return build_workflow_config(CSI300ReproductionSettings(provider_uri=tmp_path), limit_threshold=0.095)


def test_model_parameters_are_the_published_ones_with_one_thread(workflow):
    model = workflow["task"]["model"]
    assert model["class"] == "LGBModel" and model["module_path"] == "qlib.contrib.model.gbdt"
    assert model["kwargs"] == {
        "loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789,
        "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210, "num_threads": 1,
    }


def test_a_seed_sets_every_lightgbm_seed_and_nothing_else():
    kw = published_model_kwargs(num_threads=2, seed=7)
    assert {k: kw[k] for k in ("seed", "bagging_seed", "feature_fraction_seed", "data_random_seed")} == {
        "seed": 7, "bagging_seed": 7, "feature_fraction_seed": 7, "data_random_seed": 7}
    assert {k: v for k, v in kw.items() if "seed" not in k} == published_model_kwargs(num_threads=2)


def test_the_dataset_is_alpha158_on_csi300_fitted_on_the_train_segment(workflow):
    ds = workflow["task"]["dataset"]
    assert (ds["class"], ds["module_path"]) == ("DatasetH", "qlib.data.dataset")
    h = ds["kwargs"]["handler"]
    assert (h["class"], h["module_path"]) == ("Alpha158", "qlib.contrib.data.handler")
    assert h["kwargs"] == {"start_time": "2010-01-01", "end_time": "2020-08-01", "fit_start_time": "2010-01-01",
                           "fit_end_time": "2014-12-31", "instruments": "csi300"}
    assert ds["kwargs"]["segments"] == {"train": ["2010-01-01", "2014-12-31"], "valid": ["2015-01-01", "2016-12-31"],
                                        "test": ["2017-01-01", "2020-08-01"]}
    assert workflow["market"] == "csi300" and workflow["benchmark"] == "SH000300"


def test_the_label_is_the_published_two_day_forward_close_return():
    from qlib.contrib.data.handler import Alpha158

    assert Alpha158.get_label_config(None) == (["Ref($close, -2)/Ref($close, -1) - 1"], ["LABEL0"])


def test_alpha158_defaults_are_dropna_then_cross_sectional_zscore_of_the_label():
    infer, learn = alpha158_default_processors()
    assert infer == []
    assert learn == [{"class": "DropnaLabel"}, {"class": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]


def test_the_backtest_is_topk50_drop5_with_the_published_costs(workflow):
    port = workflow["port_analysis_config"]
    assert port["strategy"]["class"] == "TopkDropoutStrategy"
    assert port["strategy"]["kwargs"] == {"signal": "<PRED>", "topk": 50, "n_drop": 5}
    bt = port["backtest"]
    assert (bt["start_time"], bt["end_time"], bt["account"], bt["benchmark"]) == (
        "2017-01-01", "2020-08-01", 100_000_000, "SH000300")
    assert bt["exchange_kwargs"] == {"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                                     "close_cost": 0.0015, "min_cost": 5}


def test_percent_change_data_gets_the_same_limit_rule_in_percent(tmp_path):
    wf = build_workflow_config(CSI300ReproductionSettings(provider_uri=tmp_path), limit_threshold=9.5)
    assert wf["port_analysis_config"]["backtest"]["exchange_kwargs"]["limit_threshold"] == 9.5


def test_the_records_are_signal_signal_analysis_and_portfolio_analysis(workflow):
    recs = workflow["task"]["record"]
    assert [r["class"] for r in recs] == ["SignalRecord", "SigAnaRecord", "PortAnaRecord"]
    assert recs[1]["kwargs"] == {"ana_long_short": False, "ann_scaler": 252}
    assert recs[2]["kwargs"]["config"] is workflow["port_analysis_config"]


def test_segments_must_be_ordered():
    with pytest.raises(ConfigError, match="ordered"):
        Segments(("2012-01-01", "2014-12-31"), ("2014-06-01", "2014-12-31"), ("2015-01-01", "2015-06-30"))
    with pytest.raises(ConfigError, match="after end"):
        Segments(("2013-01-01", "2012-12-31"), ("2014-01-01", "2014-06-30"), ("2014-07-01", "2014-12-31"))


def test_the_published_row_is_qlibs_readme():
    assert [PUBLISHED[k] for k in METRICS] == [0.0448, 0.3660, 0.0469, 0.3877, 0.0901, 1.0164, -0.1038]
    assert DATA_SEGMENTS.test == ("2017-01-01", "2020-08-01")


# ---------------------------------------------------------------------------------------------------------------
# Summary over seeds
# ---------------------------------------------------------------------------------------------------------------


def _seed(variant, seed, base):
    return SeedResult(variant, seed, {k: base + i for i, k in enumerate(METRICS)}, {}, 10, 158, 1.0, 1.0,
                      "e", f"r{seed}", "/tmp")


def test_mean_and_sample_std_over_seeds():
    rows = [{k: v for k in METRICS} for v in (0.01, 0.02, 0.06)]
    s = summarize(rows)
    assert s["mean"]["ic"] == pytest.approx(0.03)
    assert s["std"]["ic"] == pytest.approx(math.sqrt(((0.02) ** 2 + 0.01**2 + 0.03**2) / 2))
    assert math.isnan(summarize(rows[:1])["std"]["icir"])


def test_paired_difference_subtracts_the_same_seed_and_the_table_shows_the_published_row(tmp_path):
    from graphwiz_trader.research.reproduce_csi300 import DataAudit

    audit = DataAudit(("A",), (), False, "percent", 9.5, "2010-01-04")
    res = ReproductionResult({}, {}, audit, {"alpha158": [_seed("alpha158", 0, 0.0), _seed("alpha158", 1, 1.0)],
                                             "alpha158+graph": [_seed("alpha158+graph", 1, 1.5),
                                                                _seed("alpha158+graph", 0, 0.25)]}, {}, None)
    d = res.paired_difference("alpha158+graph")
    assert [p["seed"] for p in d["per_seed"]] == [1, 0]
    assert [p["ic"] for p in d["per_seed"]] == [0.5, 0.25]
    assert d["mean"]["ic"] == pytest.approx(0.375)
    table = format_table(res)
    assert "published (20 seeds)" in table and "0.0448" in table and "-0.1038" in table
    assert "graph - baseline (paired)" in table
    payload = res.to_payload()
    assert payload["variants"]["alpha158"]["mean"]["ic"] == pytest.approx(0.5)
    assert "no $vwap field" in " ".join(payload["data_notes"])


# ---------------------------------------------------------------------------------------------------------------
# Graph features: values and point-in-time
# ---------------------------------------------------------------------------------------------------------------


def _panel(n_days=140, n_assets=9, seed=3):
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 0.01, (n_days, 1))
    groups = rng.normal(0, 0.01, (n_days, 3))
    eps = rng.normal(0, 0.01, (n_days, n_assets))
    r = common + groups[:, np.arange(n_assets) % 3] * rng.uniform(0.5, 2, n_assets) + eps
    px = 20 * np.exp(np.cumsum(r, axis=0))
    idx = pd.bdate_range("2015-01-05", periods=n_days, name="datetime")
    close = pd.DataFrame(px, index=idx, columns=[f"SH60{i:04d}" for i in range(n_assets)])
    close.iloc[30:45, 2] = np.nan           # a suspension
    close.iloc[:70, 8] = np.nan             # listed late
    members = pd.DataFrame(True, index=idx, columns=close.columns)
    members.iloc[100:, 5] = False           # leaves the index
    return close, members


def _shared_features(close, members, cfg):
    """The shared path in memory (no store): build_panel_graph, then graph_features of what it built."""
    from graphwiz_trader.features.graph_features import graph_features
    from graphwiz_trader.graph.pipeline import build_panel_graph
    from graphwiz_trader.research.csi300_data import graph_build_settings

    utc = close.index.tz_localize("UTC")
    panel = pd.DataFrame(close.to_numpy(), index=utc, columns=close.columns)
    mask = pd.DataFrame(members.to_numpy(), index=utc, columns=panel.columns)
    build = build_panel_graph(panel, graph_build_settings(cfg), mask)
    feats = graph_features(build.snapshots, None, panel, horizons=(cfg.mom_days,), gaps=True, members=mask)
    return build, feats


CFG = GraphFeatureSettings(window=40, min_periods=30, stride=5, top_k=3, mom_days=5)


def test_csi300_graph_features_read_back_from_the_store_equal_the_shared_code_on_the_built_graph(graph_store):
    close, members = _panel()
    got = graph_features_csi300(close, members, CFG, store=graph_store)
    _, ref = _shared_features(close, members, CFG)
    assert list(got.columns) == list(graph_feature_columns(CFG))
    assert got.index.names == ["datetime", "instrument"] and got.index.get_level_values(0).tz is None
    expect = ref[list(graph_feature_columns(CFG))].astype(np.float32)
    expect.index = pd.MultiIndex.from_arrays([expect.index.get_level_values(0).tz_convert(None),
                                              expect.index.get_level_values(1)], names=["datetime", "instrument"])
    pd.testing.assert_frame_equal(got, expect.sort_index())


def test_the_neighbour_momentum_gap_is_the_own_five_day_log_return_minus_the_neighbours(graph_store):
    close, members = _panel()
    got = graph_features_csi300(close, members, CFG, store=graph_store)
    own = np.log(close).diff(5).stack().rename("own")
    own.index = own.index.set_names(["datetime", "instrument"])
    both = got.join(own.astype(np.float32), how="left").dropna(subset=["G_nbr_mom_5", "own"])
    assert len(both) > 500
    np.testing.assert_allclose(both["G_nbr_mom_gap_5"], both["own"] - both["G_nbr_mom_5"], rtol=1e-5, atol=1e-6)


def test_non_members_and_short_histories_are_not_nodes_and_have_no_rows(graph_store):
    close, members = _panel()
    build, _ = _shared_features(close, members, CFG)
    feats = graph_features_csi300(close, members, CFG, store=graph_store)
    insts = feats.index.get_level_values("instrument")
    dts = feats.index.get_level_values("datetime")
    # SH600005 leaves the index on day 100: no row from then on, and no snapshot from then on holds it
    assert dts[insts == "SH600005"].max() == close.index[99]
    for snap in build.snapshots:
        member_then = bool(members.loc[snap.as_of.tz_convert(None), "SH600005"])
        assert ("SH600005" in snap.assets) == member_then
    # SH600008 has its first close on day 70: 30 log returns first on day 100, so it is no node before then
    # (and its snapshot metrics are NaN until the first snapshot that holds it)
    first = min(s.as_of for s in build.snapshots if "SH600008" in s.assets)
    assert first.tz_convert(None) >= close.index[100]
    g8 = feats.xs("SH600008", level="instrument")["G_wdeg"]
    assert g8[g8.index < first.tz_convert(None)].isna().all() and g8[g8.index >= first.tz_convert(None)].notna().all()


@pytest.mark.parametrize("t_pos", [41, 104, 139])
def test_graph_features_on_day_t_do_not_change_when_later_days_are_removed(graph_store, t_pos):
    close, members = _panel()
    full = graph_features_csi300(close, members, CFG, store=graph_store)
    cut = graph_features_csi300(close.iloc[: t_pos + 1], members.iloc[: t_pos + 1], CFG, store=graph_store)
    t = close.index[t_pos]
    pd.testing.assert_frame_equal(full.xs(t, level="datetime"), cut.xs(t, level="datetime"))
    assert cut.index.get_level_values("datetime").max() == t


def test_a_membership_mask_of_another_shape_is_refused():
    close, members = _panel()
    from graphwiz_trader.errors import DataError

    with pytest.raises(DataError, match="same index and columns"):
        graph_features_csi300(close, members.iloc[:, :-1], CFG, store=object())


def test_bad_graph_settings_fail_clearly():
    with pytest.raises(ConfigError, match="min_periods"):
        GraphFeatureSettings(window=20, min_periods=30)
    with pytest.raises(ConfigError, match="rho_min"):
        GraphFeatureSettings(rho_min=1.5)
    with pytest.raises(ConfigError, match="min_periods"):
        GraphFeatureSettings(window=20, min_periods=2)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def _parser():
    from graphwiz_trader.core.commandline import GraphwizParser

    p = GraphwizParser(prog="graphwiz")  # the project's parser: --no-progress after any command
    commands_reproduce.register(p.add_subparsers(dest="command"))
    return p


def test_reproduce_group_has_qlib_csi300_with_seed_count_or_list():
    a = _parser().parse_args(["reproduce", "qlib-csi300", "--data", "x", "--seeds", "3", "--no-graph"])
    assert a.seeds == (0, 1, 2) and a.no_graph and a.func.__name__ == "_csi300"
    b = _parser().parse_args(["reproduce", "qlib-csi300", "--data", "x", "--seeds", "7,11"])
    assert b.seeds == (7, 11) and not b.no_graph


def test_reproduce_without_a_target_prints_help_and_returns_2():
    a = _parser().parse_args(["reproduce"])
    assert a.func(a) == 2


def test_a_folder_that_is_not_qlib_data_is_refused(tmp_path):
    a = _parser().parse_args(["reproduce", "qlib-csi300", "--data", str(tmp_path)])
    with pytest.raises(ConfigError, match="not a Qlib data folder"):
        a.func(a)


# ---------------------------------------------------------------------------------------------------------------
# Real data (../shared/data/qlib_cn_csi300)
# ---------------------------------------------------------------------------------------------------------------

CODES_20 = ("SH600000,SH600009,SH600010,SH600015,SH600016,SH600019,SH600028,SH600029,SH600030,SH600031,"
            "SH600036,SH600048,SH600050,SH600066,SH600085,SH600089,SH600100,SH600104,SH600108,SH600109").split(",")
TINY = Segments(("2012-01-01", "2013-12-31"), ("2014-01-01", "2014-06-30"), ("2014-07-01", "2014-12-31"))


@pytest.fixture(scope="module")
def csi300():
    d = csi300_dir()
    if not (d / "calendars" / "day.txt").is_file():
        pytest.skip(f"CSI300 Qlib data not found at {d} (see ../shared/data/README.md)")
    return d


@pytest.fixture(scope="module")
def tiny_cfg(csi300, tmp_path_factory):
    # 20 instruments are too few for the published L1/L2 penalties (the model would make no split and
    # predict a constant), so this run relaxes them; the full reproduction does not.
    return CSI300ReproductionSettings(provider_uri=csi300, seeds=(0,), segments=TINY, market=tuple(CODES_20),
                           num_boost_round=30, early_stopping_rounds=30, topk=5, n_drop=1,
                           exchange_codes=tuple(CODES_20), graph=True,
                           graph_config=GraphFeatureSettings(window=60, min_periods=40, stride=5, top_k=5),
                           mlflow_dir=tmp_path_factory.mktemp("mlruns"),
                           model_overrides={"lambda_l1": 0.0, "lambda_l2": 1.0},
                           cache_dir=tmp_path_factory.mktemp("feature_cache"))


@pytest.fixture(scope="module")
def tiny_run(tiny_cfg, tmp_path_factory, embedded_graph_server):
    from graphwiz_trader.config.settings import GraphSettings
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.research.reproduce_csi300 import run_reproduction

    run_dir = tmp_path_factory.mktemp("run")
    s = embedded_graph_server
    with GraphStore.connect(GraphSettings(uri=s.uri, user=s.user, password=s.password, database=s.database)) as store:
        return run_reproduction(tiny_cfg, run_dir=run_dir, progress=False, store=store), run_dir


@pytest.mark.realdata
def test_the_shared_data_stores_change_in_percent(csi300, tmp_path):
    from graphwiz_trader.data.qlib_runtime import init_qlib
    from graphwiz_trader.research.reproduce_csi300 import detect_change_unit

    init_qlib(csi300, region="cn", mlflow_dir=tmp_path / "ml", kernels=1)
    assert detect_change_unit(CODES_20[:5], "2017-01-01", "2017-03-31") == "percent"


@pytest.mark.slow
@pytest.mark.realdata
def test_a_tiny_end_to_end_run_gives_finite_ic_equal_to_an_independent_computation(tiny_run):
    from qlib.workflow import R

    res, run_dir = tiny_run
    assert set(res.runs) == {"alpha158", "alpha158+graph"}
    base, graph = res.runs["alpha158"][0], res.runs["alpha158+graph"][0]
    assert (base.n_features, graph.n_features) == (158, 158 + len(GRAPH_FEATURES))
    assert res.audit.change_unit == "percent" and res.audit.limit_threshold == pytest.approx(9.5)
    for r in (base, graph):
        assert all(math.isfinite(r.metrics[k]) for k in METRICS), r.metrics
        rec = R.get_recorder(recorder_id=r.recorder_id, experiment_id=r.experiment_id)
        pred = rec.load_object("pred.pkl")["score"]
        label = rec.load_object("label.pkl").iloc[:, 0]
        ic = rec.load_object("sig_analysis/ic.pkl")
        ric = rec.load_object("sig_analysis/ric.pkl")
        assert r.metrics["ic"] == pytest.approx(ic.mean(), rel=1e-12)
        assert r.metrics["icir"] == pytest.approx(ic.mean() / ic.std(ddof=1), rel=1e-12)
        assert r.metrics["rank_icir"] == pytest.approx(ric.mean() / ric.std(ddof=1), rel=1e-12)
        # Qlib's per-day IC equals an independent per-day numpy Pearson / Spearman (days with a constant
        # score or label are left out: their correlation is undefined, Qlib's pandas gives ~0 or NaN)
        both = pd.DataFrame({"p": pred, "l": label.astype("float64")}).dropna()
        checked = 0
        for t, g in both.groupby(level="datetime"):
            if g["p"].nunique() < 2 or g["l"].nunique() < 2 or len(g) < 3:
                continue
            assert ic.loc[t] == pytest.approx(np.corrcoef(g["p"], g["l"])[0, 1], rel=1e-9, abs=1e-12)
            assert ric.loc[t] == pytest.approx(np.corrcoef(g["p"].rank(), g["l"].rank())[0, 1], rel=1e-9, abs=1e-12)
            checked += 1
        assert checked >= 100
        report = rec.load_object("portfolio_analysis/report_normal_1day.pkl")
        assert {"account", "return", "cost", "bench", "turnover"} <= set(report.columns)
        assert report.index.min() >= pd.Timestamp("2014-07-01") and report.index.max() <= pd.Timestamp("2014-12-31")
        risk = rec.load_object("portfolio_analysis/port_analysis_1day.pkl")["risk"]
        assert r.metrics["max_drawdown_with_cost"] == risk[("excess_return_with_cost", "max_drawdown")]
    assert (run_dir / "graph_features.parquet").is_file() and (run_dir / "qlib_output.log").is_file()


@pytest.mark.slow
@pytest.mark.realdata
def test_the_graph_dataset_is_alpha158_plus_the_graph_columns(tiny_cfg, tiny_run):
    from qlib.utils import init_instance_by_config

    from graphwiz_trader.research.reproduce_csi300 import _graph_dataset

    _, run_dir = tiny_run
    graph = pd.read_parquet(run_dir / "graph_features.parquet")
    wf = build_workflow_config(tiny_cfg, limit_threshold=9.5)
    base = init_instance_by_config(wf["task"]["dataset"])
    gds = _graph_dataset(base, graph, tiny_cfg.segments)
    b = base.prepare("test", col_set="feature")
    g = gds.prepare("test", col_set="feature")
    assert g.index.equals(b.index)
    pd.testing.assert_frame_equal(g[list(b.columns)], b)
    expect = graph.reindex(b.index)
    np.testing.assert_array_equal(g[list(GRAPH_FEATURES)].to_numpy(), expect.to_numpy())
    assert expect["G_wdeg"].notna().mean() > 0.95


@pytest.mark.slow
@pytest.mark.realdata
def test_real_graph_features_are_point_in_time(csi300, tmp_path, graph_store):
    from graphwiz_trader.data.qlib_runtime import init_qlib
    from graphwiz_trader.research.reproduce_csi300 import load_close_and_membership

    init_qlib(csi300, region="cn", mlflow_dir=tmp_path / "ml", kernels=1)
    close, members = load_close_and_membership("csi300", "2016-01-01", "2016-12-31")
    # 300 members a day, less the members without features (absent from the panel)
    assert members.sum(axis=1).between(250, 300).all()
    assert members["SH600000"].all() and "SH600005" not in members.columns
    cfg = GraphFeatureSettings()
    full = graph_features_csi300(close, members, cfg, store=graph_store)
    for t_pos in (60, 100, 151):
        t = close.index[t_pos]
        cut = graph_features_csi300(close.iloc[: t_pos + 1], members.iloc[: t_pos + 1], cfg, store=graph_store)
        pd.testing.assert_frame_equal(full.xs(t, level="datetime"), cut.xs(t, level="datetime"))


@pytest.mark.slow
@pytest.mark.realdata
def test_the_command_writes_the_json_with_per_seed_values(csi300, tmp_path):
    p = _parser()
    a = p.parse_args(["reproduce", "qlib-csi300", "--data", str(csi300), "--seeds", "1", "--no-graph",
                      "--instruments", ",".join(CODES_20), "--train", "2012-01-01:2013-12-31",
                      "--valid", "2014-01-01:2014-06-30", "--test", "2014-07-01:2014-12-31",
                      "--num-boost-round", "5", "--topk", "5", "--n-drop", "1", "--out", str(tmp_path / "run"),
                      "--mlflow-dir", str(tmp_path / "ml"), "--json", str(tmp_path / "out.json"), "--no-progress"])
    assert a.func(a) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert set(out["variants"]) == {"alpha158"}
    assert [r["seed"] for r in out["variants"]["alpha158"]["per_seed"]] == [0]
    assert set(out["variants"]["alpha158"]["mean"]) == set(METRICS)
    assert out["published"]["ic"] == 0.0448
    assert "published (20 seeds)" in (tmp_path / "run" / "table.txt").read_text()


@pytest.mark.slow
@pytest.mark.realdata
def test_a_second_run_reads_alpha158_from_the_cache_and_gives_the_same_figures(tiny_cfg, tiny_run):
    import dataclasses

    from graphwiz_trader.research.reproduce_csi300 import run_reproduction

    first, _ = tiny_run
    assert first.config["alpha158_from_cache"] is False
    assert len(list(Path(tiny_cfg.cache_dir).glob("alpha158_*.parquet"))) == 1
    again = run_reproduction(dataclasses.replace(tiny_cfg, graph=False), run_dir=None, progress=False)
    assert again.config["alpha158_from_cache"] is True
    assert again.runs["alpha158"][0].metrics == first.runs["alpha158"][0].metrics   # exactly, every figure


@pytest.mark.realdata
@pytest.mark.slow
def test_models_fitted_side_by_side_in_worker_processes_give_the_serial_figures(tiny_cfg, tiny_run,
                                                                                embedded_graph_server):
    """The signal figures are equal exactly. Qlib's backtest breaks ties by iterating a set, so its figures are
    equal across processes only under one PYTHONHASHSEED (the command says so); then they are compared too."""
    import dataclasses

    from graphwiz_trader.config.settings import GraphSettings
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.research.reproduce_csi300 import run_reproduction

    first, _ = tiny_run                                            # seed 0, one model after the other
    s = embedded_graph_server
    cfg = dataclasses.replace(tiny_cfg, seeds=(0, 1), workers=2)
    with GraphStore.connect(GraphSettings(uri=s.uri, user=s.user, password=s.password, database=s.database)) as store:
        par = run_reproduction(cfg, run_dir=None, progress=False, store=store)
    for variant in ("alpha158", "alpha158+graph"):
        assert [r.seed for r in par.runs[variant]] == [0, 1]
        got, want = par.runs[variant][0].metrics, first.runs[variant][0].metrics
        signal = ("ic", "icir", "rank_ic", "rank_icir")
        assert {k: got[k] for k in signal} == {k: want[k] for k in signal}      # exactly
        if os.environ.get("PYTHONHASHSEED") not in (None, "random"):
            assert got == want                                                  # every figure
        assert par.runs[variant][1].metrics["ic"] != got["ic"]                  # another seed, another model
        assert all(math.isfinite(v) for v in par.runs[variant][1].metrics.values())


def test_the_cache_key_changes_when_a_data_file_or_the_handler_changes(tmp_path):
    from graphwiz_trader.research.csi300_cache import (
        provider_fingerprint,
        raw_frame_key,
    )

    for rel, text in (("calendars/day.txt", "2020-01-02\n"), ("instruments/csi300.txt", "SH600000\t2020-01-02\t2020-12-31\n"),
                      ("features/sh600000/close.day.bin", "0123")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    kw = {"instruments": "csi300", "start_time": "2020-01-01", "end_time": "2020-12-31"}
    fp, key = provider_fingerprint(tmp_path), raw_frame_key(tmp_path, kw)
    assert provider_fingerprint(tmp_path) == fp and raw_frame_key(tmp_path, dict(kw)) == key   # stable
    assert raw_frame_key(tmp_path, {**kw, "end_time": "2020-06-30"}) != key
    (tmp_path / "features/sh600000/close.day.bin").write_text("01234")                          # data changed
    assert provider_fingerprint(tmp_path) != fp and raw_frame_key(tmp_path, kw) != key
    fp2 = provider_fingerprint(tmp_path)
    (tmp_path / "features/sh600001").mkdir()
    (tmp_path / "features/sh600001/close.day.bin").write_text("0123")                           # a file added
    assert provider_fingerprint(tmp_path) != fp2


@pytest.mark.realdata
def test_an_instrument_is_absent_before_it_joins_csi300_and_after_it_leaves(csi300, tmp_path, graph_store):
    # SH600880 was a member from 2014-06-16 to 2014-12-15 only (instruments/csi300.txt of the shared data)
    from qlib.data import D

    from graphwiz_trader.data.qlib_runtime import init_qlib
    from graphwiz_trader.research.csi300_data import load_close_and_membership

    spans = {ln.split("\t")[0]: [] for ln in (csi300 / "instruments" / "csi300.txt").read_text().splitlines()}
    for ln in (csi300 / "instruments" / "csi300.txt").read_text().splitlines():
        code, a, b = ln.split("\t")
        spans[code].append((pd.Timestamp(a), pd.Timestamp(b)))
    assert spans["SH600880"] == [(pd.Timestamp("2014-06-16"), pd.Timestamp("2014-12-15"))]
    init_qlib(csi300, region="cn", mlflow_dir=tmp_path / "ml", kernels=1)
    start, end = "2014-01-01", "2015-06-30"
    # the features stage: Qlib's data loader over the market (what Alpha158's handler reads) has its rows inside
    # the span only
    close = D.features(D.instruments("csi300"), ["$close"], start_time=start, end_time=end)
    days = close.xs("SH600880", level="instrument").index
    assert days.min() == pd.Timestamp("2014-06-16") and days.max() == pd.Timestamp("2014-12-15")
    # the graph stage: the membership mask, and graph features only on member days
    px, members = load_close_and_membership("csi300", start, end)
    inside = members["SH600880"]
    assert inside[inside].index.min() == pd.Timestamp("2014-06-16")
    assert inside[inside].index.max() == pd.Timestamp("2014-12-15")
    # the graph stage, through the shared builders and the store: a node only on snapshot days it is a member,
    # feature rows only on member days
    from graphwiz_trader.graph.pipeline import build_panel_graph
    from graphwiz_trader.research.csi300_data import graph_build_settings

    cfg = GraphFeatureSettings(window=60, min_periods=40, stride=5)
    graph = graph_features_csi300(px, members, cfg, store=graph_store)
    utc = px.index.tz_localize("UTC")
    build = build_panel_graph(pd.DataFrame(px.to_numpy(), index=utc, columns=px.columns), graph_build_settings(cfg),
                              pd.DataFrame(members.to_numpy(), index=utc, columns=px.columns))
    held = [s.as_of.tz_convert(None) for s in build.snapshots if "SH600880" in s.assets]
    assert held and min(held) >= pd.Timestamp("2014-06-16") and max(held) <= pd.Timestamp("2014-12-15")
    back = graph_store.read_snapshots(build.build_id)
    assert [s.as_of.tz_convert(None) for s in back if "SH600880" in s.assets] == held
    g_days = graph.xs("SH600880", level="instrument").index
    assert len(g_days) > 0
    assert g_days.min() >= pd.Timestamp("2014-06-16") and g_days.max() <= pd.Timestamp("2014-12-15")
    # and a member over the whole range is there before and after
    whole = graph.xs("SH600000", level="instrument").index
    assert whole.min() < pd.Timestamp("2014-06-16") and whole.max() > pd.Timestamp("2014-12-15")
    # the portfolio stage: with the membership from instruments/csi300.txt as the universe, the walk-forward
    # optimiser never weights SH600880 outside its span (and does weight it inside)
    from graphwiz_trader.data.universe import membership_mask
    from graphwiz_trader.portfolio import OptimiserSettings, PortfolioConstraints, rolling_optimise

    names = ["SH600880", *CODES_20[:9]]
    prices = px[names].copy()
    prices.index = prices.index.tz_localize("UTC")
    universe = membership_mask(csi300, prices.index, names, market="csi300")
    decisions = prices.index[60::5]
    w = rolling_optimise(prices, decisions, None, OptimiserSettings(method="min_volatility", cov_window_bars=60,
                                                                    periods_per_year=252),
                         PortfolioConstraints(max_position_weight=0.3), universe=universe).weights
    day = w.index.tz_convert(None)
    outside = (day < pd.Timestamp("2014-06-16")) | (day > pd.Timestamp("2014-12-15"))
    assert (w.loc[outside, "SH600880"] == 0).all() and (w.loc[~outside, "SH600880"] > 0).any()
