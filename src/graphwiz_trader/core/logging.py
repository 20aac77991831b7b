"""Logging for the ``graphwiz`` app: one-line INFO steps for graphwiz, WARNING for third-party libraries,
and no secret in any line.

:func:`configure_logging` sets the ``graphwiz_trader`` loggers to INFO (DEBUG with ``-v``) and the
third-party loggers in :data:`THIRD_PARTY` to WARNING, with ``-v`` or without: ccxt logs every request's
headers (the exchange API key among them) at DEBUG. It also installs a :class:`SecretMaskFilter` on the
root handlers, which replaces every known secret (:func:`graphwiz_trader.core.secrets.known_secrets`) in
a record's message, arguments, exception text and stack with ``***`` and strips ``user:password@`` from
URIs, as a second line of defence.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from graphwiz_trader.core.secrets import known_secrets, mask_secrets

PROJECT_LOGGER = "graphwiz_trader"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
THIRD_PARTY = ("ccxt", "urllib3", "neo4j", "qlib", "mlflow", "gymnasium", "matplotlib", "asyncio", "filelock",
               "numexpr", "httpx", "httpcore", "lightgbm", "optuna", "stable_baselines3", "hmmlearn", "alembic",
               "git", "PIL", "fsspec", "numba", "h5py", "torch", "cvxpy", "pypfopt", "requests", "aiohttp",
               "websockets", "sqlalchemy", "shap", "sklearn", "docker", "werkzeug", "py4j")


class SecretMaskFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it (never drops a record).

    The message is merged with its arguments first (``record.args`` becomes empty), so a secret passed
    as an argument (``log.debug("%s", headers)``) is masked too. The exception traceback is formatted
    once, masked, and kept as ``record.exc_text`` (``exc_info`` is cleared so that no formatter renders
    the unmasked traceback again).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = known_secrets()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw parts, masked
            message = f"{record.msg} {record.args!r}"
        record.msg = mask_secrets(message, secrets)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_info:
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info, secrets)
        return True


def install_secret_filter(handler: logging.Handler) -> None:
    """Add a :class:`SecretMaskFilter` to ``handler`` (once). Use it for handlers added after start-up."""
    if not any(isinstance(f, SecretMaskFilter) for f in handler.filters):
        handler.addFilter(SecretMaskFilter())


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (a replaced or closed stream is never kept)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


def configure_logging(verbose: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Set up logging for a ``graphwiz`` run. Idempotent; returns the app's root handler.

    Parameters
    ----------
    verbose
        graphwiz loggers at DEBUG instead of INFO. Third-party loggers stay at WARNING either way.
    stream
        where the app's handler writes (default ``sys.stderr``).
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_graphwiz", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
        handler._graphwiz = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        root.addHandler(handler)
    elif stream is not None and not isinstance(handler, _CurrentStderrHandler):
        handler.setStream(stream)
    root.setLevel(logging.WARNING)
    logging.getLogger(PROJECT_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # children that a library set lower itself (qlib sets its own) would override their parent's WARNING
    for name, obj in list(logging.root.manager.loggerDict.items()):
        if isinstance(obj, logging.Logger) and name.split(".")[0] in THIRD_PARTY:
            if logging.NOTSET < obj.level < logging.WARNING:
                obj.setLevel(logging.WARNING)
            for h in obj.handlers:
                install_secret_filter(h)
    for h in root.handlers:
        install_secret_filter(h)
    return handler
