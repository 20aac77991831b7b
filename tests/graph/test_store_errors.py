"""Bad input and bad connections fail with messages that say what and where."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.errors import DataError
from graphwiz_trader.graph.server import free_port
from graphwiz_trader.graph.snapshot import GraphSnapshot
from graphwiz_trader.graph.store import (
    GraphStore,
    canonical_snapshot,
    check_build_id,
    regime_transitions,
    settings_from_env,
    validate_regime_frame,
)
from graphwiz_trader.graph.store_errors import GraphAuthError, GraphStoreError, GraphUnavailableError

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
ASSETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def snap(edges=None, leads=None, communities=None, as_of=T0, window=720) -> GraphSnapshot:
    e = pd.DataFrame(edges if edges is not None else [("BTC/USDT", "ETH/USDT", 0.5)], columns=["src", "dst", "rho"])
    ld = pd.DataFrame(leads if leads is not None else [], columns=["src", "dst", "lag", "rho"])
    return GraphSnapshot(as_of=as_of, window=window, method="pearson", assets=ASSETS, edges=e, leads=ld,
                         communities=communities or {})


@pytest.mark.parametrize("bad, message", [
    (dict(edges=[("ETH/USDT", "BTC/USDT", 0.5)]), "expected src < dst"),
    (dict(edges=[("BTC/USDT", "DOGE/USDT", 0.5)]), "['DOGE/USDT'] are not among the snapshot's assets"),
    (dict(edges=[("BTC/USDT", "ETH/USDT", float("nan"))]), "rho has 1 NaN/inf"),
    (dict(edges=[("BTC/USDT", "ETH/USDT", 1.5)]), "|rho| > 1"),
    (dict(edges=[("BTC/USDT", "ETH/USDT", 0.5), ("BTC/USDT", "ETH/USDT", 0.4)]), "duplicate (src, dst)"),
    (dict(leads=[("BTC/USDT", "SOL/USDT", 0, 0.1)]), "lag must be integers >= 1"),
    (dict(leads=[("BTC/USDT", "BTC/USDT", 1, 0.1)]), "self-loop 'BTC/USDT'"),
    (dict(communities={"XRP/USDT": 0}), "'XRP/USDT' is not among the snapshot's assets"),
    (dict(as_of=pd.Timestamp("2024-03-01")), "is naive; pass a tz-aware UTC time"),
    (dict(window=0), "window must be a positive integer"),
])
def test_malformed_snapshots_are_refused_with_the_reason(bad, message) -> None:
    with pytest.raises(DataError) as err:
        canonical_snapshot(snap(**bad))
    assert message in str(err.value)
    if "as_of" not in bad:
        assert "snapshot pearson/" in str(err.value)  # names the snapshot


def test_canonical_snapshot_sorts_edges_and_keeps_floats() -> None:
    s = snap(edges=[("ETH/USDT", "SOL/USDT", -0.1), ("BTC/USDT", "SOL/USDT", 0.3), ("BTC/USDT", "ETH/USDT", 0.2)],
             leads=[("SOL/USDT", "BTC/USDT", 2, 0.05), ("BTC/USDT", "SOL/USDT", 1, -0.07)])
    c = canonical_snapshot(s)
    assert c.edges.values.tolist() == [["BTC/USDT", "ETH/USDT", 0.2], ["BTC/USDT", "SOL/USDT", 0.3],
                                       ["ETH/USDT", "SOL/USDT", -0.1]]
    assert c.leads.values.tolist() == [["BTC/USDT", "SOL/USDT", 1, -0.07], ["SOL/USDT", "BTC/USDT", 2, 0.05]]
    assert list(c.leads.dtypes.astype(str)) == ["object", "object", "int64", "float64"]


def regime_frame(**over) -> pd.DataFrame:
    f = pd.DataFrame({"scope": "market", "datetime": pd.date_range(T0, periods=4, freq="h"),
                      "regime": ["calm", "calm", "crash", "calm"], "prob": [0.9, 0.8, 0.7, 0.6]})
    for k, v in over.items():
        f[k] = v
    return f


@pytest.mark.parametrize("frame, message", [
    (regime_frame(prob=[0.9, 1.2, 0.7, 0.6]), "prob must be in [0, 1]; row 1"),
    (regime_frame(datetime=pd.date_range("2024-03-01", periods=4, freq="h")), "must be tz-aware UTC"),
    (regime_frame(datetime=[T0, T0, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h")]),
     "1 duplicate (scope, datetime) row(s), first (market, 2024-03-01 00:00:00+00:00)"),
    (regime_frame(scope="bitcoin"), "scope 'bitcoin' is neither 'market' nor an instrument symbol"),
    (regime_frame().drop(columns="prob"), "missing ['prob']"),
])
def test_malformed_regime_state_is_refused_with_the_reason(frame, message) -> None:
    with pytest.raises(DataError) as err:
        validate_regime_frame(frame)
    assert message in str(err.value)


def test_regime_transitions_on_a_hand_computed_path() -> None:
    # calm 00-01 (2 h run), crash 02 (1 h run), calm 03 (open run)
    t = regime_transitions(regime_frame())
    got = {(r.from_regime, r.to_regime): (r.count, r.prob, r.mean_duration) for r in t.itertuples()}
    assert got == {("calm", "calm"): (1, 0.5, 2.0), ("calm", "crash"): (1, 0.5, 2.0),
                   ("crash", "calm"): (1, 1.0, 1.0)}


def test_unreachable_server_error_names_the_uri_and_how_to_start_one() -> None:
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(GraphUnavailableError) as err:
        GraphStore.connect(GraphSettings(uri=uri, user="neo4j", password="x"))
    msg = str(err.value)
    assert msg.startswith(f"cannot reach the graph server at {uri}")
    assert "docker compose up -d neo4j" in msg and "unset NEO4J_URI" in msg


def test_wrong_password_is_an_auth_error(graph_settings) -> None:
    bad = GraphSettings(**{**graph_settings.model_dump(), "password": "definitely-not-the-password"})
    with pytest.raises(GraphAuthError) as err:
        GraphStore.connect(bad)
    assert str(err.value).startswith(f"authentication failed at {graph_settings.uri} for user "
                                     f"{graph_settings.user!r}")
    assert "NEO4J_PASSWORD" in str(err.value)


def test_settings_come_from_the_neo4j_environment(monkeypatch) -> None:
    monkeypatch.setenv("NEO4J_URI", "bolt://db.example:7687")
    monkeypatch.setenv("NEO4J_USER", "alice")
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret")
    s = settings_from_env()
    assert (s.uri, s.user, s.password.get_secret_value()) == ("bolt://db.example:7687", "alice", "s3cret")
    monkeypatch.setenv("NEO4J_URI", "")
    assert settings_from_env().uri is None  # empty: the embedded server


def test_float_rho_survives_validation_bit_for_bit() -> None:
    rho = np.nextafter(0.3, 1.0)
    c = canonical_snapshot(snap(edges=[("BTC/USDT", "ETH/USDT", rho)]))
    assert c.edges["rho"].iat[0] == rho


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a:b", "x" * 65, None, 17, ["BTC/USDT"]])
def test_build_ids_are_checked_before_any_query(bad) -> None:
    with pytest.raises(GraphStoreError, match="a build id is 1-64 characters"):
        check_build_id(bad)


def test_build_ids_the_pipeline_and_the_testkit_make_are_valid() -> None:
    from graphwiz_trader.testkit.graph import demo_build_id

    assert check_build_id("3f9c0a1d2b4e5f60") == "3f9c0a1d2b4e5f60"
    assert check_build_id(demo_build_id(seed=1)).startswith("demo-")
