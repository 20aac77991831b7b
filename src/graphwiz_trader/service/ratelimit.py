"""Per-key token-bucket rate limit of the service's API.

Each key (named by its stored key's ``name``, never the key itself) has a bucket of ``burst`` tokens, refilled
continuously at ``rate_per_minute / 60`` tokens per second. A request takes one token; with none left it is
refused with HTTP 429 and ``Retry-After`` = whole seconds until a token is back (at least 1).

One :class:`threading.Lock` guards the buckets: a take is a few arithmetic operations, so the lock is never
held across an ``await`` and the limiter is safe from both the event loop and worker threads.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from graphwiz_trader.errors import SettingError


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    """Outcome of one take: ``allowed``, tokens ``remaining`` (floored) and ``retry_after_s`` (0 when allowed)."""

    allowed: bool
    remaining: int
    retry_after_s: int


class TokenBucketLimiter:
    """Token buckets per client id.

    Parameters
    ----------
    rate_per_minute : float
        Sustained requests per minute per client (> 0).
    burst : int
        Bucket size: requests a rested client may send at once (>= 1).
    clock : callable, optional
        Monotonic seconds (``time.monotonic`` by default; tests pass a fake clock).
    max_clients : int
        Buckets kept; beyond that the longest-idle full buckets are dropped (a full bucket carries no state).
    """

    def __init__(self, rate_per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        if not rate_per_minute > 0:
            raise SettingError(f"rate_per_minute must be > 0, got {rate_per_minute}")
        if burst < 1:
            raise SettingError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = float(rate_per_minute) / 60.0
        self.burst = int(burst)
        self._clock = clock
        self._max_clients = int(max_clients)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from ``client``'s bucket if it has them."""
        now = self._clock()
        with self._lock:
            b = self._buckets.get(client)
            if b is None:
                if len(self._buckets) >= self._max_clients:
                    self._evict(now)
                b = self._buckets[client] = _Bucket(float(self.burst), now)
            else:
                b.tokens = min(float(self.burst), b.tokens + (now - b.updated) * self.rate_per_s)
                b.updated = now
            if b.tokens >= cost:
                b.tokens -= cost
                return Decision(True, int(b.tokens), 0)
            wait = (cost - b.tokens) / self.rate_per_s
            return Decision(False, 0, max(1, math.ceil(wait)))

    def _evict(self, now: float) -> None:
        full = [c for c, b in self._buckets.items()
                if b.tokens + (now - b.updated) * self.rate_per_s >= self.burst]
        for c in full:
            del self._buckets[c]
        if len(self._buckets) >= self._max_clients:  # every bucket is in use: drop the longest idle
            oldest = min(self._buckets, key=lambda c: self._buckets[c].updated)
            del self._buckets[oldest]
