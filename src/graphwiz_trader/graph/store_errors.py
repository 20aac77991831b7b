"""Errors raised by the graph store and the embedded graph server. Each says what failed and where."""

from __future__ import annotations

from graphwiz_trader.core.secrets import redact_uri, redact_uris
from graphwiz_trader.errors import GraphwizError

HOW_TO_START = (
    "start Neo4j with `docker compose up -d neo4j` (then NEO4J_URI=bolt://localhost:7687, "
    "NEO4J_USER=neo4j, NEO4J_PASSWORD as in your .env), or unset NEO4J_URI to use the embedded "
    "ArcadeDB server"
)


class GraphStoreError(GraphwizError):
    """A graph-store operation failed (bad input, a query error, a write that did not land).

    Credentials inside any URI in the message (``bolt://user:password@host``) are stripped.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact_uris(str(message)), *args)


class GraphUnavailableError(GraphStoreError):
    """The graph server could not be reached at the configured URI."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = redact_uri(uri)
        super().__init__(f"cannot reach the graph server at {self.uri} ({reason}); {HOW_TO_START}")


class GraphAuthError(GraphStoreError):
    """The graph server refused the credentials."""

    def __init__(self, uri: str, user: str, reason: str) -> None:
        self.uri = redact_uri(uri)
        self.user = user
        super().__init__(
            f"authentication failed at {self.uri} for user {user!r} ({reason}); check NEO4J_USER and "
            "NEO4J_PASSWORD (graph.user / graph.password in config/trading_config.yaml)"
        )


class EmbeddedServerError(GraphStoreError):
    """The embedded ArcadeDB server could not be started, reached or stopped."""
