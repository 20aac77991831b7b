"""Run independent research tasks serially in this process or as Ray tasks, results in submission order.

A task is a picklable callable taking one argument, the *shared payload* (a frame every task reads, or
None). :func:`run_tasks` calls ``task(shared)`` for each task:

- ``workers == 1`` (and no ``ray_address``): one after the other in this process; Ray is not imported;
- otherwise as Ray tasks of one CPU each: a local Ray instance started for the call with
  ``num_cpus=workers`` (default :func:`default_workers`, every core), or the existing cluster at
  ``ray_address`` (its CPUs decide the parallelism; ``workers`` is not used). The shared payload is put
  into Ray's object store once (``ray.put``) and every task receives it from there, never one copy per task.

Threads: every task runs inside :func:`graphwiz_trader.core.threads.single_threaded` (BLAS and OpenMP pools
at one thread), in both modes; Ray workers also start with ``OMP_NUM_THREADS=1`` and the like
(:data:`THREAD_ENV`): on a cluster through the job's ``runtime_env={"env_vars": ...}``, locally by starting
Ray inside that environment, which every worker inherits (a job-level ``runtime_env`` makes Ray start fresh
workers for the job instead of using the prestarted ones: measured 7.3 s before the first task ran, against
0.9 s). Callers keep their own libraries at one thread too (the walk-forward passes LightGBM
``num_threads=1``), so a task computes the same numbers whichever mode or worker runs it.

Ray is kept quiet and tidy: no dashboard, worker output not forwarded to the terminal, its loggers at
WARNING, usage statistics off (``RAY_USAGE_STATS_ENABLED=0``), and Ray's notice that a new local
cluster uses token authentication (its default, kept) filtered out. A local instance lives in a short temp folder
under the system temp (Ray's socket paths must stay under 107 characters), is shut down when the call
ends (``try``/``finally``), and :mod:`graphwiz_trader.research.ray_reaper` ends its processes if this
process is killed (Ray alone leaves two agent processes behind on SIGKILL). Ray failing to start, or an
address nobody answers on, raises :class:`RayUnavailableError` naming the address.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from graphwiz_trader.core.progress import bar
from graphwiz_trader.core.threads import single_threaded
from graphwiz_trader.errors import GraphwizError

log = logging.getLogger(__name__)
T = TypeVar("T")

THREAD_ENV: dict[str, str] = {name: "1" for name in (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS")}
"""Environment of every Ray worker: the numeric libraries' pools at one thread from the first import."""

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP answer from ``--ray-address`` before giving up."""

_MAX_TEMP_ROOT = 40  # Ray appends session_<date>_<time>_<usec>_<pid>/sockets/plasma_store (~65 characters)


class RayUnavailableError(GraphwizError):
    """Ray could not be started here, or the cluster at ``--ray-address`` could not be reached."""


def default_workers() -> int:
    """Every core of this machine (``os.cpu_count()``, at least 1): the default of ``--workers``."""
    return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``workers``, or :func:`default_workers` when None; a clear error below 1."""
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise RayUnavailableError(f"--workers must be >= 1 (1 runs the tasks serially in this process), got {n}")
    return n


def describe(workers: int | None, ray_address: str | None) -> str:
    """One line for the terminal: where the tasks run."""
    if ray_address:
        return f"Ray cluster at {ray_address}"
    n = resolve_workers(workers)
    return "serially in this process" if n == 1 else f"{n} local Ray workers"


def _call(task: Callable[[Any], T], shared: Any) -> T:
    with single_threaded():
        return task(shared)


def run_tasks(tasks: Sequence[Callable[[Any], T]], shared: Any = None, *, workers: int | None = None,
              ray_address: str | None = None, desc: str = "tasks", progress: bool = False,
              timings: dict[str, float] | None = None) -> list[T]:
    """``[task(shared) for task in tasks]``, serially or on Ray (see the module text); results in task order.

    Parameters
    ----------
    tasks
        Independent picklable callables of one argument.
    shared
        What every task reads (passed as its argument); shipped to Ray's object store once.
    workers
        1: serial in this process. More: a local Ray instance with that many CPUs. None: every core.
    ray_address
        An existing Ray cluster (``host:port`` or ``ray://host:port``); ``workers`` is then not used.
    desc, progress
        Label and switch of the progress bar (advanced as tasks finish).
    timings
        When given, receives wall seconds: ``ray_start`` (``ray.init``), ``ray_put`` (shipping ``shared``),
        ``tasks`` (first submission to last result, or the serial loop) and ``ray_shutdown``.

    Raises
    ------
    RayUnavailableError
        Ray could not be started or the cluster could not be reached. An exception raised inside a task
        is raised again here as itself (not wrapped in Ray's task error).
    """
    n = resolve_workers(workers)
    times = timings if timings is not None else {}
    if not ray_address and (n == 1 or len(tasks) <= 1):
        out = []
        t0 = time.perf_counter()
        pbar = bar(len(tasks), desc, unit="task", enabled=progress)
        try:
            for task in tasks:
                out.append(_call(task, shared))
                pbar.update(1)
        finally:
            pbar.close()
        times["tasks"] = time.perf_counter() - t0
        return out
    t0 = time.perf_counter()
    try:
        with ray_session(n, ray_address) as ray:
            times["ray_start"] = time.perf_counter() - t0
            result = _run_on_ray(ray, tasks, shared, desc, progress, times)
            t0 = time.perf_counter()
    finally:
        times["ray_shutdown"] = time.perf_counter() - t0
    return result


