"""The embedded graph server: ArcadeDB's Bolt server from the ``arcadedb-embedded`` wheel, one per data folder.

The server runs as a child process bound to 127.0.0.1 (command line and why each setting:
:mod:`graphwiz_trader.graph.server_launch`), not in-process through JPype, so it has a PID to stop and its
own memory. Its data folder ``DATA`` is ``data/graph`` or ``$GRAPHWIZ_GRAPH_DIR``.

One owner per data folder:

- The process that starts the server *owns* it. It holds an exclusive lock on ``DATA/server.lock`` from
  before the launch until the server has stopped, and writes ``DATA/server.json`` (PIDs, host, ports) once
  the server answers. Only the owner stops the server: SIGTERM, then SIGKILL after ``stop_timeout_s``, at
  ``atexit`` or when the context manager exits.
- A process that finds the lock taken (another :class:`EmbeddedGraphServer` in the same process too)
  *reuses* the running server when the owner named in ``server.json`` is alive, the server process runs on
  this folder and it answers ``RETURN 1`` with the password in ``DATA/.root_password``. While attached, a
  reuser holds a shared lock on ``DATA/clients.lock``; its :meth:`~EmbeddedGraphServer.stop` only detaches.
- When the server cannot be reused yet (its owner is still starting or already stopping it), the newcomer
  logs that it waits and polls for up to ``wait_timeout_s``: it reuses the server once ready, or takes the
  lock and starts its own once the owner has let go; else it raises :class:`EmbeddedServerError` naming the
  folder and the owner's PID.
- When the owner exits while reusers are attached, it first waits up to ``reuser_grace_s`` for them to
  detach (an exclusive lock on ``clients.lock``; no new reuser attaches meanwhile), and says so in the log.
  After SIGTERM or Ctrl-C it does not wait. A reuser still attached when the server stops gets a
  :class:`~graphwiz_trader.graph.store_errors.GraphUnavailableError` (a ``GraphStoreError`` naming the URI)
  on its next query; its next ``GraphStore.connect`` starts or reuses a server again.
- A server left running on the folder by an owner that is gone is stopped by the next owner before it
  launches its own.

A dying owner takes its server with it. SIGTERM raises ``SystemExit`` in the owner (a handler installed when
it starts the server, main thread only), so ``with`` blocks and ``atexit`` stop the server; on Linux the JVM
gets ``PR_SET_PDEATHSIG=SIGKILL`` against a SIGKILLed owner (see :mod:`graphwiz_trader.graph.server_process`,
which also says why the JVM is forked from one process-lifetime thread).

Readiness is a Cypher ``RETURN 1`` through the official neo4j driver, not an open port. The server's
stdout/stderr go to ``DATA/log/server.{out,err}.log``; those of the ``keep_logs`` previous starts are kept as
``.1``, ``.2``, ... When Java fails to start, the error shows their tails.

The HTTP port serves ArcadeDB's REST API (``/api/v1``). The pip wheel does not bundle the Studio web UI:
the root page says so and how to add it. Explore the graph with Cypher through the HTTP API or a Neo4j
client on the Bolt URL, or run Neo4j with ``docker compose up neo4j`` for the Neo4j Browser.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from graphwiz_trader.graph.server_launch import (
    BOLT_PLUGIN,
    DEFAULT_DATABASE,
    PASSWORD_FILE,
    ROOT_USER,
    SERVER_MAIN_CLASS,
    PortTaken,
    Ports,
    arcadedb_package_dir,
    arcadedb_version,
    build_command,
    ensure_password,
    free_port,
    java_executable,
    probe,
    wait_ready,
    write_atomic,
)
from graphwiz_trader.graph.server_process import (
    FolderLock,
    hold_sigterm_exit,
    is_server_process,
    process_alive,
    process_created,
    release_sigterm_exit,
    rotate_logs,
    server_processes,
    spawn,
    stop_child,
    terminate,
    terminating,
)
from graphwiz_trader.graph.store_errors import EmbeddedServerError

__all__ = ["BOLT_PLUGIN", "DEFAULT_DATABASE", "GRAPH_DIR_ENV", "ROOT_USER", "SERVER_MAIN_CLASS", "EmbeddedGraphServer",
           "Ports", "arcadedb_package_dir", "arcadedb_version", "build_command", "default_graph_dir", "free_port",
           "java_executable", "shared_embedded_server"]

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
LOCK_FILE = "server.lock"
CLIENTS_FILE = "clients.lock"
GRAPH_DIR_ENV = "GRAPHWIZ_GRAPH_DIR"


def default_graph_dir() -> Path:
    """The data folder of the embedded server: ``$GRAPHWIZ_GRAPH_DIR`` or ``./data/graph`` (absolute)."""
    env = os.environ.get(GRAPH_DIR_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else (Path.cwd() / "data" / "graph").resolve()


class EmbeddedGraphServer:
    """ArcadeDB Bolt server with data under ``data_dir``: started here (owner) or reused (see module docstring).

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
    host : str
        Address every listener binds to.
    jvm_args : tuple of str
        Extra JVM flags.
    wait_timeout_s : float
        Seconds to wait for a folder locked by another owner whose server is not ready to share.
    reuser_grace_s : float
        Seconds the owner waits, when stopping, for processes that reuse its server to detach.
    keep_logs : int
        Previous runs' ``server.{out,err}.log`` kept as ``.1`` ... ``.keep_logs``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`; an ``atexit`` hook stops (or detaches) anyway.
    """

    def __init__(self, data_dir: str | Path | None = None, *, heap: str = "1g", startup_timeout_s: float = 90.0,
                 stop_timeout_s: float = 30.0, database: str = DEFAULT_DATABASE, host: str = "127.0.0.1",
                 jvm_args: tuple[str, ...] = (), wait_timeout_s: float = 120.0, reuser_grace_s: float = 600.0,
                 keep_logs: int = 3) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_graph_dir()
        self.heap = heap
        self.startup_timeout_s = float(startup_timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self.database = database
        self.host = host
        self.jvm_args = tuple(jvm_args)
        self.wait_timeout_s = float(wait_timeout_s)
        self.reuser_grace_s = float(reuser_grace_s)
        self.keep_logs = int(keep_logs)
        self.ports: Ports | None = None
        self.startup_seconds: float | None = None
        self.command: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_lock: FolderLock | None = None
        self._clients_lock: FolderLock | None = None
        self._reused: dict[str, int] | None = None  # {"pid": server, "owner_pid": its owner} while reusing
        self._reuse_problem = "no server.json yet: the owner is still starting its server"
        self._sigterm_held = False
        self._lock = threading.RLock()

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
        """PID of the server process (started here, or the reused one); None when not started."""
        if self._proc is not None:
            return self._proc.pid
        return self._reused["pid"] if self._reused is not None else None

    @property
    def owner_pid(self) -> int | None:
        """PID of the process that owns (and stops) the server: this one, or the reused server's owner."""
        if self._proc is not None:
            return os.getpid()
        return self._reused["owner_pid"] if self._reused is not None else None

    @property
    def reused(self) -> bool:
        """True when attached to a server another owner started (this object will not stop it)."""
        return self._reused is not None

    @property
    def lock_file(self) -> Path:
        return self.data_dir / LOCK_FILE

    @property
    def _clients_file(self) -> Path:
        return self.data_dir / CLIENTS_FILE

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
        if self._proc is not None:
            return self._proc.poll() is None
        return self._reused is not None and is_server_process(self._reused["pid"], self.data_dir)

    def _require_ports(self) -> None:
        if self.ports is None:
            raise EmbeddedServerError("the embedded graph server has not been started (call start())")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "EmbeddedGraphServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "EmbeddedGraphServer":
        """Start the server here, or reuse the folder's running one; return once it answers a Cypher query.

        Raises :class:`EmbeddedServerError` when Java fails, the server does not answer within
        ``startup_timeout_s``, or another owner's server cannot be reused within ``wait_timeout_s``.
        """
        with self._lock:
            if self.is_running():
                return self
            if self._proc is not None or self._owner_lock is not None or self._reused is not None:
                self.stop()  # our server died, or the reused one went away: let go of its locks first
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "log").mkdir(exist_ok=True)
            deadline = time.monotonic() + self.wait_timeout_s
            told = False
            while True:
                lock = FolderLock(self.lock_file)
                if lock.try_acquire():
                    self._start_owned(lock)
                    return self
                if self._try_reuse():
                    return self
                holder = FolderLock.holder(self.lock_file)
                if time.monotonic() >= deadline:
                    raise EmbeddedServerError(self._busy_message(holder))
                if not told:
                    log.warning("graph data folder %s is locked by PID %s, whose embedded graph server cannot be "
                                "shared yet (%s); waiting up to %g s to reuse it or to start one here",
                                self.data_dir, holder or "?", self._reuse_problem, self.wait_timeout_s)
                    told = True
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server if this object owns it (SIGTERM, SIGKILL on timeout); a reuser only detaches.

        The owner first waits up to ``reuser_grace_s`` for reusers to detach (not after SIGTERM/Ctrl-C). A
        SIGTERM or Ctrl-C arriving meanwhile does not cut the stop short: it is re-raised once the server is down.
        """
        with self._lock:
            atexit.unregister(self._stop_at_exit)
            if self._reused is not None:
                self._detach()
                return
            proc, pending = self._proc, None
            if proc is None and self._owner_lock is None:
                return
            try:
                if proc is not None and proc.poll() is None:
                    pending = self._wait_for_reusers(proc.pid)
                    pending = stop_child(proc, self.stop_timeout_s) or pending
                self._state_file.unlink(missing_ok=True)
            finally:
                self._proc = None
                self._release_locks()
            if proc is not None:
                log.info("embedded graph server PID %d stopped (exit code %s); data kept in %s",
                         proc.pid, proc.returncode, self.database_dir)
            if pending is not None:
                raise pending

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except (KeyboardInterrupt, SystemExit):  # the interpreter is exiting anyway; the server is down
            pass

    def stop_quietly(self) -> None:
        """Kill a server that failed to start (SIGKILL; its data folder stays locked until :meth:`stop`)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    # ------------------------------------------------------------------ owner
    def _start_owned(self, lock: FolderLock) -> None:
        self._owner_lock = lock
        try:
            self._stop_leftovers()
            ensure_password(self.data_dir)
            for path in self.log_files:
                rotate_logs(path, self.keep_logs)
            self._sigterm_held = hold_sigterm_exit()
            atexit.register(self._stop_at_exit)
            t0 = time.perf_counter()
            last_error: EmbeddedServerError | None = None
            for _attempt in range(3):  # a port picked as free can be taken before java binds it
                try:
                    self._launch_and_wait(t0)
                    break
                except PortTaken as exc:
                    last_error = exc
                    log.warning("embedded graph server: port taken, retrying with new ports (%s)", exc)
            else:
                raise last_error or EmbeddedServerError("embedded graph server could not bind its ports")
            self.startup_seconds = time.perf_counter() - t0
            self._write_state()
        except BaseException:
            atexit.unregister(self._stop_at_exit)
            self.stop_quietly()
            self.ports = None
            self._release_locks()
            raise
        log.info(
            "embedded graph server (ArcadeDB %s, PID %d) ready in %.1f s at %s, database %r; data in %s; "
            "web console (ArcadeDB HTTP server, REST API at /api/v1; the pip wheel has no Studio UI) %s; "
            "user %s, password in %s",
            arcadedb_version(), self.pid, self.startup_seconds, self.uri, self.database, self.database_dir,
            self.http_url, ROOT_USER, self._password_file,
        )

    def _stop_leftovers(self) -> None:
        """With the folder lock held: stop servers on this folder whose owner is gone (no lock, no process)."""
        state = self._read_state()
        if state is not None:
            owner, pid = int(state.get("owner_pid", -1)), int(state.get("pid", -1))
            if owner != os.getpid() and process_alive(owner, state.get("owner_started")) \
                    and is_server_process(pid, self.data_dir):  # a graphwiz version that did not lock the folder
                raise EmbeddedServerError(
                    f"graph data folder {self.data_dir} is in use by the embedded server PID {pid} "
                    f"({state.get('uri')}, started by PID {owner}); use another folder (GRAPHWIZ_GRAPH_DIR), "
                    f"stop that process, or connect to it with NEO4J_URI={state.get('uri')} "
                    f"NEO4J_USER={ROOT_USER} and NEO4J_PASSWORD from {self._password_file}"
                )
        for proc in server_processes(self.data_dir):
            log.warning("stopping embedded graph server PID %d left running on %s by an owner that is gone",
                        proc.pid, self.data_dir)
            terminate(proc, self.stop_timeout_s)
        self._state_file.unlink(missing_ok=True)

    def _launch_and_wait(self, t0: float) -> None:
        self.ports = Ports.pick(self.host)
        self.command = build_command(self.data_dir, self.ports, host=self.host, heap=self.heap,
                                     database=self.database, jvm_args=self.jvm_args)
        out_path, err_path = self.log_files
        log.debug("starting embedded graph server: %s", " ".join(self.command))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                self._proc = spawn(self.command, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            except (OSError, subprocess.SubprocessError) as exc:
                raise EmbeddedServerError(f"could not run the bundled Java runtime {self.command[0]}: {exc}") from exc
        try:
            wait_ready(self._proc, self.uri, self._password_file, self.database, started=t0,
                       timeout_s=self.startup_timeout_s, log_files=self.log_files)
        except BaseException:
            self.stop_quietly()
            raise

    def _write_state(self) -> None:
        assert self.ports is not None
        state = {"pid": self.pid, "owner_pid": os.getpid(), "owner_started": process_created(os.getpid()),
                 "host": self.host, "ports": {"bolt": self.ports.bolt, "http": self.ports.http,
                                              "https": self.ports.https},
                 "uri": self.uri, "http_url": self.http_url, "database": self.database,
                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_atomic(self._state_file, json.dumps(state, indent=2))

    def _wait_for_reusers(self, pid: int) -> BaseException | None:
        """Take ``clients.lock`` exclusively (no reuser left, none can attach); returns a deferred interrupt."""
        clients = FolderLock(self._clients_file)
        if clients.try_acquire():
            self._clients_lock = clients
            return None
        if terminating():
            log.warning("stopping embedded graph server PID %d now (SIGTERM) although other processes reuse it; "
                        "their next query fails", pid)
            return None
        log.warning("other processes reuse embedded graph server PID %d on %s: waiting up to %g s for them to "
                    "finish before stopping it (Ctrl-C stops it now)", pid, self.data_dir, self.reuser_grace_s)
        pending: BaseException | None = None
        try:
            detached = clients.acquire(self.reuser_grace_s)
        except (KeyboardInterrupt, SystemExit) as exc:
            pending, detached = exc, False
        if detached:
            self._clients_lock = clients
        else:
            clients.release()
            log.warning("stopping embedded graph server PID %d although other processes still reuse it; their "
                        "next query fails with GraphUnavailableError", pid)
        return pending

    def _release_locks(self) -> None:
        if self._clients_lock is not None:
            self._clients_lock.release()
            self._clients_lock = None
        if self._owner_lock is not None:
            self._owner_lock.release()
            self._owner_lock = None
        if self._sigterm_held:
            self._sigterm_held = False
            release_sigterm_exit()

    # ------------------------------------------------------------------ reuser
    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _try_reuse(self) -> bool:
        """Attach to the running server of another owner when it is alive and answers; else False."""
        clients = FolderLock(self._clients_file, shared=True)
        if not clients.try_acquire():
            self._reuse_problem = "its owner is stopping it"
            return False
        attached = False
        try:
            state = self._read_state()
            if state is None or "ports" not in state:
                self._reuse_problem = "no server.json yet: its owner is still starting it"
                return False
            pid, owner = int(state["pid"]), int(state["owner_pid"])
            if not process_alive(owner, state.get("owner_started")) or not is_server_process(pid, self.data_dir):
                self._reuse_problem = f"server.json names server PID {pid} of owner PID {owner}, not running"
                return False
            self.host = str(state.get("host", self.host))
            self.ports = Ports(**{k: int(v) for k, v in state["ports"].items()})
            problem = probe(self.uri, self._password_file, self.database)
            if problem:
                self.ports = None
                self._reuse_problem = f"server PID {pid} does not answer: {problem}"
                return False
            self._reused, self._clients_lock, attached = {"pid": pid, "owner_pid": owner}, clients, True
        except (KeyError, TypeError, ValueError) as exc:
            self._reuse_problem = f"unreadable {self._state_file}: {exc}"
            return False
        finally:
            if not attached:
                clients.release()
        atexit.register(self._stop_at_exit)
        log.info("reusing embedded graph server PID %d at %s (data in %s), owned by PID %d: that process stops it, "
                 "this one only detaches", pid, self.uri, self.database_dir, owner)
        return True

    def _detach(self) -> None:
        reused, self._reused = self._reused, None
        self.ports = None
        if self._clients_lock is not None:
            self._clients_lock.release()
            self._clients_lock = None
        if reused is not None:
            log.info("detached from embedded graph server PID %d (left running for its owner PID %d)",
                     reused["pid"], reused["owner_pid"])

    def _busy_message(self, holder: int | None) -> str:
        who = f"PID {holder}" if holder else "another process"
        if holder and not process_alive(holder):
            who += f" (no longer running; a process it forked still holds {self.lock_file})"
        return (f"graph data folder {self.data_dir} is locked by {who}, the owner of its embedded graph server, "
                f"and that server could not be reused within {self.wait_timeout_s:g} s ({self._reuse_problem}); "
                f"wait for that process to finish, stop it, or use another folder ({GRAPH_DIR_ENV})")

    def __repr__(self) -> str:
        where = self.uri if self.ports else "not started"
        role = "reused" if self.reused else "owned"
        return f"EmbeddedGraphServer({where}, data_dir={str(self.data_dir)!r}, pid={self.pid}, {role})"


_SHARED: dict[Path, EmbeddedGraphServer] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedded_server(data_dir: str | Path | None = None, **kwargs: Any) -> EmbeddedGraphServer:
    """The process-wide embedded server for ``data_dir``: started (or reused) on first use, stopped at exit.

    Every store connecting without ``NEO4J_URI`` shares it, so a process starts at most one JVM per folder.
    """
    key = Path(data_dir).expanduser().resolve() if data_dir else default_graph_dir()
    with _SHARED_LOCK:
        server = _SHARED.get(key)
        if server is None or not server.is_running():
            if server is not None:
                server.stop()  # let go of a dead server's locks (or detach from a stopped owner's)
            server = EmbeddedGraphServer(key, **kwargs)
            server.start()
            _SHARED[key] = server
        return server
