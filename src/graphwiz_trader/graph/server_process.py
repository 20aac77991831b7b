"""Process plumbing of the embedded graph server: a folder lock, a child that dies with its parent, SIGTERM
turned into a clean exit, and server logs kept across starts.

- :class:`FolderLock`: an ``flock`` on a file in the data folder. ``flock`` locks belong to the open file
  description, so two :class:`FolderLock` objects conflict even inside one process, and the kernel drops the
  lock when its holder dies (SIGKILL included): a lock is never stale.
- :func:`spawn`: ``subprocess.Popen`` whose child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (Linux), so a
  SIGKILLed parent takes the JVM with it. PDEATHSIG fires when the parent *thread* exits, not the process:
  a server started from a worker thread (``asyncio.to_thread``, a thread pool) would be killed when that pool
  shuts down while other threads still use it. Every child is therefore forked from one daemon thread that
  lives as long as the process (see :class:`_Launcher`). On other systems there is no PDEATHSIG (debug log);
  the next start on the folder stops a server whose owner is gone.
- :func:`hold_sigterm_exit` / :func:`release_sigterm_exit`: while a process owns a server, SIGTERM raises
  ``SystemExit(143)`` in the main thread, so ``with`` blocks and ``atexit`` stop the server; a previous
  Python handler is called first. A second SIGTERM while stopping kills the process at once (the default
  action); PDEATHSIG then takes the JVM. Forked children (``multiprocessing`` and joblib workers, e.g. Qlib's
  expression engine) own no server: they start with no holders and the default SIGTERM
  (:mod:`graphwiz_trader.core.forks`).
- :func:`rotate_logs`: ``server.err.log`` -> ``server.err.log.1`` -> ... keeps the previous runs' output.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psutil

from graphwiz_trader.core.forks import reset_signals_in_forked_children
from graphwiz_trader.graph.server_launch import is_server_command

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


# ============================================================================================ folder lock
class FolderLock:
    """An exclusive (or shared) ``flock`` on ``path``, held from :meth:`try_acquire` to :meth:`release`.

    The exclusive holder writes its PID into the file so that others can name it (:meth:`holder`).
    The file itself is never deleted (deleting a locked file would let two processes lock two files).
    Without ``fcntl`` (Windows) every acquire succeeds, with a debug log: there is no cross-process guard.
    """

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock without blocking; False when another holder has it (conflicting mode)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children (PEP 446)
        if fcntl is None:  # pragma: no cover - Windows
            log.debug("no flock on %s: %s is not locked against other processes", sys.platform, self.path)
        else:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
        if not self.shared:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self, timeout_s: float, poll_s: float = 0.2) -> bool:
        """Take the lock, polling every ``poll_s`` seconds for at most ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)  # also for a copy of this descriptor inherited by a forked child
        os.close(fd)

    def __del__(self) -> None:  # a lost FolderLock must not keep the folder locked for the process's lifetime
        try:
            self.release()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    @staticmethod
    def holder(path: Path) -> int | None:
        """PID written by the exclusive holder of the lock file ``path`` (None when unknown)."""
        try:
            return int(Path(path).read_text().strip())
        except (OSError, ValueError):
            return None


# ============================================================================================ spawning
def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when its parent thread dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        log.debug("PR_SET_PDEATHSIG is Linux-only; on %s a killed parent leaves the graph server running "
                  "until the next start on its folder stops it", sys.platform)
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved in the parent; the child only calls it
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, sigkill = os.getpid(), int(signal.SIGKILL)

    def die_with_parent() -> None:
        if prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return die_with_parent


class _Launcher:
    """One daemon thread, alive until the process ends, that forks every server child (see module docstring).

    At interpreter exit ``atexit`` handlers run before daemon threads stop, so a graceful stop still happens;
    the thread only ends with the process, which is exactly when PDEATHSIG should fire.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._guard:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="graphwiz-server-launcher", daemon=True)
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((done, command, kwargs))
        return done.result()

    def _serve(self) -> None:
        while True:
            done, command, kwargs = self._requests.get()
            try:
                done.set_result(subprocess.Popen(command, **kwargs))
            except BaseException as exc:  # handed to the caller's thread, which raises it
                done.set_exception(exc)


_LAUNCHER = _Launcher()


def spawn(command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(command, **kwargs)`` from the launcher thread, the child dying with this process.

    On POSIX the child also gets its own session, so Ctrl-C in a terminal reaches Python only, which then
    stops the server cleanly.
    """
    preexec = _pdeathsig_preexec()
    if preexec is not None:
        kwargs["preexec_fn"] = preexec
    if os.name == "posix":
        kwargs["start_new_session"] = True
    return _LAUNCHER.popen(command, **kwargs)


