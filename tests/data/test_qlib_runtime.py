"""Qlib's recorder writes only into the mlflow store we name, never a stray tmp/ tree in the working folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_recording_an_experiment_leaves_no_lock_tree_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    work = tmp_path / "work"
    work.mkdir()
    store = tmp_path / "store" / "mlruns"
    code = textwrap.dedent(f"""
        from graphwiz_trader.data.synthetic import generate_synthetic_market
        from graphwiz_trader.data.qlib_bins import write_qlib_bins
        from graphwiz_trader.data.qlib_runtime import init_qlib, ensure_experiment
        m = generate_synthetic_market(n_assets=3, n_clusters=1, n_bars=50)
        write_qlib_bins(m.bars, {str(tmp_path / 'bins')!r}, "60min")
        init_qlib({str(tmp_path / 'bins')!r}, mlflow_dir={str(store)!r}, force=True)
        from qlib.workflow import R
        ensure_experiment("check")
        with R.start(experiment_name="check", recorder_name="r"):
            R.log_params(a=1)
        with R.start(recorder_name="default"):
            R.log_params(b=2)
    """)
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True, capture_output=True, text=True,
                   env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"})
    assert list(work.iterdir()) == [], f"left in the working folder: {[p.name for p in work.iterdir()]}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    assert {e.name for e in client.search_experiments()} >= {"check", "graphwiz"}


def test_flushing_a_recorder_waits_for_every_metric_its_background_logger_had_queued(tmp_path):
    import time
    from types import SimpleNamespace

    from qlib.utils.paral import AsyncCaller

    from graphwiz_trader.data.qlib_runtime import flush_recorder_logs

    caller = AsyncCaller()   # what Qlib's MLflowRecorder logs through (its `async_log`)
    try:
        metric = tmp_path / "l2.valid"

        def slow_write() -> None:
            time.sleep(0.3)
            metric.write_text("1 0.25 0\n")

        caller(slow_write)
        assert not metric.exists()          # a reader now would see no metric (or a half-written one)
        flush_recorder_logs(SimpleNamespace(async_log=caller))
        assert metric.read_text() == "1 0.25 0\n"
        flush_recorder_logs(SimpleNamespace(async_log=None))   # no background logger: nothing to wait for
    finally:
        caller.wait()
