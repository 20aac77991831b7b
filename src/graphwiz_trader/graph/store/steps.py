"""The plumbing shared by every operation: a :class:`Step` is one Cypher statement run as one transaction.

Each store operation is a generator that yields steps (and at most one :class:`Progress`) and receives
each step's :class:`StepResult`; the sync and async stores only differ in how they execute a step. So an
operation is defined once and runs unchanged under both drivers.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from graphwiz_trader.graph.store_errors import GraphAuthError, GraphStoreError, GraphUnavailableError


@dataclass
class Step:
    """One Cypher statement executed as one transaction (``write``) or one read."""

    query: str
    params: dict[str, Any] = field(default_factory=dict)
    write: bool = True
    label: str = ""
    rows: int = 0           # rows this step carries, for progress bars and stats
    autocommit: bool = False  # schema statements run outside managed transactions
    # The statement MERGEs uniquely constrained nodes. When a concurrent transaction creates the same node
    # first, ArcadeDB fails this one with ConstraintValidationFailed (its MERGE is not atomic across
    # transactions); running it again then matches that node, so the runners retry it (see retry_merge).
    merge: bool = False


@dataclass
class StepResult:
    records: list[Any]
    counters: Any


@dataclass
class Progress:
    """Yielded once by an operation that wants a progress bar over ``total`` rows."""

    total: int
    desc: str


@dataclass(frozen=True)
class WriteStats:
    """What a write did. ``transactions`` counts committed write transactions (one per batch); ``replaced``
    the items (snapshots or regime records) of the build's previous generation; ``deleted_generations`` the
    superseded or abandoned generations deleted after the switch."""

    snapshots: int = 0
    replaced: int = 0
    edges: int = 0
    leads: int = 0
    communities: int = 0
    memberships: int = 0
    regime_records: int = 0
    transitions: int = 0
    transactions: int = 0
    seconds: float = 0.0
    batch_size: int = 0
    build: str = ""
    generation: str = ""
    deleted_generations: int = 0


Op = Generator[Step | Progress, StepResult, Any]


MERGE_ATTEMPTS = 6
_CONSTRAINT_CONFLICT = "Neo.ClientError.Schema.ConstraintValidationFailed"


def retry_merge(step: Step, exc: BaseException, attempt: int) -> float | None:
    """Seconds to wait before running ``step`` again after ``exc`` on attempt ``attempt`` (1-based), or None.

    Only a MERGE step (``step.merge``) that lost a race for a unique key is retried, at most
    :data:`MERGE_ATTEMPTS` times in all, after 20 ms, 40 ms, 80 ms, ... (times 1-2, random).
    """
    if not step.merge or attempt >= MERGE_ATTEMPTS or getattr(exc, "code", None) != _CONSTRAINT_CONFLICT:
        return None
    return 0.01 * 2 ** attempt * (1.0 + random.random())


def _chunks(n: int, size: int) -> Iterable[tuple[int, int]]:
    for i in range(0, n, size):
        yield i, min(n, i + size)


def _counter(counters: Any, name: str) -> int:
    return int(getattr(counters, name, 0) or 0)


def _translate(exc: BaseException, uri: str, user: str, what: str) -> BaseException:
    from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable, SessionExpired

    if isinstance(exc, AuthError):
        return GraphAuthError(uri, user, exc.message or str(exc))
    if isinstance(exc, (ServiceUnavailable, SessionExpired)):
        return GraphUnavailableError(uri, str(exc).splitlines()[0])
    if isinstance(exc, Neo4jError):
        if exc.code and exc.code.endswith("DatabaseNotFound"):
            return GraphStoreError(f"{what}: database not found on {uri}: {exc.message} (set NEO4J_DATABASE "
                                   "or graph.database to an existing database)")
        return GraphStoreError(f"{what} failed on {uri}: [{exc.code}] {exc.message}")
    if isinstance(exc, DriverError):
        return GraphStoreError(f"{what} failed on {uri}: {type(exc).__name__}: {exc}")
    return exc

