"""The embedded graph server: ArcadeDB's Bolt server from the ``arcadedb-embedded`` wheel, as a subprocess.

The wheel bundles a Java runtime (``arcadedb_embedded/jre``) and the server jars (``arcadedb_embedded/jars``),
including the Bolt plugin, which accepts the official Neo4j 5 driver and Neo4j 5 Cypher (no APOC/GDS).
It is run as a child process, not in-process through JPype, so it has a PID to stop and its own memory.

Launch (what :func:`build_command` returns; ``$PKG`` is the installed ``arcadedb_embedded`` folder)::

    $PKG/jre/bin/java -Xmx1g -XX:+UseCompactObjectHeaders --add-modules=jdk.incubator.vector \\
        --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED ... \\
        -Duser.timezone=UTC -Darcadedb.dateTimeImplementation=java.time.ZonedDateTime \\
        -Darcadedb.server.rootPath=DATA -Darcadedb.server.rootPasswordPath=DATA/.root_password \\
        -Darcadedb.server.defaultDatabases='graphwiz[root]' -Darcadedb.bolt.defaultDatabase=graphwiz \\
        -Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin \\
        -Darcadedb.bolt.host=127.0.0.1 -Darcadedb.bolt.port=P1 \\
        -Darcadedb.server.httpIncomingHost=127.0.0.1 -Darcadedb.server.httpIncomingPort=P2 \\
        -Darcadedb.server.httpsIncomingPort=P3 -cp '$PKG/jars/*' com.arcadedb.server.ArcadeDBServer

Why each setting:

- ``dateTimeImplementation=ZonedDateTime``: ArcadeDB's default (``LocalDateTime``) drops the zone of a
  stored ``datetime``, so it comes back naive and ``.epochMillis`` is null. With ``ZonedDateTime`` a
  stored datetime round-trips as UTC with nanoseconds, as on Neo4j. ``user.timezone=UTC`` as a guard.
- ``rootPasswordPath``: the root password is generated once per data folder (``.root_password``, mode 0600)
  and read from that file, so it is never on a command line. ArcadeDB hashes it into
  ``config/server-users.jsonl`` at first start; later starts reuse the same file.
- ``defaultDatabases`` creates the ``graphwiz`` database on first start; ``bolt.defaultDatabase`` makes it
  the database a driver session without ``database=`` uses.
- Every listener is bound to 127.0.0.1 on a free port (Bolt, HTTP and HTTPS; ArcadeDB's own defaults are
  0.0.0.0 and fixed port ranges).

Readiness is a Cypher ``RETURN 1`` through the official neo4j driver, not an open port. The server is
stopped by its PID (SIGTERM, then SIGKILL after ``stop_timeout_s``) at interpreter exit (``atexit``) or
when the context manager exits. Its stdout/stderr go to ``DATA/log/server.{out,err}.log``; when Java fails
to start, the error shows their tails.

The HTTP port serves ArcadeDB's REST API (``/api/v1``). The pip wheel does not bundle the Studio web UI:
the root page says so and how to add it. Explore the graph with Cypher through the HTTP API or a Neo4j
client on the Bolt URL, or run Neo4j with ``docker compose up neo4j`` for the Neo4j Browser.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from graphwiz_trader.graph.store_errors import EmbeddedServerError

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "graphwiz"
ROOT_USER = "root"
SERVER_MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
PASSWORD_FILE = ".root_password"
STATE_FILE = "server.json"
GRAPH_DIR_ENV = "GRAPHWIZ_GRAPH_DIR"


def default_graph_dir() -> Path:
    """The data folder of the embedded server: ``$GRAPHWIZ_GRAPH_DIR`` or ``./data/graph`` (absolute)."""
    env = os.environ.get(GRAPH_DIR_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "data" / "graph").resolve()


def arcadedb_package_dir() -> Path:
    """Folder of the installed ``arcadedb_embedded`` package (found without importing it, i.e. without JPype)."""
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded graph server needs the pip package arcadedb-embedded, which is not installed "
            "(pip install arcadedb-embedded), or set NEO4J_URI to use a Neo4j server"
        )
    return Path(list(spec.submodule_search_locations)[0])


def java_executable(pkg: Path | None = None) -> Path:
    """The Java runtime bundled in the wheel."""
    pkg = pkg or arcadedb_package_dir()
    exe = pkg / "jre" / "bin" / ("java.exe" if sys.platform == "win32" else "java")
    if not exe.is_file():
        raise EmbeddedServerError(f"bundled Java runtime not found at {exe}; reinstall arcadedb-embedded")
    return exe


def arcadedb_version(pkg: Path | None = None) -> str:
    """ArcadeDB engine version, read from the server jar's name (``arcadedb-server-26.10.2.jar``)."""
    pkg = pkg or arcadedb_package_dir()
    for jar in sorted((pkg / "jars").glob("arcadedb-server-*.jar")):
        return jar.stem.removeprefix("arcadedb-server-")
    return "unknown"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    bolt: int
    http: int
    https: int

    @classmethod
    def pick(cls, host: str) -> "Ports":
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port(host))
        bolt, http, https = sorted(ports)
        return cls(bolt=bolt, http=http, https=https)


