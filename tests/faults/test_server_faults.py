"""Fault injection on the embedded graph server: two processes and two builds at once on one folder, and
the CLI killed (SIGTERM, SIGKILL) while its server runs.

Each run is a real process (``graphwiz graph build`` on the synthetic market, no network, or a short script
on the project's API), with the graph folder and run folders under the test's temp folder. Every JVM a test
started is killed at teardown, also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.graph.server import EmbeddedGraphServer
from graphwiz_trader.graph.server_process import FolderLock, server_processes
from graphwiz_trader.graph.store import GraphStore

pytestmark = pytest.mark.integration

SMALL_BUILD = ["graph", "build", "--stride", "168", "--max-lag", "0", "--end", "2024-03-01"]
LONG_WRITE_BUILD = ["graph", "build", "--window", "168", "--stride", "6", "--max-lag", "0"]  # ~900 snapshots


class Runs:
    """CLI processes on one graph folder; :meth:`cleanup` kills them and every JVM on the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.graph_dir = root / "graph"
        self.procs: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
        env.update(GRAPHWIZ_GRAPH_DIR=str(self.graph_dir), GRAPHWIZ_RUNS_DIR=str(self.root / "runs"),
                   PYTHONUNBUFFERED="1")
        return env

    def python(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, *args], cwd=self.root, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def graphwiz(self, *args: str) -> subprocess.Popen[str]:
        return self.python("-m", "graphwiz_trader.cli", "--no-progress", *args)

    def wait_for_server(self, cli: subprocess.Popen[str], timeout_s: float = 180.0) -> int:
        """PID of the JVM once the CLI's server answers (its owner wrote ``server.json``)."""
        state = self.graph_dir / "server.json"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if state.exists():
                return int(json.loads(state.read_text())["pid"])
            assert cli.poll() is None, f"the CLI exited before its server was ready:\n{cli.communicate()[0]}"
            time.sleep(0.1)
        raise AssertionError(f"no server.json in {self.graph_dir} after {timeout_s:g} s")

    def jvms(self) -> list[psutil.Process]:
        return server_processes(self.graph_dir.resolve())

    def lock_is_free(self) -> bool:
        lock = FolderLock(self.graph_dir / "server.lock")
        free = lock.try_acquire()
        lock.release()
        return free

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
        for jvm in self.jvms():
            jvm.kill()
            jvm.wait(timeout=30)


@pytest.fixture()
def runs(tmp_path: Path) -> Iterator[Runs]:
    r = Runs(tmp_path)
    try:
        yield r
    finally:
        r.cleanup()


def gone_within(pid: int, seconds: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout=seconds)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def read_back(graph_dir: Path, builds: list[str]) -> list[tuple[int, int, int]]:
    """(snapshots, correlation edges, regime records) per build in the store on ``graph_dir``, via a fresh server."""
    with EmbeddedGraphServer(graph_dir, heap="256m", startup_timeout_s=180) as server:
        settings = GraphSettings(uri=server.uri, user=server.user, password=server.password,
                                 database=server.database)
        with GraphStore.connect(settings, ensure_schema=False) as store:
            found = [(store.list_snapshots(b), store.read_regimes(b)) for b in builds]
    return [(len(catalog), int(catalog["n_edges"].sum()), len(regimes)) for catalog, regimes in found]


HOLD_A_CONNECTION = textwrap.dedent("""
    import json, logging, sys, time
    from graphwiz_trader.graph.store import GraphStore
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    hold_s = float(sys.argv[1])
    answers = []
    with GraphStore.connect(ensure_schema=False) as store:   # the embedded server on $GRAPHWIZ_GRAPH_DIR
        server = store.embedded_server
        t_end = time.monotonic() + hold_s
        while time.monotonic() < t_end:
            answers.append(store.query("RETURN 1 AS ok")[0]["ok"])
            time.sleep(0.25)
    print("RESULT " + json.dumps({"pid": server.pid, "reused": server.reused, "answers": answers}), flush=True)
""")


