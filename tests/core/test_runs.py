"""Run folders: one per invocation, atomic outputs with the usual file mode, summary names every output."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd

from graphwiz_trader.core.runs import RunFolder, atomic_write_bytes


def test_two_run_folders_opened_in_the_same_second_are_distinct(tmp_path):
    a, b = RunFolder("x", root=tmp_path), RunFolder("x", root=tmp_path)
    assert a.path != b.path and a.path.parent == b.path.parent == tmp_path / "x"


def test_atomic_writes_leave_no_temp_and_use_the_umask_mode(tmp_path):
    p = tmp_path / "out" / "f.json"
    atomic_write_bytes(p, b"{}")
    atomic_write_bytes(p, b"[1]")
    assert p.read_bytes() == b"[1]"
    assert [q.name for q in p.parent.iterdir()] == ["f.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_the_summary_lists_every_frame_written_and_the_json_copy_is_identical(tmp_path):
    run = RunFolder("cmd", root=tmp_path)
    run.write_frame("weights", pd.DataFrame({"a": [0.5]}))
    run.write_frame("equity", pd.Series([1.0, 1.1], name="equity"))
    run.write_summary({"sharpe": 1.5}, tmp_path / "copy.json")
    summary = json.loads((run.path / "summary.json").read_text())
    assert set(summary["outputs"]) == {"weights", "equity"} and summary["sharpe"] == 1.5
    assert (tmp_path / "copy.json").read_text() == (run.path / "summary.json").read_text()
    assert pd.read_parquet(summary["outputs"]["equity"])["equity"].tolist() == [1.0, 1.1]
