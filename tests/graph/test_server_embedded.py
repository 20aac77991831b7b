"""The embedded ArcadeDB server: a child process bound to loopback, ready on a Cypher answer, stopped by PID,
owned by one process per data folder (others reuse it or wait), dying with its owner, its logs kept."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import psutil
import pytest
from neo4j import GraphDatabase

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.graph import server_process
from graphwiz_trader.graph.server import (
    BOLT_PLUGIN,
    EmbeddedGraphServer,
    Ports,
    build_command,
    default_graph_dir,
)
from graphwiz_trader.graph.server_launch import is_server_command
from graphwiz_trader.graph.server_process import FolderLock, hold_sigterm_exit, release_sigterm_exit, rotate_logs
from graphwiz_trader.graph.store import GraphStore
from graphwiz_trader.graph.store_errors import EmbeddedServerError, GraphStoreError


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


def test_a_server_on_a_folder_whose_name_extends_ours_is_not_taken_for_ours(tmp_path) -> None:
    ours, theirs = tmp_path / "g", tmp_path / "g2"
    their_command = build_command(theirs, Ports(bolt=17001, http=17002, https=17003))
    assert is_server_command(their_command, theirs)
    assert not is_server_command(their_command, ours)  # a substring test said yes, and stopped their server


def test_default_data_folder_is_the_projects_data_graph(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GRAPHWIZ_GRAPH_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_graph_dir() == tmp_path.resolve() / "data" / "graph"
    monkeypatch.setenv("GRAPHWIZ_GRAPH_DIR", str(tmp_path / "elsewhere"))
    assert default_graph_dir() == tmp_path / "elsewhere"


def test_java_failing_to_start_shows_its_stderr_and_a_retry_keeps_the_first_log(tmp_path) -> None:
    first = EmbeddedGraphServer(tmp_path, jvm_args=("-XX:+GraphwizNoSuchOption",), startup_timeout_s=60)
    with pytest.raises(EmbeddedServerError) as err:
        first.start()
    msg = str(err.value)
    assert "exited with code" in msg and str(tmp_path) in msg
    assert "server.err.log (tail)" in msg and "Unrecognized VM option" in msg  # the JVM's own complaint
    assert first.pid is None
    probe = FolderLock(tmp_path / "server.lock")
    assert probe.try_acquire()  # a failed start lets go of the folder
    probe.release()
    second = EmbeddedGraphServer(tmp_path, jvm_args=("-XX:+GraphwizOtherOption",), startup_timeout_s=60)
    with pytest.raises(EmbeddedServerError):
        second.start()
    err_log = tmp_path / "log" / "server.err.log"
    assert "GraphwizOtherOption" in err_log.read_text()
    assert "GraphwizNoSuchOption" in (tmp_path / "log" / "server.err.log.1").read_text()  # not overwritten


def test_log_rotation_keeps_the_newest_versions_and_drops_the_oldest(tmp_path) -> None:
    log_file = tmp_path / "server.err.log"
    for run in range(1, 6):  # five starts, each rotating then writing its own log
        rotate_logs(log_file, keep=3)
        log_file.write_text(f"run {run}")
    kept = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert kept == {"server.err.log": "run 5", "server.err.log.1": "run 4", "server.err.log.2": "run 3",
                    "server.err.log.3": "run 2"}


def test_a_folder_locked_by_an_owner_that_never_becomes_ready_makes_a_second_start_wait_then_name_it(
        tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="graphwiz_trader.graph.server")
    owner = FolderLock(tmp_path / "server.lock")  # an owner still starting: lock held, no server.json
    assert owner.try_acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(EmbeddedServerError) as err:
            EmbeddedGraphServer(tmp_path, wait_timeout_s=1.0).start()
        waited = time.monotonic() - t0
    finally:
        owner.release()
    msg = str(err.value)
    assert f"graph data folder {tmp_path} is locked by PID {os.getpid()}" in msg
    assert "could not be reused within 1 s" in msg and "still starting" in msg
    assert 1.0 <= waited < 10.0
    assert any("waiting up to 1 s" in r.getMessage() for r in caplog.records)  # said so while waiting
    assert not (tmp_path / "log" / "server.out.log").exists()  # no second JVM was launched


def test_folder_locks_conflict_within_one_process_and_name_their_holder(tmp_path) -> None:
    path = tmp_path / "server.lock"
    first, second = FolderLock(path), FolderLock(path)
    assert first.try_acquire() and not second.try_acquire()
    assert FolderLock.holder(path) == os.getpid()
    reader = FolderLock(tmp_path / "clients.lock", shared=True)
    assert reader.try_acquire() and FolderLock(tmp_path / "clients.lock", shared=True).try_acquire()
    assert not FolderLock(tmp_path / "clients.lock").try_acquire()  # a writer waits for every reader
    first.release()
    assert second.try_acquire()
    second.release()
    reader.release()


@pytest.fixture()
def fresh_sigterm_state(monkeypatch):
    monkeypatch.setattr(server_process, "_SIGTERM", server_process._SigtermState())
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_in_a_server_owner_raises_system_exit_after_the_previous_handler(fresh_sigterm_state) -> None:
    calls: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    assert hold_sigterm_exit()
    with pytest.raises(SystemExit) as exc:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(2)  # the handler runs in the main thread at the next bytecode
    assert exc.value.code == 128 + signal.SIGTERM and calls == [signal.SIGTERM]
    assert server_process.terminating()
    release_sigterm_exit()  # the last holder puts the previous handler back
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    assert calls == [signal.SIGTERM, signal.SIGTERM]


def test_no_sigterm_handler_outside_the_main_thread_or_when_sigterm_is_ignored(fresh_sigterm_state) -> None:
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(hold_sigterm_exit()))
    worker.start()
    worker.join()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert result == [False] and not hold_sigterm_exit()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


FORKED_WORKERS = textwrap.dedent("""
    import multiprocessing, os, signal, sys
    from graphwiz_trader.graph.server_process import hold_sigterm_exit, _on_sigterm
    assert hold_sigterm_exit() and signal.getsignal(signal.SIGTERM) is _on_sigterm
    def handler_in_child(_):
        return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    for _ in range(40):              # joblib's multiprocessing backend: a fresh pool, then terminate()
        pool = multiprocessing.get_context("fork").Pool(2)
        seen = pool.map(handler_in_child, range(4))
        pool.terminate(); pool.join()
        assert all(seen), seen
    print("done", signal.getsignal(signal.SIGTERM) is _on_sigterm, flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_pool_workers_of_a_server_owner_die_on_sigterm_and_terminate_never_hangs() -> None:
    # The CI hang: Qlib's joblib pool terminate()s its forked workers with SIGTERM; workers that inherited the
    # owner's handler raised SystemExit inside the pool's queue code and the parent's join() waited forever.
    done = subprocess.run([sys.executable, "-c", FORKED_WORKERS], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["done", "True"]  # the owner keeps its handler
    assert "SIGTERM received" not in done.stderr


SPAWN_FROM_A_THREAD = textwrap.dedent("""
    import sys, threading, time
    from graphwiz_trader.graph.server_process import spawn
    box = []
    t = threading.Thread(target=lambda: box.append(spawn(["sleep", "300"])))
    t.start(); t.join()            # the thread that asked for the child has ended
    time.sleep(0.5)
    print(box[0].pid, box[0].poll() is None, flush=True)
    time.sleep(300)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_spawned_child_outlives_the_thread_that_asked_for_it_and_dies_with_its_process() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SPAWN_FROM_A_THREAD], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        child_pid, alive = parent.stdout.readline().split()
        child = psutil.Process(int(child_pid))
        assert alive == "True" and child.is_running()  # not killed when the asking thread ended
        parent.kill()  # SIGKILL: no atexit, no handler; only PDEATHSIG can stop the child
        parent.wait(10)
        child.wait(timeout=5)  # raises TimeoutExpired if it survived
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
        if child_pid is not None and psutil.pid_exists(int(child_pid)):
            psutil.Process(int(child_pid)).kill()


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
@pytest.mark.slow  # ~30 s: the store's driver retries the reuser's last query for 15 s before it fails
def test_server_lifecycle_logs_where_data_lives_and_stops_by_pid(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="graphwiz_trader.graph.server")
    folder = tmp_path / "g"
    with EmbeddedGraphServer(folder, heap="256m", startup_timeout_s=180, reuser_grace_s=1.0) as s:
        pid = s.pid
        line = next(r.getMessage() for r in caplog.records if "ready in" in r.getMessage())
        assert str(s.database_dir) in line and s.http_url in line and s.uri in line and f"PID {pid}" in line
        assert not FolderLock(folder / "server.lock").try_acquire()  # held by the owner while it runs

        again = EmbeddedGraphServer(folder).start()  # a second start on the folder reuses the server
        assert (again.reused, again.pid, again.uri, again.owner_pid) == (True, pid, s.uri, os.getpid())
        again.stop()  # a reuser only detaches
        assert s.is_running()

        stays = EmbeddedGraphServer(folder).start()
        store = GraphStore.connect(GraphSettings(uri=stays.uri, user=stays.user, password=stays.password,
                                                 database=stays.database), ensure_schema=False)
        assert store.query("RETURN 2 AS x") == [{"x": 2}]
    # the owner waited reuser_grace_s for the reuser, then stopped: the reuser's next query fails clearly
    assert any("waiting up to 1 s" in r.getMessage() for r in caplog.records)
    with pytest.raises(GraphStoreError) as err:
        store.query("RETURN 3 AS x")
    assert stays.uri in str(err.value)
    store.close()
    stays.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    released = FolderLock(folder / "server.lock")
    assert not (folder / "server.json").exists() and released.try_acquire()
    released.release()
    assert (folder / "databases" / "graphwiz").is_dir()  # data kept


@pytest.mark.integration
def test_the_owner_stops_its_server_only_after_the_reusing_process_detached(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="graphwiz_trader.graph.server")
    owner = EmbeddedGraphServer(tmp_path, heap="256m", startup_timeout_s=180, reuser_grace_s=120.0).start()
    try:
        reuser = EmbeddedGraphServer(tmp_path).start()
        answers: list[int] = []

        def finish_work_then_detach() -> None:
            time.sleep(1.5)
            with GraphDatabase.driver(reuser.uri, auth=(reuser.user, reuser.password)) as driver:
                answers.append(driver.execute_query("RETURN 7 AS x", database_=reuser.database).records[0]["x"])
            reuser.stop()

        worker = threading.Thread(target=finish_work_then_detach)
        worker.start()
        t0 = time.monotonic()
        owner.stop()
        waited = time.monotonic() - t0
        worker.join()
    finally:
        owner.stop()
    assert answers == [7]  # the server still served the reuser while its owner was stopping
    assert 1.5 <= waited < 60.0
    assert any("other processes reuse embedded graph server" in r.getMessage() for r in caplog.records)
    assert not owner.is_running()