def build_command(data_dir: Path, ports: Ports, *, host: str = "127.0.0.1", heap: str = "1g",
                  database: str = DEFAULT_DATABASE, jvm_args: tuple[str, ...] = (),
                  pkg: Path | None = None) -> list[str]:
    """The java command line that runs the ArcadeDB server with the Bolt plugin (see module docstring)."""
    pkg = pkg or arcadedb_package_dir()
    data_dir = Path(data_dir)
    jvm = [
        f"-Xmx{heap}",
        "-XX:+UseCompactObjectHeaders",
        "-XX:+ExitOnOutOfMemoryError",
        "--add-modules=jdk.incubator.vector",
        "--enable-native-access=ALL-UNNAMED",
        "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
        "--add-opens=java.base/java.nio.channels.spi=ALL-UNNAMED",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF-8",
        "-Dpolyglot.engine.WarnInterpreterOnly=false",
        "-Duser.timezone=UTC",
        *jvm_args,
    ]
    settings = {
        "arcadedb.dateTimeImplementation": "java.time.ZonedDateTime",
        "arcadedb.server.rootPath": str(data_dir),
        "arcadedb.server.logsDirectory": str(data_dir / "log"),
        "arcadedb.server.rootPasswordPath": str(data_dir / PASSWORD_FILE),
        "arcadedb.server.defaultDatabases": f"{database}[{ROOT_USER}]",
        "arcadedb.server.plugins": BOLT_PLUGIN,
        "arcadedb.bolt.host": host,
        "arcadedb.bolt.port": str(ports.bolt),
        "arcadedb.bolt.defaultDatabase": database,
        "arcadedb.server.httpIncomingHost": host,
        "arcadedb.server.httpIncomingPort": str(ports.http),
        "arcadedb.server.httpsIncomingPort": str(ports.https),
    }
    props = [f"-D{k}={v}" for k, v in settings.items()]
    classpath = str(pkg / "jars" / "*")  # expanded by java itself, not by a shell
    return [str(java_executable(pkg)), *jvm, *props, "-cp", classpath, SERVER_MAIN_CLASS]


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    useful = [ln for ln in lines if ln.strip() and "Using incubator modules" not in ln]
    return "\n".join(useful[-n:]) or "(empty)"