def _run_on_ray(ray: Any, tasks: Sequence[Callable[[Any], T]], shared: Any, desc: str, progress: bool,
                times: dict[str, float]) -> list[T]:
    from ray.exceptions import RayTaskError

    remote = ray.remote(num_cpus=1)(_call)
    t0 = time.perf_counter()
    ref = ray.put(shared)
    times["ray_put"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pending = {remote.remote(task, ref): i for i, task in enumerate(tasks)}
    out: list[Any] = [None] * len(tasks)
    pbar = bar(len(tasks), desc, unit="task", enabled=progress)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for r in done:
                try:
                    out[pending.pop(r)] = ray.get(r)
                except RayTaskError as exc:  # the task's own exception, not Ray's wrapper around it
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                pbar.update(1)
    finally:
        pbar.close()
        for r in pending:
            ray.cancel(r, force=True)
    times["tasks"] = time.perf_counter() - t0
    return out


def short_temp_root() -> Path:
    """A fresh folder for Ray's session files under the system temp, or under ``/tmp`` if that path is long."""
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_ROOT - 14 and os.path.isdir("/tmp"):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="gwray", dir=base))


_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayUnavailableError` unless a Ray endpoint answers at ``address`` within ``timeout`` s.

    ``address`` is ``host:port`` or ``ray://host:port``; ``auto`` and ``local`` are left to Ray. Ray's
    GCS and Ray Client servers speak gRPC: the check opens a TCP connection, sends the HTTP/2 greeting and
    expects the server's SETTINGS frame back. Without it, ``ray.init`` on a port that accepts connections
    but is not Ray retries for minutes (measured: over 200 s, printing a warning every few seconds).
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RayUnavailableError(f"--ray-address {address!r}: expected HOST:PORT or ray://HOST:PORT "
                                  "(the head node's GCS address, e.g. 10.0.0.5:6379)")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as exc:
        raise RayUnavailableError(f"no Ray cluster answers at --ray-address {address} ({exc.strerror or exc}); "
                                  f"is the head node running (ray start --head) and the port open?") from None
    reply = b""
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return  # a TLS endpoint does not answer the plain HTTP/2 greeting below
        try:
            conn.sendall(_HTTP2_PREFACE + _HTTP2_EMPTY_SETTINGS)
            while len(reply) < 9:
                chunk = conn.recv(9 - len(reply))
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass  # silence or a reset: not Ray, said below
    if len(reply) < 9 or reply[3] != 4:  # a gRPC server's first frame is SETTINGS (type 4)
        raise RayUnavailableError(f"something answers at --ray-address {address}, but not Ray (no gRPC/HTTP/2 "
                                  "greeting); give the head node's GCS address (port 6379 unless changed) or "
                                  "ray://HOST:10001 for Ray Client")


class _DropTokenNotice(logging.Filter):
    """Drops Ray's start-up notice that a new local cluster uses token authentication (its default)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _quiet_ray_environment() -> None:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    notices = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropTokenNotice) for f in notices.filters):
        notices.addFilter(_DropTokenNotice())


def _start_reaper(markers: list[str]) -> subprocess.Popen | None:
    if not os.path.isdir("/proc"):
        return None
    script = Path(__file__).with_name("ray_reaper.py")
    return subprocess.Popen([sys.executable, "-I", str(script), str(os.getpid()), *markers], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _stop_reaper(reaper: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if reaper is None:
        return
    try:
        if reaper.stdin is not None:
            reaper.stdin.close()
        reaper.wait(timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        reaper.kill()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, as it was afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def ray_session(workers: int, ray_address: str | None = None) -> Iterator[Any]:
    """The ``ray`` module, initialised for the block: a local instance with ``workers`` CPUs, or a connection
    to ``ray_address``. An instance already initialised in this process is used as it is and left running."""
    _quiet_ray_environment()
    import ray

    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    temp: Path | None = None
    reaper: subprocess.Popen | None = None
    t0 = time.perf_counter()
    try:
        if ray_address:
            check_reachable(ray_address)
            where = f"--ray-address {ray_address}"
            try:
                ray.init(address=ray_address, runtime_env={"env_vars": dict(THREAD_ENV)}, **quiet)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError, ...
                causes = f"{exc!r} {exc.__cause__!r}"
                hint = ("; the cluster uses token authentication: set RAY_AUTH_MODE=token and give this process "
                        "the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)") if "AuthToken" in causes else ""
                raise RayUnavailableError(f"could not connect to the Ray cluster at {where}: "
                                          f"{type(exc).__name__}: {exc}{hint}") from None
        else:
            temp = short_temp_root()
            reaper = _start_reaper([str(temp), str(Path(ray.__file__).parent)])
            try:
                with _environment(THREAD_ENV):  # the raylet, and so every worker, inherits it
                    ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=str(temp), **quiet)
            except Exception as exc:  # noqa: BLE001 - whatever Ray raises, said as one clear error
                raise RayUnavailableError(f"could not start a local Ray instance ({workers} CPUs, temp {temp}): "
                                          f"{type(exc).__name__}: {exc}; run with --workers 1 to stay serial "
                                          "in this process") from None
        log.info("ray ready in %.1fs (%s)", time.perf_counter() - t0, ray_address or f"local, {workers} CPUs")
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop_reaper(reaper)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--workers takes a whole number >= 1 (1: serial, no Ray), got {text!r}")
    return n


def add_fanout_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--ray-address`` on a research command (defaults in their help)."""
    p.add_argument("--workers", type=_positive_int, metavar="N",
                   help=f"parallel tasks on a local Ray instance (default: every core, {default_workers()} here); "
                        "1 runs serially in this process without Ray; the numbers are the same either way")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="run the tasks on an existing Ray cluster at HOST:PORT or ray://HOST:PORT instead "
                        "(default: none, a local instance)")
