"""Watchdog that ends the local Ray processes of a driver once the driver is gone, however it ended.

Measured with ray 2.60 on Linux: when the driver that started a local cluster with ``ray.init()`` is
killed with SIGKILL, the GCS server, the raylet and the workers exit within a few seconds, but the
``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent`` processes stay alive, re-parented to init, for good.
:func:`graphwiz_trader.research.fanout.ray_session` therefore starts this script (by path, standard library
only, in its own session) before ``ray.init``, and keeps the write end of a pipe to its stdin open.

While the driver lives, every ``interval`` seconds the script records the driver's Ray processes: the
driver's children whose command line names a marker (the session's temp folder or the ``ray`` package
folder) or starts with ``ray::``, and all of their descendants, each with its kernel start time (so a
recycled pid is never hit). When stdin reaches end of file (the driver closed it after ``ray.shutdown()``,
or the kernel closed it because the driver died) every recorded process still alive gets SIGTERM, and
SIGKILL one second later if it is still there; then the session's temp folder is removed. Linux only (it
reads ``/proc``); elsewhere it exits at once.

Run: ``python ray_reaper.py DRIVER_PID TEMP_DIR [MARKER ...]`` with stdin a pipe from the driver; the temp
folder is a marker too.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import time


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time in clock ticks)`` of ``pid``, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the name (field 2) may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def ray_processes(driver: int, markers: list[str], exclude: int) -> dict[int, int]:
    """Pid -> start time of the Ray processes under ``driver`` (its marked children and their descendants)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is not None:
            children.setdefault(st[0], []).append(int(name))
            starts[int(name)] = st[1]
    roots = [p for p in children.get(driver, []) if p != exclude
             and (_cmdline(p).startswith("ray::") or any(m in _cmdline(p) for m in markers))]
    found: dict[int, int] = {}
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found or pid == exclude:
            continue
        found[pid] = starts[pid]
        stack.extend(children.get(pid, []))
    return found


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start


def reap(known: dict[int, int], grace: float = 1.0) -> list[int]:
    """SIGTERM every recorded process still alive, SIGKILL those left after ``grace`` seconds; the pids signalled."""
    hit = []
    for pid, start in known.items():
        if _alive(pid, start):
            try:
                os.kill(pid, signal.SIGTERM)
                hit.append(pid)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    while hit and time.monotonic() < deadline and any(_alive(p, known[p]) for p in hit):
        time.sleep(0.05)
    for pid in hit:
        if _alive(pid, known[pid]):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return hit


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not os.path.isdir("/proc"):
        return 0
    driver, temp, markers = int(argv[0]), argv[1], argv[1:]
    me = os.getpid()
    known: dict[int, int] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
        if _stat(driver) is None:
            break
        known.update(ray_processes(driver, markers, me))
    reap(known)
    shutil.rmtree(temp, ignore_errors=True)  # the session's files: nothing uses them once the processes are gone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
