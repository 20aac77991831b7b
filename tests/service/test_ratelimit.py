"""The per-key token bucket: a burst passes, the next request is refused with the seconds until a token is back,
tokens refill at rate/60 per second, keys do not share buckets, and concurrent takes never over-grant."""

from __future__ import annotations

import threading

import pytest

from graphwiz_trader.errors import SettingError
from graphwiz_trader.service.ratelimit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_passes_then_429_with_retry_after_until_the_bucket_refills() -> None:
    clock = Clock()
    lim = TokenBucketLimiter(rate_per_minute=30, burst=3, clock=clock)   # one token per 2 s
    assert [lim.take("a").allowed for _ in range(3)] == [True, True, True]
    refused = lim.take("a")
    assert not refused.allowed and refused.retry_after_s == 2
    assert lim.take("b").allowed                                         # another key has its own bucket
    clock.t += 1.0
    d = lim.take("a")
    assert not d.allowed and d.retry_after_s == 1                        # half a token back: 1 s to go
    clock.t += 1.0
    assert lim.take("a").allowed and not lim.take("a").allowed
    clock.t += 3600
    assert [lim.take("a").allowed for _ in range(4)] == [True, True, True, False]   # capped at the burst


def test_concurrent_takes_from_threads_grant_exactly_the_burst() -> None:
    lim = TokenBucketLimiter(rate_per_minute=1, burst=50, clock=lambda: 5.0)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            ok = lim.take("k").allowed
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 160 and sum(granted) == 50


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SettingError, match="rate_per_minute"):
        TokenBucketLimiter(0, 5)
    with pytest.raises(SettingError, match="burst"):
        TokenBucketLimiter(10, 0)
