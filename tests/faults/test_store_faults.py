"""Fault injection on the Parquet store: concurrent writers, and a writer killed mid-write.

Each writer is a separate process (fork for the concurrent upserts, a fresh interpreter for the one that
is killed), as two ``graphwiz data import`` runs on one store would be.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.store import ParquetStore

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def hourly(first_hour: int, n: int) -> pd.DataFrame:
    """Bars whose values are a function of the hour alone, so any writer's copy of a bar is identical."""
    hours = np.arange(first_hour, first_hour + n)
    idx = pd.DatetimeIndex(T0 + pd.to_timedelta(hours, unit="h"), name="datetime")
    c = 100.0 + hours.astype(float)
    return pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0 + hours % 7}, index=idx)


def _writer(root: str, k: int, barrier: mp.synchronize.Barrier) -> None:
    store = ParquetStore(root)
    barrier.wait()
    # writer k covers hours [80k, 80k + 140) in overlapping batches of 20 bars, 10 bars apart
    for first in range(80 * k, 80 * k + 121, 10):
        for symbol in ("BTC/USDT", "ETH/USDT"):
            store.upsert(symbol, "1h", hourly(first, 20))


def test_three_concurrent_writers_leave_the_union_without_duplicates_or_temp_files(tmp_path):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k, barrier)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]

    store = ParquetStore(tmp_path)
    expected = hourly(0, 300)  # the union of [0, 140), [80, 220), [160, 300)
    for symbol in ("BTC/USDT", "ETH/USDT"):
        got = store.read(symbol, "1h")
        assert got.index.is_unique and got.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert sorted(p.name for p in (tmp_path / "1h").iterdir()) == [
        ".BTC_USDT.lock", ".ETH_USDT.lock", "BTC_USDT.parquet", "ETH_USDT.parquet"]


_STUCK_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np, pandas as pd
    from graphwiz_trader.data.store import ParquetStore

    store = ParquetStore(sys.argv[1])
    idx = pd.date_range("2024-01-01 10:00", periods=20, freq="1h", tz="UTC", name="datetime")
    new = pd.DataFrame({"open": 500.0, "high": 501.0, "low": 499.0, "close": 500.0, "volume": 9.0}, index=idx)

    def stuck(src, dst):  # the temp file is complete and fsynced; block before the rename
        print("TEMP", src, flush=True)
        time.sleep(600)

    os.replace = stuck
    store.upsert("BTC/USDT", "1h", new)
""")


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        proc.kill()
        raise AssertionError(f"writer printed nothing in {timeout_s}s; stderr: {proc.stderr.read()}")
    return proc.stdout.readline().strip()


def test_a_writer_killed_mid_write_keeps_the_previous_file_and_its_temp_is_cleaned_on_next_open(tmp_path):
    store = ParquetStore(tmp_path)
    before = hourly(0, 24)
    store.upsert("BTC/USDT", "1h", before)

    proc = subprocess.Popen([sys.executable, "-c", _STUCK_WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, 60)
        assert line.startswith("TEMP ")
        temp = Path(line.split(" ", 1)[1])
        assert temp.exists() and temp.parent == tmp_path / "1h"
        # while the writer lives, opening the store leaves its temp file alone
        assert ParquetStore(tmp_path).clean_stale_temps() == 0 and temp.exists()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()

    # read the file directly: opening a ParquetStore would already clean the temp
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "1h" / "BTC_USDT.parquet"), before, check_freq=False)
    assert temp.exists()  # the kill left it behind

    reopened = ParquetStore(tmp_path)
    assert not temp.exists()
    pd.testing.assert_frame_equal(reopened.read("BTC/USDT", "1h"), before, check_freq=False)
    assert reopened.upsert("BTC/USDT", "1h", hourly(20, 10)) == (6, 4)


def test_a_writer_that_fails_while_writing_removes_its_temp_and_keeps_the_previous_file(tmp_path, monkeypatch):
    store = ParquetStore(tmp_path)
    before = hourly(0, 24)
    store.upsert("BTC/USDT", "1h", before)

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store.upsert("BTC/USDT", "1h", hourly(20, 10))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "1h").iterdir()) == [".BTC_USDT.lock", "BTC_USDT.parquet"]
    pd.testing.assert_frame_equal(store.read("BTC/USDT", "1h"), before, check_freq=False)
