"""One way to start Qlib: ``init_qlib`` makes the mlflow recorder work out of the box.

Qlib's recorder is mlflow. Recent mlflow refuses a plain file store unless
``MLFLOW_ALLOW_FILE_STORE=true``; we set it (or use a sqlite URI when asked) and point the tracking
folder at ``mlflow_dir`` (tests pass a temp dir). Qlib's *disk* expression cache needs a redis
server; when none answers we keep Qlib's in-process expression cache and rely on the project's
Parquet feature cache for cross-process reuse (see ``features.alpha158``). Every on-disk cache (bins
per data slice, Alpha158 frames, Qlib's disk cache) is bounded by size and age: see
:mod:`graphwiz_trader.data.cache` and ``graphwiz cache clean``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_STATE: dict[str, object] = {}


def _redis_reachable(host: str = "127.0.0.1", port: int = 6379, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def init_qlib(
    provider_uri: str | Path,
    region: str = "cn",
    mlflow_dir: str | Path | None = None,
    tracking: Literal["file", "sqlite"] = "file",
    expression_cache: bool = True,
    kernels: int | None = None,
    force: bool = False,
) -> None:
    """Initialise Qlib on ``provider_uri`` (idempotent for the same arguments).

    Parameters
    ----------
    provider_uri : folder with ``calendars/``, ``instruments/``, ``features/`` (Qlib binary layout).
    region : Qlib region (``cn``, ``us``); affects trade unit / limit defaults of Qlib's backtest only.
    mlflow_dir : folder for the mlflow tracking store (default ``runs/mlruns``).
    tracking : ``file`` (sets ``MLFLOW_ALLOW_FILE_STORE=true``) or ``sqlite`` (``mlflow.db`` in the folder).
    expression_cache : use Qlib's DiskExpressionCache when a redis server answers on 127.0.0.1:6379.
    kernels : worker processes for Qlib's expression engine (default: CPU count).
    """
    import qlib
    from qlib.constant import REG_CN, REG_US

    provider = Path(provider_uri).resolve()
    if not (provider / "calendars").is_dir():
        from graphwiz_trader.errors import DataError

        raise DataError(f"{provider} is not a Qlib data folder (no calendars/); write one with `graphwiz data to-qlib`")
    mdir = Path(mlflow_dir).resolve() if mlflow_dir else default_mlflow_dir()
    mdir.mkdir(parents=True, exist_ok=True)
    if tracking == "sqlite":
        uri = f"sqlite:///{mdir / 'mlflow.db'}"
    else:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        uri = mdir.as_uri()
    use_disk_cache = expression_cache and _redis_reachable()
    key = (str(provider), region, uri, use_disk_cache, kernels)
    if _STATE.get("key") == key and not force:
        return
    kwargs: dict[str, object] = dict(
        provider_uri=str(provider),
        region={"cn": REG_CN, "us": REG_US}.get(region, region),
        exp_manager={
            "class": "MLflowExpManager",
            "module_path": "qlib.workflow.expm",
            "kwargs": {"uri": uri, "default_exp_name": "graphwiz"},
        },
        expression_cache="DiskExpressionCache" if use_disk_cache else None,
        dataset_cache=None,
        logging_level=logging.WARNING,
    )
    if kernels:
        kwargs["kernels"] = kernels
    logging.getLogger("qlib").setLevel(logging.WARNING)
    qlib.init(**kwargs)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("qlib"):
            logging.getLogger(name).setLevel(logging.WARNING)
    _STATE["key"] = key
    _STATE["tracking_uri"] = uri
    _STATE["tracking_dir"] = str(mdir)
    ensure_experiment("graphwiz")
    log.info("qlib initialised on %s (region %s, mlflow %s, disk expression cache %s)",
             provider, region, uri, "on" if use_disk_cache else "off: no redis, in-process cache only")


def default_mlflow_dir() -> Path:
    """The one mlflow store every command records into: ``<runs root>/mlruns`` (``runs/mlruns``, or under
    ``$GRAPHWIZ_RUNS_DIR``). Browse it with ``mlflow ui --backend-store-uri runs/mlruns``."""
    from graphwiz_trader.core.runs import runs_root

    return (runs_root() / "mlruns").resolve()


def ensure_experiment(name: str) -> None:
    """Create the mlflow experiment ``name`` in the current store before Qlib looks for it.

    Qlib's ``MLflowExpManager._get_or_create_exp`` guards creation with a ``FileLock`` whose path drops the
    leading ``/`` of a ``file://`` URI (``tmp/.../filelock``), so it lands relative to the working folder
    (a stray ``tmp/`` tree in the checkout). When the experiment already exists Qlib takes no lock; so we
    create it here, under our own lock inside the store's folder. Idempotent; a no-op before :func:`init_qlib`.
    """
    uri, folder = _STATE.get("tracking_uri"), _STATE.get("tracking_dir")
    if uri is None or folder is None:
        return
    import fcntl

    from mlflow.tracking import MlflowClient

    lock_path = Path(str(folder)) / ".graphwiz-experiments.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=str(uri))
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name)


def invalidate() -> None:
    """Forget the current Qlib session so the next :func:`init_qlib` re-initialises (and clears Qlib's
    in-memory caches). Called after bins are rewritten."""
    _STATE.pop("key", None)


def flush_recorder_logs(recorder: object, timeout_s: float = 120.0) -> None:
    """Wait until Qlib's background logger has written everything queued so far for ``recorder``.

    Qlib's ``MLflowRecorder`` logs metrics and parameters from a thread (``async_log``). A record that reads the
    run meanwhile (``SignalRecord``/``SigAnaRecord``/``PortAnaRecord`` list the run's artifacts, and mlflow's file
    store then reads every metric file) can find a metric file created but not yet written, and mlflow fails
    with "Metric '...' is malformed. No data found". The logger runs its queue in order on one thread, so when
    a marker queued now has run, everything queued before it is on disk. A recorder without a background logger
    returns at once.
    """
    import threading

    from graphwiz_trader.errors import GraphwizError

    caller = getattr(recorder, "async_log", None)
    if caller is None:
        return
    done = threading.Event()
    caller(done.set)
    if not done.wait(timeout_s):
        raise GraphwizError(f"Qlib's mlflow logger did not write its queued metrics within {timeout_s:g} s")
