"""Filling the store from the data layer: build ids, populate_sample_graph_data (async), `graphwiz graph build`
and `graphwiz graph builds`, and defaults that come from the settings models."""

import asyncio
import dataclasses
import json

import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph.builders.regimes import RegimeSettings
from graphwiz_trader.graph.pipeline import (
    GraphBuildSettings,
    build_graph,
    build_identity,
    populate_sample_graph_data,
    read_graph,
    regime_params_for,
    write_graph,
)
from graphwiz_trader.graph.store import canonical_snapshot

SMALL_REGIMES = RegimeSettings(min_train=300, refit_every=100, burn_in=100, asset_vol_window=24, asset_min_history=100)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(n_assets=8, n_bars=900, seed=21)


def test_the_build_id_changes_with_the_spec_the_universe_and_the_bars_and_only_with_them(market):
    bars = {s: market.bars[s] for s in list(market.bars)[:5]}
    spec = GraphBuildSettings(window=120, stride=24)
    bid, info = build_identity(bars, spec)
    assert len(bid) == 16 and int(bid, 16) >= 0
    assert build_identity(dict(reversed(list(bars.items()))), spec)[0] == bid  # symbol order does not matter
    # the regime parameters the build resolves for 1h bars are the same build as passing them explicitly
    assert build_identity(bars, dataclasses.replace(spec, regimes=regime_params_for("1h")))[0] == bid
    assert info["universe"] == sorted(bars) and info["spec"]["window"] == 120
    changed = {
        "window": build_identity(bars, dataclasses.replace(spec, window=121))[0],
        "top_k": build_identity(bars, dataclasses.replace(spec, top_k=3))[0],
        "regimes": build_identity(bars, dataclasses.replace(spec, regimes=SMALL_REGIMES))[0],
        "universe": build_identity({s: bars[s] for s in list(bars)[:4]}, spec)[0],
    }
    first = next(iter(bars))
    one_close = bars[first].copy()
    one_close.iloc[-1, one_close.columns.get_loc("close")] *= 1.0001
    changed["bars"] = build_identity({**bars, first: one_close}, spec)[0]
    assert len({bid, *changed.values()}) == 6, changed


def test_builds_with_other_settings_and_universes_in_one_store_each_read_back_as_built(market, graph_store):
    """The defect: reads had no run/universe filter and the market regime scope merged across runs."""
    syms = list(market.bars)
    runs = [
        ({s: market.bars[s] for s in syms[:5]},
         GraphBuildSettings(window=120, stride=24, min_abs_rho=0.2, top_k=4, exchange="synthetic", regimes=SMALL_REGIMES)),
        ({s: market.bars[s] for s in syms[2:8]},  # overlapping universe, same window and stride, other pruning
         GraphBuildSettings(window=120, stride=24, min_abs_rho=0.0, top_k=2, exchange="synthetic", regimes=SMALL_REGIMES)),
        ({s: market.bars[s] for s in syms[:5]},   # same universe as the first, another window and method
         GraphBuildSettings(window=96, stride=48, method="spearman", top_k=3, exchange="synthetic",
                        regimes=dataclasses.replace(SMALL_REGIMES, n_states=2))),
    ]
    builds = [build_graph(bars, spec) for bars, spec in runs]
    assert len({b.build_id for b in builds}) == 3
    for b, (_, spec) in zip(builds, runs):
        write_graph(graph_store, b, spec.exchange)
    for b, (bars, _) in zip(builds, runs):
        back = read_graph(graph_store, b.build_id, list(bars))
        assert len(back.snapshots) == len(b.snapshots)
        for exp, got in zip(b.snapshots, back.snapshots):
            c = canonical_snapshot(exp)
            assert (got.as_of, got.window, got.method, got.assets) == (c.as_of, c.window, c.method, c.assets)
            pd.testing.assert_frame_equal(got.edges, c.edges, check_exact=True)
            pd.testing.assert_frame_equal(got.leads, c.leads, check_exact=True)
            assert got.communities == c.communities
        want = b.regimes.sort_values(["scope", "datetime"], kind="mergesort").reset_index(drop=True)
        pd.testing.assert_frame_equal(back.regimes, want, check_exact=True)
    listed = graph_store.list_builds()
    assert set(listed["build"]) == {b.build_id for b in builds}
    assert listed.set_index("build").loc[builds[1].build_id, "n_snapshots"] == len(builds[1].snapshots)


def test_the_spec_defaults_are_the_settings_defaults():
    d = GraphSettings()
    spec = GraphBuildSettings()
    assert (spec.window, spec.stride, spec.method, spec.min_abs_rho, spec.top_k) == \
        (d.corr_window, d.corr_stride, d.corr_method, d.min_abs_rho, d.top_k)
    custom = GraphSettings(corr_window=300, corr_stride=12, corr_method="spearman", min_abs_rho=0.1, top_k=None)
    spec = GraphBuildSettings.from_settings(custom, stride=6)
    assert (spec.window, spec.stride, spec.method, spec.min_abs_rho, spec.top_k) == (300, 6, "spearman", 0.1, None)


