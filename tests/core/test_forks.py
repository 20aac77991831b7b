"""Forked children (Qlib's joblib workers) do not inherit the signal set-up of the process that forked them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

LOOP_WITH_FORKED_POOLS = textwrap.dedent("""
    import asyncio, multiprocessing, signal, sys
    if sys.argv[1] == "hook":
        from graphwiz_trader.core.forks import reset_signals_in_forked_children
        reset_signals_in_forked_children()

    def child_dispositions(_):
        return (signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
                signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.set_wakeup_fd(-1) == -1)

    def pools():
        seen = []
        for _ in range(5):
            pool = multiprocessing.get_context("fork").Pool(2)
            seen += pool.map(child_dispositions, range(4))
            if sys.argv[1] == "hook":
                pool.terminate()                # SIGTERM to each worker, as joblib's backend does
            else:
                pool.close()                    # without the hook a terminate() can hang: stop them gently
            pool.join()
        return seen

    async def main():
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        seen = await asyncio.to_thread(pools)
        await asyncio.sleep(0.3)                  # a signal byte written into our wakeup fd would land now
        print(all(all(s) for s in seen), stopped.is_set(), flush=True)

    asyncio.run(main())
""")


def run_probe(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in its own session; on a timeout its whole group is killed (a hung pool's workers too)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the probe did not finish within {timeout:.0f} s (a forked worker hung)")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return run_probe(LOOP_WITH_FORKED_POOLS, mode)


def test_workers_forked_under_an_asyncio_signal_handler_die_on_sigterm_and_leave_the_parents_loop_alone():
    done = run("hook")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False"]  # children: default handlers; parent: not stopped


def test_without_the_hook_the_same_workers_inherit_the_parents_handlers():
    # the control: the probe can tell (asyncio's no-op handler and wakeup fd reach the children otherwise; such
    # a worker ignores the SIGTERM of Pool.terminate() and join() waits for ever, so the control closes its pools)
    done = run("none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "False"


SIGTERM_BEFORE_THE_RESET = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, lambda signum, frame: None)   # the parent's handler (asyncio installs one)
    # the first thing the child does: a SIGTERM arrives (Pool.terminate() right after the pool started)
    os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM))
    from graphwiz_trader.core.forks import reset_signals_in_forked_children
    reset_signals_in_forked_children()
    pid = os.fork()
    if pid == 0:
        time.sleep(3)
        os._exit(0)                       # survived the SIGTERM
    _, status = os.waitpid(pid, 0)
    print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, flush=True)
""")


def test_a_sigterm_reaching_the_child_before_its_reset_still_kills_it():
    # it stays pending (blocked around fork) until the default action is back; handled by the parent's handler
    # instead, it was lost and such a worker lived on, blocked on its pool's queue lock (a CI hang)
    done = run_probe(SIGTERM_BEFORE_THE_RESET)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
