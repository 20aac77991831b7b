"""The embedded ArcadeDB server: a child process bound to loopback, ready on a Cypher answer, stopped by PID."""

from __future__ import annotations

import json
import logging
import urllib.request

import psutil
import pytest
from neo4j import GraphDatabase

from graphwiz_trader.graph.server import (
    BOLT_PLUGIN,
    EmbeddedGraphServer,
    Ports,
    build_command,
    default_graph_dir,
)
from graphwiz_trader.graph.store_errors import EmbeddedServerError


def test_command_binds_every_listener_to_loopback_with_the_bolt_plugin(tmp_path) -> None:
    cmd = build_command(tmp_path, Ports(bolt=17001, http=17002, https=17003), heap="256m")
    assert cmd[0].endswith("/jre/bin/java") and cmd[-1] == "com.arcadedb.server.ArcadeDBServer"
    props = dict(a[2:].split("=", 1) for a in cmd if a.startswith("-Darcadedb."))
    assert props["arcadedb.server.plugins"] == BOLT_PLUGIN
    assert (props["arcadedb.bolt.host"], props["arcadedb.bolt.port"]) == ("127.0.0.1", "17001")
    assert (props["arcadedb.server.httpIncomingHost"], props["arcadedb.server.httpIncomingPort"]) == ("127.0.0.1",
                                                                                                      "17002")
    assert props["arcadedb.server.rootPath"] == str(tmp_path)
    assert props["arcadedb.dateTimeImplementation"] == "java.time.ZonedDateTime"
    assert props["arcadedb.server.defaultDatabases"] == "graphwiz[root]"
    assert "-Xmx256m" in cmd and not any("rootPassword=" in a for a in cmd)  # password only via a file


def test_default_data_folder_is_the_projects_data_graph(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GRAPHWIZ_GRAPH_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_graph_dir() == tmp_path.resolve() / "data" / "graph"
    monkeypatch.setenv("GRAPHWIZ_GRAPH_DIR", str(tmp_path / "elsewhere"))
    assert default_graph_dir() == tmp_path / "elsewhere"


def test_java_failing_to_start_shows_its_stderr(tmp_path) -> None:
    server = EmbeddedGraphServer(tmp_path, jvm_args=("-XX:+GraphwizNoSuchOption",), startup_timeout_s=60)
    with pytest.raises(EmbeddedServerError) as err:
        server.start()
    msg = str(err.value)
    assert "exited with code" in msg and str(tmp_path) in msg
    assert "server.err.log (tail)" in msg and "Unrecognized VM option" in msg  # the JVM's own complaint
    assert server.pid is None


def test_startup_timeout_kills_the_process_and_says_so(tmp_path) -> None:
    server = EmbeddedGraphServer(tmp_path, startup_timeout_s=0.3)
    with pytest.raises(EmbeddedServerError) as err:
        server.start()
    assert "did not answer a Cypher query within 0.3 s" in str(err.value)
    assert server.pid is None and not server.is_running()


def test_unknown_root_password_is_explained(tmp_path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "server-users.jsonl").write_text("{}\n")
    with pytest.raises(EmbeddedServerError) as err:
        EmbeddedGraphServer(tmp_path).start()
    assert "root password file" in str(err.value) and "server-users.jsonl" in str(err.value)


@pytest.mark.integration
def test_session_server_answers_cypher_and_serves_http(embedded_graph_server) -> None:
    s = embedded_graph_server
    assert s.is_running() and psutil.Process(s.pid).is_running()
    assert s.uri.startswith("bolt://127.0.0.1:") and s.database_dir.is_dir()
    with GraphDatabase.driver(s.uri, auth=(s.user, s.password)) as driver:
        assert driver.execute_query("RETURN 6 * 7 AS x", database_=s.database).records[0]["x"] == 42
        assert "ArcadeDB" in driver.get_server_info().agent
    with urllib.request.urlopen(s.http_url, timeout=10) as resp:
        assert resp.status == 200 and b"ArcadeDB" in resp.read()
    state = json.loads((s.data_dir / "server.json").read_text())
    assert state["pid"] == s.pid and state["uri"] == s.uri


@pytest.mark.integration
def test_server_lifecycle_logs_where_data_lives_and_stops_by_pid(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="graphwiz_trader.graph.server")
    with EmbeddedGraphServer(tmp_path / "g", heap="256m", startup_timeout_s=180) as s:
        pid = s.pid
        line = next(r.getMessage() for r in caplog.records if "ready in" in r.getMessage())
        assert str(s.database_dir) in line and s.http_url in line and s.uri in line and f"PID {pid}" in line
        with pytest.raises(EmbeddedServerError) as err:  # a second server may not share the folder
            EmbeddedGraphServer(tmp_path / "g").start()
        assert f"in use by the embedded server PID {pid}" in str(err.value)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (tmp_path / "g" / "server.json").exists()
    assert (tmp_path / "g" / "databases" / "graphwiz").is_dir()  # data kept