def result_of(output: str) -> dict:
    line = next(ln for ln in output.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_two_processes_at_once_share_one_jvm_which_its_owner_stops_after_the_other_detached(runs: Runs) -> None:
    owner = runs.python("-c", HOLD_A_CONNECTION, "2")
    jvm = runs.wait_for_server(owner)
    reuser = runs.python("-c", HOLD_A_CONNECTION, "6")  # outlives the owner's own work by ~4 s
    owner_out, reuser_out = owner.communicate(timeout=120)[0], reuser.communicate(timeout=120)[0]

    assert (owner.returncode, reuser.returncode) == (0, 0), owner_out + "\n\n" + reuser_out
    mine, theirs = result_of(owner_out), result_of(reuser_out)
    assert (mine["pid"], mine["reused"]) == (jvm, False) and (theirs["pid"], theirs["reused"]) == (jvm, True)
    assert set(mine["answers"]) == set(theirs["answers"]) == {1} and len(theirs["answers"]) >= 20
    assert "waiting up to" in owner_out  # the owner waited for the reuser before stopping its server
    assert f"embedded graph server PID {jvm} stopped" in owner_out and "stopped" not in reuser_out
    assert runs.jvms() == [] and runs.lock_is_free()


# ArcadeDB's MERGE is not atomic across concurrent transactions: two writers of one key collide with a
# ConstraintValidationFailed client error, which the store retries (the second MERGE then finds the node).


def test_two_builds_at_once_on_one_folder_both_finish_with_complete_data_and_no_jvm_left(runs: Runs) -> None:
    windows = [168, 336]  # two different builds (two build ids), each read back by its own id
    clis = [runs.graphwiz(*SMALL_BUILD, "--window", str(w), "--json", str(runs.root / f"build{w}.json"))
            for w in windows]
    outputs = [cli.communicate(timeout=600)[0] for cli in clis]

    assert not any("locked by another process" in out for out in outputs)  # ArcadeDB's own lock was never hit
    assert sum("reusing embedded graph server" in out for out in outputs) <= 1
    assert runs.jvms() == [] and runs.lock_is_free()
    assert not (runs.graph_dir / "server.json").exists()
    assert [cli.returncode for cli in clis] == [0, 0], "\n\n".join(outputs)
    summaries = [json.loads((runs.root / f"build{w}.json").read_text()) for w in windows]
    assert all(s["snapshots"] > 0 for s in summaries) and summaries[0]["build"] != summaries[1]["build"]
    assert read_back(runs.graph_dir, [s["build"] for s in summaries]) == [
        (s["snapshots"], s["correlation_edges"], s["regime_records"]) for s in summaries]


def test_sigterm_of_the_cli_stops_its_jvm_releases_the_folder_and_the_next_start_works(runs: Runs) -> None:
    cli = runs.graphwiz(*LONG_WRITE_BUILD)
    jvm = runs.wait_for_server(cli)
    time.sleep(0.5)
    assert cli.poll() is None and psutil.pid_exists(jvm)  # still writing

    cli.send_signal(signal.SIGTERM)
    out = cli.communicate(timeout=60)[0]

    assert cli.returncode == 128 + signal.SIGTERM, out  # SystemExit from the handler, not death by signal
    assert "SIGTERM received" in out and f"embedded graph server PID {jvm} stopped" in out
    assert gone_within(jvm, 5.0) and runs.jvms() == []
    assert runs.lock_is_free() and not (runs.graph_dir / "server.json").exists()
    with EmbeddedGraphServer(runs.graph_dir, heap="256m", startup_timeout_s=180) as server:
        assert not server.reused and server.pid != jvm


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_sigkill_of_the_cli_takes_its_jvm_along_and_the_next_start_works(runs: Runs) -> None:
    cli = runs.graphwiz(*LONG_WRITE_BUILD)
    jvm = runs.wait_for_server(cli)
    time.sleep(0.5)
    assert cli.poll() is None and psutil.pid_exists(jvm)

    cli.kill()  # SIGKILL: no handler, no atexit
    cli.communicate(timeout=60)

    assert gone_within(jvm, 5.0) and runs.jvms() == []  # PR_SET_PDEATHSIG
    assert runs.lock_is_free()  # the kernel dropped the dead owner's flock
    with EmbeddedGraphServer(runs.graph_dir, heap="256m", startup_timeout_s=180) as server:
        assert not server.reused and server.pid != jvm
        with GraphStore.connect(GraphSettings(uri=server.uri, user=server.user, password=server.password,
                                              database=server.database), ensure_schema=False) as store:
            assert store.query("RETURN 1 AS ok") == [{"ok": 1}]
