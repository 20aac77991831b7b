"""Filling the store from the data layer: populate_sample_graph_data (async) and `graphwiz graph build`."""

import asyncio
import json

import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.errors import UnknownSymbolError
from graphwiz_trader.graph.pipeline import populate_sample_graph_data


def test_populate_sample_graph_data_writes_the_synthetic_graph(graph_settings, graph_store):
    out = asyncio.run(populate_sample_graph_data(symbols=["SYN00/USDT", "SYN01/USDT", "SYN02/USDT"], window=240,
                                                 stride=48, settings=graph_settings))
    assert "SYNTHETIC" in out["data"] and out["snapshots"] > 0
    snaps = graph_store.read_snapshots(["SYN00/USDT", "SYN01/USDT", "SYN02/USDT"], method="pearson", window=240)
    assert len(snaps) == out["snapshots"]
    assert sum(len(s.edges) for s in snaps) == out["correlation_edges"]
    assert set(graph_store.symbols_in_store()) == {"SYN00/USDT", "SYN01/USDT", "SYN02/USDT"}


def test_real_symbols_are_never_faked_from_the_synthetic_market(graph_settings):
    with pytest.raises(UnknownSymbolError, match="BTC/USDT in the synthetic market"):
        asyncio.run(populate_sample_graph_data(symbols=["BTC/USDT"], settings=graph_settings))


def test_graph_build_command_fills_the_store_named_by_neo4j_uri(graph_settings, graph_store, monkeypatch, tmp_path):
    monkeypatch.setenv("NEO4J_URI", graph_settings.uri)
    monkeypatch.setenv("NEO4J_USER", graph_settings.user)
    monkeypatch.setenv("NEO4J_PASSWORD", graph_settings.password.get_secret_value())
    monkeypatch.chdir(tmp_path)  # no config file here: settings come from the environment
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT,SYN02/USDT,SYN03/USDT",
                 "--window", "240", "--stride", "96", "--json", str(tmp_path / "g.json")])
    assert code == 0
    out = json.loads((tmp_path / "g.json").read_text())
    assert out["uri"] == graph_settings.uri and out["snapshots"] > 0
    assert len(graph_store.read_snapshots(None, method="pearson", window=240)) == out["snapshots"]


def test_a_window_longer_than_the_data_is_refused_with_both_lengths(tmp_path, capsys):
    code = main(["graph", "build", "--format", "synthetic", "--symbols", "SYN00/USDT,SYN01/USDT",
                 "--window", "100000", "--stride", "24"])
    assert code == 1
    assert "100000" in capsys.readouterr().err
