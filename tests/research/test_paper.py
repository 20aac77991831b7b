"""The paper: written from a run's figures only (Markdown, an offline HTML twin, SVG figures), verdicts computed
from where the intervals lie, the goals judged on the declared hybrid; the Sharpe difference interval resamples
both strategies' days together; and the command runs end to end on a small real configuration of both datasets,
with every variant on the same test rows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.research.paper import scored_days, sharpe, sharpe_difference
from graphwiz_trader.research.paper_render import (
    build_paper,
    line_svg,
    to_markdown,
    verdict,
    write_paper,
)

SHARED = Path(os.environ.get("GRAPHWIZ_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _row(name, kind="model", ric=0.03, diff=None, lo=None, hi=None):
    r = {"variant": name, "kind": kind, "ric_mean": ric, "ric_boot_lo": ric - 0.01, "ric_boot_hi": ric + 0.01,
         "ric_hac_lo": ric - 0.01, "ric_hac_hi": ric + 0.01}
    if diff is not None:
        r.update({"diff_mean": diff, "diff_boot_lo": lo, "diff_boot_hi": hi, "diff_hac_lo": lo, "diff_hac_hi": hi,
                  "ahead_blocks": 9, "diff_n_blocks": 12})
    return r


def _payload() -> dict:
    table = [_row("alpha158"), _row("+graph18", diff=0.004, lo=-0.002, hi=0.01),
             _row("+all", diff=0.025, lo=0.011, hi=0.04), _row("reversal_1", "naive", 0.01, -0.02, -0.03, -0.01)]
    hz = {"table": table, "accuracy": [{"variant": "alpha158", "accuracy": 0.52},
                                       {"variant": "+all", "accuracy": 0.53, "rel_mean": 1.9, "rel_boot_lo": 0.5,
                                        "rel_boot_hi": 3.1}],
          "rank_ic": {"index": [str(i) for i in range(12)],
                      "columns": {"alpha158": [0.03] * 12, "+all": [0.055] * 11 + [None]}},
          "family_shap": {}, "shap_stability": {"+all": [{"family": "peer", "mean_share": 0.2, "std_share": None,
                                                         "first_share": 1.0, "rank_corr_consecutive": None}]},
          "seconds": 1.0}
    ds = {"label": "tiny", "info": {"timeframe": "1h", "rows": 10, "instruments": 2, "range": ["a", "b"],
                                    "snapshots": 3},
          "build_id": "abc", "variants": [{"name": "+all", "note": "every family"}], "families": {"peer": ["P_x"]},
          "graph18": ["G_wdeg"], "ablation": {"block": "fold", "seeds": [0], "walkforward": {
              "train_len": 100, "test_len": 10, "stride": 10, "max_folds": None, "stop_fraction": 0.15,
              "lgb_params": {}, "num_boost_round": 5}},
          "horizons": {"1": hz}, "peers": {},
          "costs": {"1": {"rebalance_bars": 1, "variants": {
              "alpha158": {"net_sharpe_daily": 0.5, "total_return": 0.1},
              "+all": {"net_sharpe_daily": 0.4, "total_return": 0.05,
                       "sharpe_diff_vs_alpha158": {"diff": -0.1, "lo": -0.5, "hi": 0.3}}}}}}
    return {"settings": {"seeds": [0]}, "datasets": {"crypto": ds}, "seconds": 3.0, "command": "graphwiz x"}


@pytest.mark.parametrize("lo, hi, says", [(0.1, 0.2, "above zero"), (-0.2, -0.1, "below zero"),
                                          (-0.1, 0.1, "contains zero"), (None, None, "no interval (too few blocks)")])
def test_each_verdict_follows_from_where_the_interval_lies(lo, hi, says):
    assert verdict(lo, hi) == says


def test_the_goals_are_judged_on_the_declared_hybrid_with_their_intervals():
    md = to_markdown(build_paper(_payload(), "graphwiz x"), "f")
    goals = md.split("## Goals")[1].split("##")[0]
    assert "Crypto, h = 1: `+all` − Alpha158 Rank IC +0.0250 [+0.0110, +0.0400]" in goals and "**met**" in goals
    assert "net Sharpe `+all` − Alpha158 -0.10 [-0.50, +0.30]: **not met**" in goals
    assert "| +graph18 | model | 0.0300 [+0.0200, +0.0400] | +0.0040 [-0.0020, +0.0100] |" in md
    assert "| crypto | 1 | +all | 52.00 | 53.00 | +1.90 [+0.50, +3.10] | overlaps |" in md


def test_the_moonshot_is_judged_on_qlibs_label_and_the_paper_shows_every_model_on_it():
    payload = _payload()
    cs = json.loads(json.dumps(payload["datasets"]["crypto"]))
    cs["costs"] = {}
    cs["reference_label"] = {"label": "Ref($close, -2) / Ref($close, -1) - 1", "horizons": {"1": [
        {"variant": "alpha158", "ic_mean": 0.031, "ic_boot_lo": 0.02, "ic_boot_hi": 0.04, "ric_mean": 0.04,
         "ric_boot_lo": 0.03, "ric_boot_hi": 0.05},
        {"variant": "+all", "ic_mean": 0.036, "ic_boot_lo": 0.025, "ic_boot_hi": 0.047, "ric_mean": 0.049,
         "ric_boot_lo": 0.038, "ric_boot_hi": 0.06}]}}
    payload["datasets"]["csi300"] = cs
    md = to_markdown(build_paper(payload, "graphwiz x"), "f")
    goals = md.split("## Goals")[1].split("##")[0]
    assert ("`+all` scores of horizon 1 on that label: IC 0.0360 [+0.0250, +0.0470], Rank IC 0.0490: **not met**"
            in goals)
    assert "### csi300: the same scores on Qlib's label" in md
    assert "| +all | 0.0360 [+0.0250, +0.0470] | 0.0490 [+0.0380, +0.0600] |" in md


def test_the_paper_is_markdown_an_offline_html_twin_and_svg_figures(tmp_path):
    paths = write_paper(_payload(), tmp_path / "paper.md", "graphwiz x")
    md = Path(paths["markdown"]).read_text()
    page = Path(paths["html"]).read_text()
    figs = sorted(Path(paths["figures"]).glob("*.svg"))
    assert len(figs) == 1 and f"](paper_files/{figs[0].name})" in md
    assert "<svg" in page and "<table>" in page
    assert not re.search(r"(src|href)=\"https?://", page)             # nothing fetched when opened offline
    assert write_paper(_payload(), tmp_path / "again.md", "graphwiz x")  # same payload, same text
    assert (tmp_path / "again.md").read_text().replace("again_files", "paper_files") == md


def test_the_cumulative_figure_draws_one_line_per_series():
    svg = line_svg({"a": [0.1, 0.2, None], "b": [-0.1, 0.0, 0.1]}, ["x", "y", "z"], "t", "y")
    assert svg.count("<polyline") == 2 and svg.startswith("<svg")


def test_the_sharpe_difference_interval_resamples_both_strategies_together():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2024-01-01", periods=500, freq="D")
    common = rng.normal(0, 0.01, 500)
    a = pd.Series(common + 0.001, index=idx)
    b = pd.Series(common, index=idx)
    d = sharpe_difference(a, b, 365, n_resamples=2000)
    assert d["diff"] == pytest.approx(sharpe(a.to_numpy(), 365) - sharpe(b.to_numpy(), 365))
    assert 0 < d["lo"] < d["diff"] < d["hi"]       # paired days: a constant 10 bps edge is clearly positive
    assert np.isnan(sharpe_difference(a[:10], b[:10], 365)["diff"])


def test_qlib_label_is_the_return_from_the_next_close_to_the_one_after_and_bridges_no_gap():
    from graphwiz_trader.research.paper_data import qlib_label

    days = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"])
    close = pd.DataFrame({"SH600000": [10.0, 11.0, 12.1, 13.31], "SZ000001": [5.0, np.nan, 6.0, 3.0]}, index=days)
    y = qlib_label(close)
    assert y.loc[(days[0], "SH600000")] == pytest.approx(12.1 / 11.0 - 1)
    assert y.loc[(days[1], "SH600000")] == pytest.approx(13.31 / 12.1 - 1)
    assert y.loc[(days[1], "SZ000001")] == pytest.approx(3.0 / 6.0 - 1)
    assert (days[0], "SZ000001") not in y.index                       # its next close is missing
    assert (days[2], "SH600000") not in y.index                       # no close two days later


def test_sharpe_is_measured_on_the_days_with_scores_and_the_exit_day_after_each():
    t = pd.DatetimeIndex(["2024-01-01 05:00", "2024-01-01 06:00", "2024-01-02 23:00", "2024-01-10 00:00"])
    scores = pd.Series([0.1, np.nan, 0.2, 0.3],
                       index=pd.MultiIndex.from_arrays([t, ["A", "A", "B", "A"]], names=["datetime", "instrument"]))
    days = scored_days(scores)
    assert [str(d.date()) for d in days] == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-10", "2024-01-11"]
    assert str(days.tz) == "UTC"


@pytest.mark.slow
@pytest.mark.realdata
def test_the_paper_command_runs_end_to_end_on_a_small_configuration_of_both_datasets(
        graph_settings, graph_store, tmp_path, monkeypatch, capsys):
    crypto, csi = SHARED / "binance_spot_2020_2024", SHARED / "qlib_cn_csi300"
    if not (crypto / "1h").is_dir() or not (csi / "calendars" / "day.txt").is_file():
        pytest.skip(f"real data not found under {SHARED}")
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())
    paper = tmp_path / "docs" / "paper.md"
    rc = main(["--no-progress", "reproduce", "paper", "--crypto-data", str(crypto), "--csi300-data", str(csi),
               "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT,BNB/USDT,XRP/USDT", "--start", "2023-01-01",
               "--end", "2023-04-15", "--crypto-horizons", "1,4", "--train-len", "1200", "--test-len", "150",
               "--stride", "150", "--rounds", "20", "--graph-window", "240", "--qlib-dir", str(tmp_path / "qlib"),
               "--instruments", "SH600000,SH600036,SH600519,SH601318,SZ000001,SZ000002,SH600030,SH600016,"
               "SH601166,SZ000651,SZ000858,SH601328", "--csi300-horizons", "5", "--csi300-rounds", "30",
               "--cache-dir", str(tmp_path / "cache"), "--peer-epochs", "1", "--workers", "1",
               "--paper", str(paper), "--stage-cache", str(tmp_path / "stages"), "--out", str(tmp_path / "run")])
    assert rc == 0
    payload = json.loads((tmp_path / "run" / "paper.json").read_text())
    variants = {"alpha158", "+graph18", "+peer", "+residual", "+leadlag", "+dynamics", "+regime_x",
                "+regime_split", "+all"}
    for key, horizons in (("crypto", {"1", "4"}), ("csi300", {"5"})):
        ds = payload["datasets"][key]
        assert set(ds["horizons"]) == horizons
        for h, hz in ds["horizons"].items():
            names = {r["variant"] for r in hz["table"]}
            assert variants <= names
            preds = pd.read_parquet(tmp_path / "run" / f"{key}_predictions_h{h}.parquet")
            assert preds[sorted(variants)].notna().all().all()     # every variant scored every test row
        assert set(ds["families"]) == {"peer", "residual", "leadlag", "dynamics", "regime"}
    peers = {r["variant"] for r in payload["datasets"]["csi300"]["horizons"]["5"]["table"] if r["kind"] == "peer"}
    assert peers == {"qlib_linear", "qlib_gats"}
    assert set(payload["datasets"]["crypto"]["costs"]) == {"1", "4"}
    ref = payload["datasets"]["csi300"]["reference_label"]
    assert ref["label"] == "Ref($close, -2) / Ref($close, -1) - 1" and set(ref["horizons"]) == {"5"}
    assert {r["variant"] for r in ref["horizons"]["5"]} == variants | {"qlib_linear", "qlib_gats"}
    assert payload["datasets"]["crypto"]["reference_label"] is None
    c4 = payload["datasets"]["crypto"]["costs"]["4"]
    preds4 = pd.read_parquet(tmp_path / "run" / "crypto_predictions_h4.parquet")
    assert 0 < c4["days"] <= len(scored_days(preds4["alpha158"]))     # Sharpe only over the days that had scores
    assert np.isfinite(c4["equal_weight"]["net_sharpe_daily"])       # the naive baseline, on the same days
    md = paper.read_text()
    assert "### crypto: horizon 4 bars" in md and "### csi300: horizon 5 days" in md
    assert "--instruments" in md and paper.with_suffix(".html").is_file()
    # the paper is written again from the run's figures alone, identically
    again = tmp_path / "again.md"
    assert main(["reproduce", "paper", "--from-json", str(tmp_path / "run" / "paper.json"), "--paper", str(again),
                 "--out", str(tmp_path / "run2")]) == 0
    assert again.read_text().replace("again_files", "paper_files") == md


def test_runs_of_one_dataset_each_make_one_paper_and_a_dataset_twice_is_refused(tmp_path):
    from graphwiz_trader.errors import ConfigError
    from graphwiz_trader.research.commands_paper import merge_payloads

    a = _payload()
    b = json.loads(json.dumps(_payload()))
    b["datasets"] = {"csi300": b["datasets"].pop("crypto")}
    b["command"] = "graphwiz y"
    for i, p in enumerate((a, b)):
        (tmp_path / f"{i}.json").write_text(json.dumps(p))
    assert main(["reproduce", "paper", "--from-json", str(tmp_path / "0.json"), "--from-json", str(tmp_path / "1.json"),
                 "--paper", str(tmp_path / "p.md"), "--out", str(tmp_path / "run")]) == 0
    md = (tmp_path / "p.md").read_text()
    assert "### crypto: horizon 1 bars" in md and "### csi300: horizon 1 bars" in md
    assert "graphwiz x\ngraphwiz y" in md and "2 runs of `graphwiz reproduce paper`" in md
    with pytest.raises(ConfigError, match="more than one run"):
        merge_payloads([a, a])