def _is_our_server(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is an ArcadeDB server process launched on ``data_dir`` (guards against PID reuse)."""
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False
    return SERVER_MAIN_CLASS in cmd and f"-Darcadedb.server.rootPath={data_dir}" in cmd


class EmbeddedGraphServer:
    """ArcadeDB Bolt server in a child process, with data under ``data_dir``.

    Parameters
    ----------
    data_dir : path, optional
        Server root: ``databases/<database>`` holds the graph, ``config/`` the users, ``log/`` the logs.
        Default :func:`default_graph_dir` (``./data/graph``).
    heap : str
        Java max heap (``-Xmx``), e.g. ``"1g"``.
    startup_timeout_s : float
        Seconds to wait for a Cypher query to succeed before giving up (the JVM starts in ~1-3 s).
    stop_timeout_s : float
        Seconds to wait after SIGTERM before SIGKILL.
    database : str
        Database name (created on first start).
    jvm_args : tuple of str
        Extra JVM flags.

    Use as a context manager, or call :meth:`start` / :meth:`stop`; an ``atexit`` hook stops it anyway.
    """

    def __init__(self, data_dir: str | Path | None = None, *, heap: str = "1g", startup_timeout_s: float = 90.0,
                 stop_timeout_s: float = 30.0, database: str = DEFAULT_DATABASE, host: str = "127.0.0.1",
                 jvm_args: tuple[str, ...] = ()) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_graph_dir()
        self.heap = heap
        self.startup_timeout_s = float(startup_timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self.database = database
        self.host = host
        self.jvm_args = tuple(jvm_args)
        self.ports: Ports | None = None
        self.startup_seconds: float | None = None
        self.command: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ properties
    @property
    def uri(self) -> str:
        self._require_ports()
        return f"bolt://{self.host}:{self.ports.bolt}"  # type: ignore[union-attr]

    @property
    def http_url(self) -> str:
        """URL of ArcadeDB's HTTP server (REST API at ``/api/v1``; Studio is not in the pip wheel)."""
        self._require_ports()
        return f"http://{self.host}:{self.ports.http}/"  # type: ignore[union-attr]

    @property
    def user(self) -> str:
        return ROOT_USER

    @property
    def password(self) -> str:
        return self._password_file.read_text().strip()

    @property
    def database_dir(self) -> Path:
        return self.data_dir / "databases" / self.database

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def _password_file(self) -> Path:
        return self.data_dir / PASSWORD_FILE

    @property
    def _state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log_files(self) -> tuple[Path, Path]:
        return self.data_dir / "log" / "server.out.log", self.data_dir / "log" / "server.err.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _require_ports(self) -> None:
        if self.ports is None:
            raise EmbeddedServerError("the embedded graph server has not been started (call start())")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "EmbeddedGraphServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "EmbeddedGraphServer":
        """Launch the server and return once a Cypher query succeeds through the neo4j driver."""
        with self._lock:
            if self.is_running():
                return self
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "log").mkdir(exist_ok=True)
            self._check_not_in_use()
            self._ensure_password()
            t0 = time.perf_counter()
            last_error: EmbeddedServerError | None = None
            for _attempt in range(3):  # a port picked as free can be taken before java binds it
                try:
                    self._launch_and_wait(t0)
                    break
                except _PortTaken as exc:
                    last_error = EmbeddedServerError(str(exc))
                    log.warning("embedded graph server: port taken, retrying with new ports (%s)", exc)
            else:
                raise last_error or EmbeddedServerError("embedded graph server could not bind its ports")
            self.startup_seconds = time.perf_counter() - t0
            self._write_state()
            atexit.register(self.stop)
            log.info(
                "embedded graph server (ArcadeDB %s, PID %d) ready in %.1f s at %s, database %r; data in %s; "
                "web console (ArcadeDB HTTP server, REST API at /api/v1; the pip wheel has no Studio UI) %s; "
                "user %s, password in %s",
                arcadedb_version(), self.pid, self.startup_seconds, self.uri, self.database, self.database_dir,
                self.http_url, ROOT_USER, self._password_file,
            )
            return self

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM (graceful: ArcadeDB flushes and closes), SIGKILL on timeout."""
        with self._lock:
            proc, self._proc = self._proc, None
            try:
                atexit.unregister(self.stop)
            except Exception:  # pragma: no cover - unregister never fails in CPython
                pass
            if proc is None:
                return
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("embedded graph server PID %d did not stop in %.0f s; killing it",
                                proc.pid, self.stop_timeout_s)
                    proc.kill()
                    proc.wait(timeout=10)
            self._state_file.unlink(missing_ok=True)
            log.info("embedded graph server PID %d stopped (exit code %s); data kept in %s",
                     proc.pid, proc.returncode, self.database_dir)

    # ------------------------------------------------------------------ internals
    def _check_not_in_use(self) -> None:
        """Refuse a data folder another live server holds; stop a server orphaned by a dead parent."""
        if not self._state_file.exists():
            return
        try:
            state = json.loads(self._state_file.read_text())
            pid, owner = int(state["pid"]), int(state.get("owner_pid", -1))
        except (OSError, ValueError, KeyError):
            self._state_file.unlink(missing_ok=True)
            return
        if not _is_our_server(pid, self.data_dir):
            self._state_file.unlink(missing_ok=True)  # stale: that process is gone
            return
        if owner > 0 and not psutil.pid_exists(owner):
            log.warning("stopping embedded graph server PID %d left running by dead process %d on %s",
                        pid, owner, self.data_dir)
            p = psutil.Process(pid)
            p.terminate()
            try:
                p.wait(timeout=self.stop_timeout_s)
            except psutil.TimeoutExpired:
                p.kill()
            self._state_file.unlink(missing_ok=True)
            return
        raise EmbeddedServerError(
            f"graph data folder {self.data_dir} is in use by the embedded server PID {pid} "
            f"({state.get('uri')}, started by PID {owner}); use another folder (GRAPHWIZ_GRAPH_DIR), stop "
            f"that process, or connect to it with NEO4J_URI={state.get('uri')} NEO4J_USER={ROOT_USER} and "
            f"NEO4J_PASSWORD from {self._password_file}"
        )

    def _ensure_password(self) -> None:
        users = self.data_dir / "config" / "server-users.jsonl"
        if self._password_file.exists():
            if not self._password_file.read_text().strip():
                raise EmbeddedServerError(f"{self._password_file} is empty; delete it and {users} to reset")
            return
        if users.exists():
            raise EmbeddedServerError(
                f"{users} exists but the root password file {self._password_file} is missing, so the "
                f"server's root password is unknown; delete {users} to create a new root user (the graph "
                f"data in {self.data_dir / 'databases'} is kept)"
            )
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))

    def _launch_and_wait(self, t0: float) -> None:
        self.ports = Ports.pick(self.host)
        self.command = build_command(self.data_dir, self.ports, host=self.host, heap=self.heap,
                                     database=self.database, jvm_args=self.jvm_args)
        out_path, err_path = self.log_files
        log.debug("starting embedded graph server: %s", " ".join(self.command))
        kwargs: dict[str, object] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # Ctrl-C reaches Python, which then stops the server cleanly
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                self._proc = subprocess.Popen(self.command, cwd=self.data_dir, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=err, **kwargs)  # type: ignore[arg-type]
            except OSError as exc:
                raise EmbeddedServerError(f"could not run the bundled Java runtime {self.command[0]}: {exc}") from exc
        self._wait_ready(t0)

    def _fail(self, message: str) -> EmbeddedServerError:
        out_path, err_path = self.log_files
        return EmbeddedServerError(
            f"{message}\n--- {err_path} (tail) ---\n{_tail(err_path)}\n--- {out_path} (tail) ---\n{_tail(out_path)}"
        )

    def _wait_ready(self, t0: float) -> None:
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable

        assert self._proc is not None
        deadline = t0 + self.startup_timeout_s
        driver = GraphDatabase.driver(self.uri, auth=(ROOT_USER, self.password), connection_timeout=2.0,
                                      max_transaction_retry_time=0.0)
        last = "no answer yet"
        try:
            while True:
                rc = self._proc.poll()
                if rc is not None:
                    self._proc = None
                    text = _tail(self.log_files[0], 200) + _tail(self.log_files[1], 200)
                    if "Address already in use" in text or "BindException" in text:
                        raise _PortTaken(f"port in use ({self.ports})")
                    raise self._fail(f"the embedded ArcadeDB server exited with code {rc} during startup "
                                     f"(data folder {self.data_dir})")
                try:
                    with driver.session(database=self.database) as session:
                        value = session.run("RETURN 1 AS ok").single(strict=True)["ok"]
                    if value == 1:
                        return
                except AuthError as exc:
                    self.stop_quietly()
                    raise self._fail(
                        f"the embedded server at {self.uri} refused the root password in {self._password_file} "
                        f"({exc.message}); config/server-users.jsonl was created with another password: delete "
                        f"{self.data_dir / 'config' / 'server-users.jsonl'} and {self._password_file} to reset"
                    ) from exc
                except (ServiceUnavailable, ClientError, Neo4jError, DriverError, OSError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.perf_counter() > deadline:
                    self.stop_quietly()
                    raise self._fail(f"the embedded graph server at {self.uri} did not answer a Cypher query "
                                     f"within {self.startup_timeout_s:g} s (last error: {last})")
                time.sleep(0.2)
        finally:
            driver.close()

    def stop_quietly(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _write_state(self) -> None:
        state = {"pid": self.pid, "owner_pid": os.getpid(), "uri": self.uri, "http_url": self.http_url,
                 "database": self.database, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._state_file.write_text(json.dumps(state, indent=2))

    def __repr__(self) -> str:
        where = self.uri if self.ports else "not started"
        return f"EmbeddedGraphServer({where}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


class _PortTaken(Exception):
    pass


_SHARED: dict[Path, EmbeddedGraphServer] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedded_server(data_dir: str | Path | None = None, **kwargs: object) -> EmbeddedGraphServer:
    """The process-wide embedded server for ``data_dir``, started on first use and stopped at exit.

    Every store connecting without ``NEO4J_URI`` shares it, so a process starts at most one JVM per folder.
    """
    key = Path(data_dir).expanduser().resolve() if data_dir else default_graph_dir()
    with _SHARED_LOCK:
        server = _SHARED.get(key)
        if server is None or not server.is_running():
            server = EmbeddedGraphServer(key, **kwargs)  # type: ignore[arg-type]
            server.start()
            _SHARED[key] = server
        return server