# ============================================================================================ SIGTERM
class _SigtermState:
    def __init__(self) -> None:
        self.holders = 0
        self.previous: Any = None
        self.installed = False
        self.terminating = False
        self.owner = 0  # PID of the process that installed the handler
        self.guard = threading.Lock()


_SIGTERM = _SigtermState()


def _reset_in_child() -> None:
    """A forked child owns no server: it starts with no holders (:mod:`graphwiz_trader.core.forks` resets its
    handlers)."""
    state = _SIGTERM
    state.holders, state.installed, state.previous, state.terminating = 0, False, None, False
    state.guard = threading.Lock()


reset_signals_in_forked_children()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def _on_sigterm(signum: int, frame: Any) -> None:
    if os.getpid() != _SIGTERM.owner:
        # a child forked without the at-fork hook (it only runs for os.fork): the default action, at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if _SIGTERM.terminating:
        log.warning("second SIGTERM: exiting now; the graph server dies with this process")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _SIGTERM.terminating = True
    log.warning("SIGTERM received: exiting; the embedded graph server is stopped on the way out")
    previous = _SIGTERM.previous
    if callable(previous):
        previous(signum, frame)
    raise SystemExit(128 + signum)


def terminating() -> bool:
    """True once SIGTERM was received by the handler of :func:`hold_sigterm_exit`."""
    return _SIGTERM.terminating


def hold_sigterm_exit() -> bool:
    """Make SIGTERM raise ``SystemExit(143)`` while at least one holder exists (see module docstring).

    Returns True when the handler is (now) in place; False, changing nothing, outside the main thread,
    without SIGTERM, or when SIGTERM is ignored (SIG_IGN is the process owner's choice).
    """
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        log.debug("SIGTERM handler not installed (not the main thread): atexit and PDEATHSIG stop the server")
        return False
    with _SIGTERM.guard:
        if not _SIGTERM.installed:
            previous = signal.getsignal(signal.SIGTERM)
            if previous == signal.SIG_IGN:
                return False
            signal.signal(signal.SIGTERM, _on_sigterm)
            _SIGTERM.previous, _SIGTERM.installed, _SIGTERM.owner = previous, True, os.getpid()
        _SIGTERM.holders += 1
        return True


def release_sigterm_exit() -> None:
    """Drop one hold; the last one restores the previous handler (from the main thread only)."""
    with _SIGTERM.guard:
        _SIGTERM.holders = max(0, _SIGTERM.holders - 1)
        if _SIGTERM.holders or not _SIGTERM.installed:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # stays installed; SIGTERM still exits cleanly
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            previous = _SIGTERM.previous
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        _SIGTERM.installed, _SIGTERM.previous = False, None


# ============================================================================================ processes, logs
def rotate_logs(path: Path, keep: int) -> None:
    """Keep the last ``keep`` versions of ``path``: ``path`` -> ``path.1`` -> ... -> ``path.{keep}`` (dropped after)."""
    path = Path(path)
    if keep < 1:
        path.unlink(missing_ok=True)
        return
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


def is_server_process(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is a live ArcadeDB server launched on ``data_dir`` (guards against PID reuse)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and is_server_command(proc.cmdline(), data_dir)
    except (psutil.Error, OSError):
        return False


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Every live ArcadeDB server process running on ``data_dir`` (any parent)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["status"] != psutil.STATUS_ZOMBIE and is_server_command(cmdline, data_dir):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def process_alive(pid: int, created: float | None = None) -> bool:
    """True when ``pid`` runs (and, with ``created``, is the process started at that time, not a PID reuse)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < 1.0
    except (psutil.Error, OSError):
        return False


def process_created(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def terminate(proc: psutil.Process, timeout_s: float) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``timeout_s`` seconds."""
    try:
        proc.terminate()
        proc.wait(timeout=timeout_s)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    except psutil.NoSuchProcess:
        pass


def stop_child(proc: subprocess.Popen[bytes], timeout_s: float) -> BaseException | None:
    """SIGTERM our child ``proc`` and wait for it, SIGKILL after ``timeout_s`` seconds.

    A SIGTERM (as ``SystemExit``) or Ctrl-C arriving meanwhile does not cut the wait short, so the child
    still stops cleanly; it is returned for the caller to re-raise afterwards (None when there was none).
    """
    pending: BaseException | None = None
    proc.terminate()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return pending
        except subprocess.TimeoutExpired:
            log.warning("embedded graph server PID %d did not stop in %.0f s; killing it", proc.pid, timeout_s)
            proc.kill()
            proc.wait(timeout=10)
            return pending
        except (KeyboardInterrupt, SystemExit) as exc:
            pending = exc