def test_populate_sample_graph_data_writes_the_synthetic_graph(graph_settings, graph_store):
    syms = ["SYN00/USDT", "SYN01/USDT", "SYN02/USDT"]
    out = asyncio.run(populate_sample_graph_data(symbols=syms, window=240, stride=48, settings=graph_settings))
    assert "SYNTHETIC" in out["data"] and out["snapshots"] > 0
    snaps = graph_store.read_snapshots(out["build"], syms)
    assert len(snaps) == out["snapshots"] and {s.window for s in snaps} == {240}
    assert sum(len(s.edges) for s in snaps) == out["correlation_edges"]
    assert len(graph_store.read_regimes(out["build"])) == out["regime_records"]
    assert set(graph_store.symbols_in_store()) == set(syms)


def test_populate_sample_graph_data_takes_its_window_from_the_settings(graph_settings, graph_store):
    settings = graph_settings.model_copy(update={"corr_window": 200, "corr_stride": 96})
    out = asyncio.run(populate_sample_graph_data(symbols=["SYN00/USDT", "SYN01/USDT"], settings=settings))
    assert graph_store.list_snapshots(out["build"])["window"].unique().tolist() == [200]


def test_real_symbols_are_never_faked_from_the_synthetic_market(graph_settings):
    with pytest.raises(UnknownSymbolError, match="BTC/USDT in the synthetic market"):
        asyncio.run(populate_sample_graph_data(symbols=["BTC/USDT"], settings=graph_settings))


def _neo4j_env(monkeypatch, graph_settings):
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())


def test_graph_build_command_fills_the_store_named_by_neo4j_uri(graph_settings, graph_store, monkeypatch, tmp_path,
                                                                capsys):
    _neo4j_env(monkeypatch, graph_settings)
    monkeypatch.chdir(tmp_path)  # no config file here: settings come from the environment
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT,SYN02/USDT,SYN03/USDT",
                 "--window", "240", "--stride", "96", "--json", str(tmp_path / "g.json")])
    assert code == 0
    out = json.loads((tmp_path / "g.json").read_text())
    assert out["uri"] == graph_settings.uri and out["snapshots"] > 0 and out["spec"]["window"] == 240
    assert f"build {out['build']}" in capsys.readouterr().out
    assert len(graph_store.read_snapshots(out["build"])) == out["snapshots"]
    assert main(["graph", "builds", "--json", str(tmp_path / "b.json")]) == 0
    listed = json.loads((tmp_path / "b.json").read_text())["builds"]
    assert [b["build"] for b in listed] == [out["build"]] and listed[0]["snapshots"] == out["snapshots"]
    assert out["build"] in capsys.readouterr().out
    assert main(["graph", "builds", "--delete", out["build"], "--json", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["builds"] == []
    assert main(["graph", "builds", "--delete", out["build"]]) == 1  # gone: a clear error, not a traceback
    assert f"build {out['build']!r} has no complete data" in capsys.readouterr().err


def test_graph_build_reads_its_defaults_from_the_config_file(graph_settings, graph_store, monkeypatch, tmp_path):
    _neo4j_env(monkeypatch, graph_settings)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("graph:\n  corr_window: 200\n  corr_stride: 120\n  top_k: 2\n")
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT,SYN02/USDT",
                 "--config", str(cfg), "--stride", "150", "--json", str(tmp_path / "g.json")])
    assert code == 0
    out = json.loads((tmp_path / "g.json").read_text())
    assert (out["spec"]["window"], out["spec"]["stride"], out["spec"]["top_k"]) == (200, 150, 2)
    assert graph_store.list_snapshots(out["build"])["window"].unique().tolist() == [200]


def test_a_window_longer_than_the_data_is_refused_with_both_lengths(tmp_path, capsys):
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT",
                 "--window", "100000", "--stride", "24"])
    assert code == 1
    assert "100000" in capsys.readouterr().err


def test_graph_build_loads_the_windows_history_before_start_so_the_first_snapshot_is_at_start(
        graph_settings, graph_store, monkeypatch, tmp_path):
    _neo4j_env(monkeypatch, graph_settings)
    out = tmp_path / "g.json"
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT,SYN02/USDT",
                 "--window", "48", "--stride", "24", "--start", "2022-04-01", "--json", str(out), "--no-progress"])
    assert code == 0
    first = pd.Timestamp(json.loads(out.read_text())["first_snapshot"])
    assert first == pd.Timestamp("2022-04-01", tz="UTC")   # without the warm-up: 48 bars later
