"""One native thread for the numeric libraries inside a block, without rescanning them every time.

``threadpoolctl.threadpool_limits`` finds the loaded BLAS/OpenMP libraries on every call (about 4 ms: it walks
every shared object of the process). The trading loop enters such blocks several times per cycle, so
:func:`single_threaded` keeps one ``ThreadpoolController`` and builds a new one only when Python has imported
modules since (a new extension module may have brought a new native library).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_cached: tuple[int, Any] | None = None


def _controller() -> Any:
    global _cached
    from threadpoolctl import ThreadpoolController

    with _lock:
        n = len(sys.modules)
        if _cached is None or _cached[0] != n:
            _cached = (n, ThreadpoolController())
        return _cached[1]


@contextmanager
def single_threaded(user_api: str | None = None) -> Iterator[None]:
    """Limit the native thread pools (``user_api`` ``"blas"``, ``"openmp"`` or None for both) to one thread.

    Same effect as ``threadpool_limits(limits=1, user_api=user_api)``; the previous limits come back on exit.
    """
    with _controller().limit(limits=1, user_api=user_api):
        yield
