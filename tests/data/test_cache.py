"""The feature caches are bounded: old entries go first, then the least recently used, and a dry run removes nothing."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.data.cache import CacheLimits, clean_cache, mark_used, plan_eviction, scan_cache
from graphwiz_trader.data.qlib_bins import prepare_qlib_dir

NOW = 1_750_000_000.0  # a fixed "now" (epoch seconds)
DAY = 86_400.0
MB = 2**20


def bins_entry(root: Path, name: str, size_mb: float, days_ago: float) -> Path:
    d = root / name
    (d / "features" / "btcusdt").mkdir(parents=True)
    (d / "features" / "btcusdt" / "close.60min.bin").write_bytes(b"\0" * int(size_mb * MB))
    (d / ".last_used").touch()
    t = NOW - days_ago * DAY
    for p in (d / ".last_used", d):
        os.utime(p, (t, t))
    return d


def frame_entry(root: Path, key: str, size_mb: float, days_ago: float) -> Path:
    f = root / "feature_cache" / f"alpha158_{key}.parquet"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"\0" * int(size_mb * MB))
    os.utime(f, (NOW - days_ago * DAY,) * 2)
    return f


@pytest.fixture
def cache(tmp_path):
    """Five entries, 1 MB each except the 2 MB one; used 40, 10, 5, 3 and 1 days ago; plus non-cache files."""
    paths = {
        "a": bins_entry(tmp_path, "60min_" + "a" * 16, 1, 40),
        "b": bins_entry(tmp_path, "60min_" + "b" * 16, 2, 10),
        "f": frame_entry(tmp_path, "f0f0", 1, 5),
        "c": bins_entry(tmp_path, "day_" + "c" * 16, 1, 3),
        "d": bins_entry(tmp_path, "60min_" + "d" * 16, 1, 1),
    }
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "big.db").write_bytes(b"\0" * MB)
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "60min.txt").write_text("2024-01-01 00:00:00\n")
    return tmp_path, paths


def test_only_cache_entries_are_counted_least_recently_used_first(cache):
    root, paths = cache
    entries = scan_cache(root)
    assert [e.path for e in entries] == [paths[k] for k in "abfcd"]
    assert [e.kind for e in entries] == ["bins", "bins", "frame", "bins", "bins"]
    assert sum(e.size_bytes for e in entries) == 6 * MB


def test_old_entries_go_first_then_the_least_recently_used_until_the_size_fits(cache):
    root, paths = cache
    plan = plan_eviction(scan_cache(root), max_size_mb=2.5, max_age_days=30, now=NOW)
    # a is older than 30 days; then 5 MB remain: b (2 MB) and f (1 MB) are the least recently used
    assert [(e.entry.path, e.reason) for e in plan] == [(paths["a"], "age"), (paths["b"], "size"),
                                                        (paths["f"], "size")]


def test_protected_and_recently_used_entries_are_kept_even_above_the_bound(cache):
    root, paths = cache
    plan = plan_eviction(scan_cache(root), max_size_mb=0.5, now=NOW, protect=[paths["b"]], grace_minutes=2 * 24 * 60)
    assert [e.entry.path for e in plan] == [paths["a"], paths["f"], paths["c"]]  # not b (protected), not d (1 day)


def test_a_dry_run_lists_what_a_real_clean_then_removes(cache):
    root, paths = cache
    dry = clean_cache(root, max_size_mb=3, max_age_days=None, dry_run=True, now=NOW)
    assert [e.entry.path for e in dry.evicted] == [paths["a"], paths["b"]] and dry.freed_bytes == 3 * MB
    assert all(p.exists() for p in paths.values())

    real = clean_cache(root, max_size_mb=3, max_age_days=None, now=NOW)
    assert [e.entry.path for e in real.evicted] == [e.entry.path for e in dry.evicted]
    assert not paths["a"].exists() and not paths["b"].exists()
    assert all(paths[k].exists() for k in "fcd")
    assert (root / "mlruns" / "big.db").exists() and (root / "calendars" / "60min.txt").exists()
    assert not list(root.glob(".evicting-*"))


def test_marking_an_entry_used_moves_it_to_the_back_of_the_queue(cache):
    root, paths = cache
    mark_used(paths["a"])
    plan = plan_eviction(scan_cache(root), max_size_mb=5, now=time.time() + 3600)
    assert [e.entry.path for e in plan] == [paths["b"]]


def hourly_bars(start: str, n: int = 48) -> dict[str, pd.DataFrame]:
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="datetime")
    c = 100 + np.arange(n, dtype=float)
    return {"BTC/USDT": pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0}, index=idx)}


def test_preparing_bins_for_a_new_data_slice_evicts_the_least_recently_used_slice(tmp_path):
    limits = CacheLimits(max_size_mb=1e-6, max_age_days=None, grace_minutes=0)
    first = prepare_qlib_dir(hourly_bars("2024-01-01"), tmp_path, "60min", limits)
    second = prepare_qlib_dir(hourly_bars("2024-02-01"), tmp_path, "60min", limits)
    assert second.exists() and not first.exists()  # the slice in use is always kept
    assert [e.path for e in scan_cache(tmp_path)] == [second]


def test_with_the_default_bounds_a_recent_slice_is_reused_not_evicted(tmp_path):
    first = prepare_qlib_dir(hourly_bars("2024-01-01"), tmp_path, "60min")
    prepare_qlib_dir(hourly_bars("2024-02-01"), tmp_path, "60min")
    assert prepare_qlib_dir(hourly_bars("2024-01-01"), tmp_path, "60min") == first and first.exists()


def run_cache_command(argv: list[str]) -> int:
    from graphwiz_trader.data.commands import register

    parser = argparse.ArgumentParser(prog="graphwiz")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cache_clean_command_dry_run_then_clean(cache, capsys):
    root, paths = cache
    for key in "abfcd":  # the command uses the real clock: shift the fixture's times to "now"
        t = time.time() - (NOW - paths[key].stat().st_mtime)
        os.utime(paths[key], (t, t))
        if paths[key].is_dir():
            os.utime(paths[key] / ".last_used", (t, t))
    assert run_cache_command(["cache", "clean", "--dir", str(root), "--older-than", "7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {paths['a']} (1.0 MB" in out and f"would remove {paths['b']} (2.0 MB" in out
    assert "unused for more than 7 days" in out and "would remove 2 (3.0 MB)" in out
    assert paths["a"].exists() and paths["b"].exists()

    assert run_cache_command(["cache", "clean", "--dir", str(root), "--older-than", "7"]) == 0
    assert "removed 2 (3.0 MB), 3.0 MB left" in capsys.readouterr().out
    assert not paths["a"].exists() and not paths["b"].exists() and paths["f"].exists()


def test_cache_clean_rejects_a_negative_age(capsys):
    with pytest.raises(SystemExit):
        run_cache_command(["cache", "clean", "--older-than", "-1"])
    assert "argument --older-than: '-1' must be a finite number >= 0" in capsys.readouterr().err


def test_qlib_disk_cache_items_are_evicted_with_their_meta_and_index_files(tmp_path):
    folder = tmp_path / "features_cache"
    folder.mkdir()
    for stem, days_ago in (("old1", 20.0), ("new2", 1.0)):
        for name in (stem, stem + ".meta", stem + ".index"):
            (folder / name).write_bytes(b"\0" * 1000)
            os.utime(folder / name, (NOW - days_ago * DAY,) * 2)
    entries = scan_cache(tmp_path)
    assert [(e.path.name, e.kind, e.size_bytes) for e in entries] == [("old1", "qlib", 3000), ("new2", "qlib", 3000)]
    report = clean_cache(tmp_path, max_size_mb=None, max_age_days=7, now=NOW)
    assert [e.entry.path.name for e in report.evicted] == ["old1"]
    assert sorted(p.name for p in folder.iterdir()) == ["new2", "new2.index", "new2.meta"]
