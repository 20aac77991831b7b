"""Where the store connects (settings, ``NEO4J_*`` environment, or the embedded server) and the state the
sync and async stores share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphwiz_trader.config.settings import GraphSettings
from graphwiz_trader.graph import cypher as C
from graphwiz_trader.graph.store.ops_regimes import _RegimeOps
from graphwiz_trader.graph.store.ops_snapshots import _SnapshotOps
from graphwiz_trader.graph.store.ops_trades import _TradeOps
from graphwiz_trader.graph.store.steps import Step, _translate
from graphwiz_trader.graph.store_errors import GraphStoreError


def settings_from_env() -> GraphSettings:
    """Graph settings from ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``.

    An unset or empty ``NEO4J_URI`` selects the embedded server.
    """
    return GraphSettings(
        uri=os.environ.get("NEO4J_URI") or None,
        user=os.environ.get("NEO4J_USER") or "neo4j",
        password=os.environ.get("NEO4J_PASSWORD") or None,
        database=os.environ.get("NEO4J_DATABASE") or None,
    )


@dataclass(frozen=True)
class _Target:
    uri: str
    user: str
    password: str | None
    database: str | None
    embedded: Any  # EmbeddedGraphServer | None


def _resolve_target(settings: GraphSettings | None, data_dir: str | Path | None) -> _Target:
    s = settings if settings is not None else settings_from_env()
    if s.uri is None:
        from graphwiz_trader.graph.server import shared_embedded_server

        server = shared_embedded_server(data_dir or s.data_dir, heap=s.embedded_heap)
        return _Target(server.uri, server.user, server.password, s.database or server.database, server)
    password = s.password.get_secret_value() if s.password is not None else None
    return _Target(s.uri, s.user, password, s.database, None)


_DRIVER_CONFIG = {"connection_timeout": 10.0, "max_transaction_retry_time": 15.0, "user_agent": "graphwiz_trader"}


def _batch_size(settings: GraphSettings | None, batch_size: int | None) -> int:
    return batch_size or (settings.batch_size if settings is not None else GraphSettings().batch_size)


class _StoreBase(_SnapshotOps, _RegimeOps, _TradeOps):
    """State and helpers shared by :class:`GraphStore` and :class:`AsyncGraphStore` (every operation is inherited)."""

    def __init__(self, driver: Any, target: _Target, batch_size: int, server_agent: str) -> None:
        if batch_size < 1:
            raise GraphStoreError(f"batch_size must be >= 1, got {batch_size}")
        self._driver = driver
        self.uri = target.uri
        self.user = target.user
        self.database = target.database
        self.embedded_server = target.embedded
        self.batch_size = int(batch_size)
        self.server_agent = server_agent
        self.server_kind = C.server_kind(server_agent)

    def _translate_failure(self, exc: Exception, step: Any) -> BaseException:
        """The driver error as the store's error (naming the URI, user and the failing step), or ``exc``."""
        what = step.label if isinstance(step, Step) else "graph operation"
        return _translate(exc, self.uri, self.user, what)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri}, database={self.database!r}, server={self.server_agent!r})"

    def _bs(self, batch_size: int | None) -> int:
        bs = self.batch_size if batch_size is None else int(batch_size)
        if bs < 1:
            raise GraphStoreError(f"batch_size must be >= 1, got {bs}")
        return bs
