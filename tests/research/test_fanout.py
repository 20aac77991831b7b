"""Research fan-out: the same seeds give the same walk-forward numbers serially and on two Ray workers; results come
back in submission order; tasks run with one native thread; a task's own error comes back as itself; an address
nobody answers on, or where something other than Ray answers, fails at once with an error naming it; tasks run on an
existing cluster given by its address; Ray's processes go when the driver that started them is killed."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graphwiz_trader.cli import main
from graphwiz_trader.core.symbols import to_qlib_instrument
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.errors import GraphwizError, InsufficientDataError
from graphwiz_trader.models.targets import LabelSpec, make_label
from graphwiz_trader.research.experiment import (
    WalkForwardSettings,
    predictions_frame,
    run_walkforward_many,
)
from graphwiz_trader.research.fanout import (
    RayUnavailableError,
    check_reachable,
    ray_session,
    run_tasks,
)
from graphwiz_trader.research.ray_reaper import ray_processes

TIMING = ["seconds", "cpu_seconds"]  # wall and CPU time differ run to run; every other column must not


@pytest.fixture(scope="module")
def synthetic_panel():
    """The synthetic market (5 assets, 1,000 hourly bars) with six plain features computed here from its closes."""
    bars = generate_synthetic_market(n_assets=5, n_clusters=2, n_bars=1000, seed=3).bars
    parts = []
    for sym, df in bars.items():
        r = np.log(df["close"]).diff()
        f = pd.DataFrame({"r1": r, "r4": r.rolling(4).sum(), "r12": r.rolling(12).sum(), "vol24": r.rolling(24).std(),
                          "range": (df["high"] - df["low"]) / df["close"], "lvol": np.log(df["volume"])})
        f.index = pd.MultiIndex.from_arrays([df.index.tz_convert(None), [to_qlib_instrument(sym)] * len(f)], names=["datetime", "instrument"])
        parts.append(f)
    feats = pd.concat(parts).sort_index().dropna()
    spec = LabelSpec("direction", 1, relative=True)
    return feats, make_label(bars, spec), make_label(bars, LabelSpec("regression", 1, relative=True)), spec


def _runs(spec):
    cfg = WalkForwardSettings(train_len=300, test_len=120, max_folds=3, label=spec, num_boost_round=25,
                              early_stopping_rounds=5, lgb_params={"min_data_in_leaf": 20})
    return {"returns only": (cfg, ["r1", "r4", "r12"]),
            "all, seed 0": (cfg, None),
            "all, seed 1, 2 Optuna trials": (WalkForwardSettings(**{**cfg.__dict__, "seed": 1, "hpo_trials": 2}), None)}




def _ran_in_own_process(request) -> bool:
    """Run this test again in a pytest process of its own and report whether that run passed.

    A Ray driver whose raylet goes away ends its whole process with ``_exit(1)`` (Ray's core worker does this), so
    a test that starts Ray inside the suite's process could end the suite without a summary. Returns False inside
    the child (run the body there), True in the parent once the child passed.
    """
    if os.environ.get("GW_TEST_CHILD") == request.node.nodeid:
        return False
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", request.node.nodeid],
                          env={**os.environ, "GW_TEST_CHILD": request.node.nodeid}, capture_output=True, text=True,
                          timeout=540, stdin=subprocess.DEVNULL, cwd=request.config.rootpath)
    assert done.returncode == 0, f"the test failed in its own process:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert " passed" in done.stdout.splitlines()[-1]
    return True

@pytest.mark.slow
def test_two_ray_workers_give_the_same_predictions_and_fold_figures_as_the_serial_run(synthetic_panel, request):
    if _ran_in_own_process(request):
        return
    feats, label, fwd, spec = synthetic_panel
    serial = run_walkforward_many(feats, label, _runs(spec), fwd, workers=1, progress=False)
    ray = run_walkforward_many(feats, label, _runs(spec), fwd, workers=2, progress=False)
    assert list(ray) == list(serial)
    pd.testing.assert_frame_equal(predictions_frame(ray), predictions_frame(serial), check_exact=True)
    for name in serial:
        s, r = serial[name], ray[name]
        assert len(s.folds) == 3
        pd.testing.assert_frame_equal(r.folds.drop(columns=TIMING), s.folds.drop(columns=TIMING), check_exact=True)
        pd.testing.assert_series_equal(r.long_short, s.long_short, check_exact=True)
        pd.testing.assert_frame_equal(r.gain, s.gain, check_exact=True)
        pd.testing.assert_frame_equal(r.shap, s.shap, check_exact=True)
        assert r.best_params == s.best_params
    assert len(serial["all, seed 1, 2 Optuna trials"].best_params) == 3  # one search per fold, inside its task
    # the seeds matter: otherwise equal numbers would say nothing
    assert not serial["all, seed 0"].predictions.equals(serial["all, seed 1, 2 Optuna trials"].predictions)
    # each fold task ran on one thread: its CPU time does not exceed its wall time by more than noise
    for res in (*serial.values(), *ray.values()):
        assert (res.folds["cpu_seconds"] <= res.folds["seconds"] * 1.3 + 0.05).all()


def _sleep_then_square(i: int, shared: dict) -> tuple[int, int, str | None, int]:
    from threadpoolctl import threadpool_info

    time.sleep(0.3 * (3 - i) if i < 3 else 0.0)  # the first tasks finish last
    threads = max((lib["num_threads"] for lib in threadpool_info()), default=1)
    return i * i + shared["offset"], os.getpid(), os.environ.get("OMP_NUM_THREADS"), threads


def _fail(shared: object) -> None:
    raise InsufficientDataError("fold 2: the training label has a single value")


@pytest.mark.slow
def test_ray_results_come_back_in_submission_order_with_one_thread_per_task_and_errors_as_themselves(request):
    if _ran_in_own_process(request):
        return
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
    tasks = [functools.partial(_sleep_then_square, i) for i in range(6)]
    with ray_session(2):
        out = run_tasks(tasks, {"offset": 10}, workers=2)
        assert [o[0] for o in out] == [i * i + 10 for i in range(6)]
        assert len({o[1] for o in out}) == 2 and os.getpid() not in {o[1] for o in out}  # two worker processes
        assert {o[2] for o in out} == {"1"} and {o[3] for o in out} == {1}
        with pytest.raises(InsufficientDataError, match="single value"):
            run_tasks([_fail, _fail], None, workers=2)


def test_the_serial_mode_keeps_order_and_one_thread_and_never_imports_ray():
    code = textwrap.dedent("""
        import functools, sys
        from tests.research.test_fanout import _sleep_then_square
        from graphwiz_trader.research.fanout import run_tasks
        out = run_tasks([functools.partial(_sleep_then_square, i) for i in range(4)], {"offset": 1}, workers=1)
        assert [o[0] for o in out] == [1, 2, 5, 10], out
        assert {o[3] for o in out} == {1}, out
        assert "ray" not in sys.modules
        print("ok")
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_an_address_nobody_answers_on_fails_at_once_naming_it(capsys):
    t0 = time.perf_counter()
    with pytest.raises(RayUnavailableError, match=r"127\.0\.0\.1:1\b"):
        check_reachable("127.0.0.1:1")
    with pytest.raises(RayUnavailableError, match="HOST:PORT"):
        check_reachable("no-port-here")
    assert issubclass(RayUnavailableError, GraphwizError)
    rc = main(["research", "walkforward", "--ray-address", "127.0.0.1:1", "--no-progress", "--out",
               str(Path(os.environ.get("TMPDIR", "/tmp")) / f"gw_fanout_test_{os.getpid()}")])
    err = capsys.readouterr().err
    assert rc != 0 and "--ray-address 127.0.0.1:1" in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 15


def test_a_port_that_answers_but_is_not_ray_is_refused_within_seconds_not_minutes():
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()  # accepts, never speaks
    t0 = time.perf_counter()
    try:
        with pytest.raises(RayUnavailableError, match="but not Ray"):
            check_reachable(f"127.0.0.1:{server.getsockname()[1]}", timeout=1.0)
    finally:
        server.close()
    assert time.perf_counter() - t0 < 5


DRIVER = """
import os, sys, time
from graphwiz_trader.research.fanout import ray_session
with ray_session(2) as ray:
    assert ray.get(ray.remote(num_cpus=1)(lambda x: abs(x)).remote(-1)) == 1  # a worker process exists
    temp = os.path.dirname(ray._private.worker._global_node.get_session_dir_path())
    print("READY", ray.get_runtime_context().gcs_address, temp, flush=True)
    time.sleep(600)
"""


SECOND_DRIVER = """
import functools, sys
from graphwiz_trader.research.fanout import run_tasks
import ray
print(run_tasks([functools.partial(divmod, 10 * i + 7) for i in range(5)], 5, ray_address=sys.argv[1]),
      ray.is_initialized())
"""


@pytest.mark.slow
def test_tasks_run_on_an_existing_cluster_and_killing_its_driver_with_sigkill_leaves_no_ray_process_behind():
    import ray as ray_pkg

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, address, temp = proc.stdout.readline().split()
        assert ready == "READY" and Path(temp).name.startswith("gwray") and len(temp) < 40
        # --ray-address: a second driver joins that cluster (with Ray's default token authentication, as a
        # user would) and gets its results in order, then leaves
        env = {**os.environ, "RAY_AUTH_MODE": "token"}
        joined = subprocess.run([sys.executable, "-c", SECOND_DRIVER, address], check=False, cwd=root, env=env,
                                capture_output=True, text=True, timeout=180)
        assert joined.stdout.strip() == f"{[divmod(10 * i + 7, 5) for i in range(5)]} False", joined.stderr[-2000:]
        started = ray_processes(proc.pid, [str(Path(ray_pkg.__file__).parent)], exclude=-1)
        names = " ".join(Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ") for p in started)
        assert "gcs_server" in names and "raylet" in names and "ray::" in names  # the cluster this driver started
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (any(_alive(p, s) for p, s in started.items()) or Path(temp).exists()):
            time.sleep(0.25)
        left = [p for p, s in started.items() if _alive(p, s)]
        assert not left, f"Ray processes still alive 20 s after the driver was killed: {left}"
        assert not Path(temp).exists()  # the session's files go with them
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int, start: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    rest = fields[fields.rfind(")") + 2:].split()
    return int(rest[19]) == start and rest[0] != "Z"
