"""single_threaded limits the native pools to one thread inside the block and restores them after."""

from __future__ import annotations

import sys
import types

import numpy as np  # noqa: F401  (loads the BLAS whose pool is limited)
from threadpoolctl import threadpool_info

from graphwiz_trader.core import threads
from graphwiz_trader.core.threads import single_threaded


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_inside_the_block_blas_runs_one_thread_and_the_previous_count_comes_back():
    before = _blas_threads()
    assert before, "numpy's BLAS should be found"
    with single_threaded("blas"):
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_the_library_scan_is_reused_until_python_imports_another_module(monkeypatch):
    first = threads._controller()
    assert threads._controller() is first
    monkeypatch.setitem(sys.modules, "graphwiz_probe_module", types.ModuleType("graphwiz_probe_module"))
    assert threads._controller() is not first
