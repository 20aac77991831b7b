"""Shared benchmark helpers: wall time and peak memory of the whole process tree (Qlib uses worker processes)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_gb: float = 0.0
    extra: dict = field(default_factory=dict)


def _tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


@contextmanager
def measure(interval: float = 0.1):
    """Time a block and sample the RSS of this process plus its children every ``interval`` seconds."""
    m = Measurement()
    stop = threading.Event()
    peak = [_tree_rss()]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss())
            stop.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        stop.set()
        th.join()
        m.peak_rss_gb = max(peak[0], _tree_rss()) / 1e9


def print_table(rows: list[dict]) -> None:
    w = max(len(r["what"]) for r in rows)
    print(f"{'what':<{w}}  {'seconds':>9}  {'target':>9}  {'peak GB':>8}  ok")
    for r in rows:
        tgt = f"<= {r['target_s']:g}" if r.get("target_s") is not None else ""
        ok = "" if r.get("target_s") is None else ("yes" if r["seconds"] <= r["target_s"] else "NO")
        print(f"{r['what']:<{w}}  {r['seconds']:>9.2f}  {tgt:>9}  {r['peak_rss_gb']:>8.2f}  {ok}")
