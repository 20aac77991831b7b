"""Launching the embedded graph server: its java command line, its root password file, and the readiness probe.

The server is ArcadeDB's Bolt server from the ``arcadedb-embedded`` wheel.

The wheel bundles a Java runtime (``arcadedb_embedded/jre``) and the server jars (``arcadedb_embedded/jars``),
including the Bolt plugin, which accepts the official Neo4j 5 driver and Neo4j 5 Cypher (no APOC/GDS).

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

Readiness is a Cypher ``RETURN 1`` through the official neo4j driver (:func:`wait_ready`), not an open port.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from graphwiz_trader.graph.store_errors import EmbeddedServerError

DEFAULT_DATABASE = "graphwiz"
ROOT_USER = "root"
SERVER_MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
PASSWORD_FILE = ".root_password"
ROOT_PATH_FLAG = "-Darcadedb.server.rootPath="


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
    """The server's three listeners (TCP ports on the server's host)."""

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


def tail(path: Path, n: int = 25) -> str:
    """The last ``n`` useful lines of a log file (JVM noise removed)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    useful = [ln for ln in lines if ln.strip() and "Using incubator modules" not in ln]
    return "\n".join(useful[-n:]) or "(empty)"


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temp file, fsync and rename (readers see the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def is_server_command(cmdline: list[str], data_dir: Path) -> bool:
    """True when ``cmdline`` runs the ArcadeDB server on exactly ``data_dir`` (not on a folder that starts alike)."""
    return SERVER_MAIN_CLASS in cmdline and f"{ROOT_PATH_FLAG}{data_dir}" in cmdline


# ============================================================================================ password
def ensure_password(data_dir: Path) -> Path:
    """The folder's root password file, created (random, mode 0600, atomically) when the folder is new."""
    password_file, users = data_dir / PASSWORD_FILE, data_dir / "config" / "server-users.jsonl"
    if password_file.exists():
        if not password_file.read_text().strip():
            raise EmbeddedServerError(f"{password_file} is empty; delete it and {users} to reset")
        return password_file
    if users.exists():
        raise EmbeddedServerError(
            f"{users} exists but the root password file {password_file} is missing, so the "
            f"server's root password is unknown; delete {users} to create a new root user (the graph "
            f"data in {data_dir / 'databases'} is kept)"
        )
    write_atomic(password_file, secrets.token_urlsafe(24), 0o600)
    return password_file


# ============================================================================================ readiness
class PortTaken(EmbeddedServerError):
    """Java could not bind a port picked as free a moment before (the launch is retried with new ports)."""


def startup_error(message: str, log_files: tuple[Path, Path]) -> EmbeddedServerError:
    """``message`` followed by the tails of the server's stderr and stdout logs."""
    out_path, err_path = log_files
    return EmbeddedServerError(
        f"{message}\n--- {err_path} (tail) ---\n{tail(err_path)}\n--- {out_path} (tail) ---\n{tail(out_path)}"
    )


def wait_ready(proc: subprocess.Popen[bytes], uri: str, password_file: Path, database: str, *, started: float,
               timeout_s: float, log_files: tuple[Path, Path]) -> None:
    """Return once ``RETURN 1`` succeeds at ``uri``; raise when ``proc`` exits or ``timeout_s`` seconds pass.

    ``started`` is the ``time.perf_counter()`` the timeout counts from.

    Raises :class:`PortTaken` when Java exited on a taken port, else :class:`EmbeddedServerError` with the
    log tails. Leaves ``proc`` to the caller (it kills it on failure).
    """
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError, ServiceUnavailable

    data_dir, deadline = password_file.parent, started + timeout_s
    driver = GraphDatabase.driver(uri, auth=(ROOT_USER, password_file.read_text().strip()), connection_timeout=2.0,
                                  max_transaction_retry_time=0.0)
    last = "no answer yet"
    try:
        while True:
            rc = proc.poll()
            if rc is not None:
                text = tail(log_files[0], 200) + tail(log_files[1], 200)
                if "Address already in use" in text or "BindException" in text:
                    raise PortTaken(f"port in use ({uri})")
                raise startup_error(f"the embedded ArcadeDB server exited with code {rc} during startup "
                                    f"(data folder {data_dir})", log_files)
            try:
                with driver.session(database=database) as session:
                    if session.run("RETURN 1 AS ok").single(strict=True)["ok"] == 1:
                        return
            except AuthError as exc:
                raise startup_error(
                    f"the embedded server at {uri} refused the root password in {password_file} ({exc.message}); "
                    f"config/server-users.jsonl was created with another password: delete "
                    f"{data_dir / 'config' / 'server-users.jsonl'} and {password_file} to reset", log_files
                ) from exc
            except (ServiceUnavailable, ClientError, Neo4jError, DriverError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.perf_counter() > deadline:
                raise startup_error(f"the embedded graph server at {uri} did not answer a Cypher query within "
                                    f"{timeout_s:g} s (last error: {last})", log_files)
            time.sleep(0.2)
    finally:
        driver.close()


def probe(uri: str, password_file: Path, database: str) -> str:
    """Empty when the server at ``uri`` answers ``RETURN 1`` with the root password in ``password_file``, else why not."""
    from neo4j import GraphDatabase

    try:
        with GraphDatabase.driver(uri, auth=(ROOT_USER, password_file.read_text().strip()), connection_timeout=2.0,
                                  max_transaction_retry_time=0.0) as driver:
            with driver.session(database=database) as session:
                ok = session.run("RETURN 1 AS ok").single(strict=True)["ok"] == 1
        return "" if ok else "RETURN 1 gave another value"
    except Exception as exc:  # any failure means "not reusable now"; the reason goes into the caller's message
        return f"{type(exc).__name__}: {exc}"
