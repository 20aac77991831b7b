"""Logging for the ``graphwiz`` app: one-line INFO steps for graphwiz, WARNING for third-party libraries."""

from __future__ import annotations

import logging

THIRD_PARTY = ("ccxt", "urllib3", "neo4j", "qlib", "mlflow", "gymnasium", "matplotlib", "asyncio", "filelock",
               "numexpr", "httpx", "httpcore", "lightgbm", "optuna", "stable_baselines3", "hmmlearn", "alembic",
               "git", "PIL", "fsspec", "numba", "h5py", "torch", "cvxpy", "pypfopt")


def configure_logging(verbose: bool = False) -> None:
    """Root handler with a one-line format; graphwiz at INFO (DEBUG when ``verbose``); others at WARNING."""
    root = logging.getLogger()
    if not any(getattr(h, "_graphwiz", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler._graphwiz = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("graphwiz_trader").setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
