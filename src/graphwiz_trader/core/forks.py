"""What a forked child must not inherit from its parent's signal set-up.

Qlib's expression engine runs on joblib's ``multiprocessing`` backend: it forks workers and stops them with
SIGTERM (``Pool.terminate``). A worker that inherited a handler meant for its parent does the parent's job
instead of dying:

- :mod:`graphwiz_trader.graph.server_process`'s handler raised ``SystemExit`` inside the pool's queue code,
  and the parent's ``join()`` waited for ever (a CI timeout);
- asyncio's ``loop.add_signal_handler`` (the service) leaves a no-op Python handler and the loop's wakeup fd:
  the worker ignores SIGTERM and writes the signal number into the *parent's* event loop, which then stops
  as if it had been sent SIGTERM itself.

:func:`reset_signals_in_forked_children` registers (once) ``os.register_at_fork`` hooks that give every
forked child the default SIGTERM action, Python's default SIGINT handler and no wakeup fd. The forking thread
blocks SIGTERM and SIGINT around ``fork()``, so a signal sent to the child before its reset stays pending and
then takes the default action (a ``Pool.terminate()`` right after the pool started hit that window). A disposition of
``SIG_IGN`` is kept: ignoring is the process owner's choice. ``subprocess`` children exec a new program, which
resets handlers anyway.
"""

from __future__ import annotations

import os
import signal
import threading

_registered = False
_guard = threading.Lock()


_SIGNALS = {signal.SIGTERM, signal.SIGINT} if hasattr(signal, "SIGTERM") else {signal.SIGINT}
_saved = threading.local()


def _block_before_fork() -> None:
    # a SIGTERM that reached the child between fork() and its reset would run the parent's handler (asyncio's
    # no-op: the signal is lost, and a terminate()d worker lives on, blocked on its pool's queue lock): the
    # forking thread blocks these signals, so the child starts with them pending, not handled
    _saved.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def _unblock_in_parent() -> None:
    mask = getattr(_saved, "mask", None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _saved.mask = None


def _reset_in_child() -> None:
    if hasattr(signal, "SIGTERM") and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.set_wakeup_fd(-1)
    _unblock_in_parent()            # the forking thread's mask, now the child's: pending signals act by default


def reset_signals_in_forked_children() -> None:
    """Register the at-fork hook of the module docstring (idempotent; a no-op where ``fork`` does not exist)."""
    global _registered
    if not hasattr(os, "register_at_fork"):
        return
    with _guard:
        if not _registered:
            if hasattr(signal, "pthread_sigmask"):
                os.register_at_fork(before=_block_before_fork, after_in_parent=_unblock_in_parent)
            os.register_at_fork(after_in_child=_reset_in_child)
            _registered = True


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a forked worker: receive SIGKILL when the parent thread that forked it dies (Linux; else nothing).

    Call it first thing in the child with the parent's PID taken before the fork. If the parent is already
    gone (it died before the call), the child exits at once.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)
