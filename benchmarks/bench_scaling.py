"""Scaling of the pipeline's stages with the number of assets: wall time and peak memory per stage.

Grid: --sizes (default 50,100,200,500 synthetic assets) x --timeframes (default 1h,1d); SYNTHETIC market
(data/synthetic.py, seed 7, one planted cluster per 10 assets, at least 3). Hourly: 2,000 bars; daily: 750 bars.

Stages, in the order they run (each (size, timeframe) runs in a fresh subprocess, so memory peaks do not
carry over; each subprocess starts its own embedded graph server just before the graph write and stops it
after the read-back):
  generate        synthetic market (bars + ground truth)
  validate        validate_bars (strict)
  qlib_bins       write_qlib_bins (60min or day)
  alpha158        Alpha158 + extras through Qlib (no feature cache; Qlib's joblib workers = CPU count)
  lightgbm        one walk-forward fold: train on the first 60% of the bars after a 60-bar warm-up,
                  gap 1 bar, predict the next 20%; regression on the demeaned next-bar log return,
                  200 trees (no early stopping, so the tree count does not vary with the size), --lgb-threads
                  threads (default 1, as inside a Ray worker: with 2 OpenMP threads on the shared 2-core
                  machine a fit was ~10x slower in wall time than with 1)
  graph_build     correlation snapshots (Pearson, |rho| >= 0.3, top-10 partners per asset, lead-lag 1..6,
                  Louvain) + regime state (market HMM + asset regimes); hourly window 240 / stride 24,
                  daily window 60 / stride 5
  graph_write     write_graph to the embedded ArcadeDB Bolt server (edges/s over edges + leads)
  graph_read      read_graph (the build back) + graph_features from what was read
  max_sharpe      rolling_optimise, max-Sharpe on cross-sectional reversal scores, Ledoit-Wolf over 240
                  bars (hourly) / 60 bars (daily), long-only, cap 25% per asset, 2% cash; --decisions
                  decisions (default 20) every 24 bars (hourly) / 5 bars (daily) at the end of the panel;
                  run cold (compiled-problem cache emptied: includes the cvxpy compilation) then warm
                  (per-decision time = warm seconds / decisions)
  backtest        run_backtest over the whole panel, rebalanced every bar to random long-only targets
                  around equal weight (default costs), as benchmarks/bench_backtest.py

Memory: RSS of the subprocess plus its children (Qlib's workers, the graph server's JVM), sampled every
0.05 s by a psutil thread; reported as the peak increase over the stage's start and the absolute peak.
The parent watches each stage: past --stage-timeout seconds (default 600) or past --mem-limit-gb for the
process tree it kills the subprocess, records the stage as "timeout" / "memory", marks the stages that
need its output as skipped, and restarts the subprocess for the stages left.

Run: .venv/bin/python benchmarks/bench_scaling.py [--sizes 50,100,200,500] [--timeframes 1h,1d]
         [--json PATH] [--decisions 20] [--stage-timeout 600] [--mem-limit-gb G] [--heap 2g]
         [--lgb-threads 1]
     .venv/bin/python benchmarks/bench_scaling.py --report PATH   (tables and fits from a saved JSON)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil

STAGES = ("generate", "validate", "qlib_bins", "alpha158", "lightgbm", "graph_build", "graph_write", "graph_read",
          "max_sharpe", "backtest")
NEEDS = {"alpha158": "qlib_bins", "lightgbm": "alpha158", "graph_write": "graph_build", "graph_read": "graph_write"}
TIMEFRAMES = {  # bars, Qlib freq, graph window, graph stride, covariance window, decision step, bars per year
    "1h": {"bars": 2000, "freq": "60min", "window": 240, "stride": 24, "cov": 240, "step": 24, "ppy": 8760.0},
    "1d": {"bars": 750, "freq": "day", "window": 60, "stride": 5, "cov": 60, "step": 5, "ppy": 365.0},
}
SEED = 7
MARK = "@@"
GB = 1e9


def _dependents(stage: str) -> list[str]:
    out, frontier = [], [stage]
    while frontier:
        s = frontier.pop()
        for k, v in NEEDS.items():
            if v == s and k not in out:
                out.append(k)
                frontier.append(k)
    return out


def _tree_rss(proc: psutil.Process) -> int:
    try:
        total = proc.memory_info().rss
        kids = proc.children(recursive=True)
    except psutil.Error:
        return 0
    for c in kids:
        try:
            total += c.memory_info().rss
        except psutil.Error:
            pass
    return total


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ----------------------------------------------------------------------------------------------- child side
@contextmanager
def _stage(name: str, out: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Announce, time and sample one stage; print its figures as one marked JSON line."""
    me = psutil.Process()
    print(f"{MARK}{json.dumps({'event': 'start', 'stage': name})}", flush=True)
    start = _tree_rss(me)
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(me))
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    extra: dict[str, Any] = {}
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        yield extra
    finally:
        secs = time.perf_counter() - t0
        stop.set()
        th.join()
        peak[0] = max(peak[0], _tree_rss(me))
    row = {"event": "done", "stage": name, "status": "ok", "seconds": secs, "cpu_seconds_main": time.process_time() - c0,
           "rss_start_gb": start / GB, "peak_gb": peak[0] / GB, "peak_increase_gb": (peak[0] - start) / GB, **extra}
    out[name] = row
    print(f"{MARK}{json.dumps(row, default=str)}", flush=True)


def _child(n_assets: int, tf: str, skip: set[str], work: Path, decisions: int, heap: str, lgb_threads: int) -> int:
    import pandas as pd

    from graphwiz_trader.backtest import BacktestSettings, run_backtest
    from graphwiz_trader.backtest.scores import cross_sectional_reversal
    from graphwiz_trader.config.settings import GraphSettings
    from graphwiz_trader.data.qlib_bins import write_qlib_bins
    from graphwiz_trader.data.synthetic import generate_synthetic_market
    from graphwiz_trader.data.validate import validate_bars
    from graphwiz_trader.features.alpha158 import AlphaFeatureExtractor
    from graphwiz_trader.features.graph_features import graph_features
    from graphwiz_trader.graph.pipeline import (
        GraphBuildSettings,
        build_graph,
        read_graph,
        write_graph,
    )
    from graphwiz_trader.graph.server import EmbeddedGraphServer
    from graphwiz_trader.graph.store import GraphStore
    from graphwiz_trader.models.generator import QlibSignalGenerator
    from graphwiz_trader.models.targets import LabelSpec, forward_log_return
    from graphwiz_trader.portfolio import (
        OptimiserSettings,
        PortfolioConstraints,
        fast_sharpe,
        rolling_optimise,
    )

    logging.basicConfig(level=logging.WARNING)
    p = TIMEFRAMES[tf]
    res: dict[str, Any] = {}
    n_clusters = max(3, n_assets // 10)
    with _stage("generate" if "generate" not in skip else "generate_again", res) as x:
        market = generate_synthetic_market(n_assets=n_assets, n_clusters=n_clusters, n_bars=p["bars"],
                                           timeframe=tf, seed=SEED)
        bars = dict(market.bars)
        x.update(n_assets=n_assets, n_clusters=n_clusters, n_bars=p["bars"], label=market.label)

    if "validate" not in skip:
        with _stage("validate", res) as x:
            report = validate_bars(bars, tf, strict=True)
            x.update(ok=report.ok, findings=sum(len(s.issues) for s in report.symbols))

    feats = None
    if "qlib_bins" not in skip:
        with _stage("qlib_bins", res) as x:
            summary = write_qlib_bins(bars, work / "qlib", p["freq"])
            x.update(calendar_length=summary["calendar_length"])
    if "alpha158" not in skip:
        with _stage("alpha158", res) as x:
            ex = AlphaFeatureExtractor(work / "qlib", p["freq"], cache_dir=False, mlflow_dir=work / "mlruns")
            feats = ex.extract(list(bars))
            x.update(rows=feats.shape[0], columns=feats.shape[1], kernels=os.cpu_count(),
                     frame_gb=float(feats.memory_usage(deep=True).sum()) / GB)
    if "lightgbm" not in skip and feats is not None:
        with _stage("lightgbm", res) as x:
            label = forward_log_return(bars, horizon=1)
            data_dt = feats.join(label, how="inner").dropna(subset=["label"]).index.get_level_values("datetime")
            dates = data_dt.unique().sort_values()
            warmup, gap = 60, 1
            n = len(dates) - warmup
            tr_end = warmup + int(n * 0.6)
            te_end = tr_end + gap + int(n * 0.2)
            train_d, test_d = dates[warmup:tr_end], dates[tr_end + gap:te_end]
            gen = QlibSignalGenerator(label=LabelSpec("regression", 1), seed=SEED, work_dir=work / "qlib",
                                      lgb_params={"min_data_in_leaf": 200, "num_threads": lgb_threads},
                                      num_boost_round=200)
            t0 = time.perf_counter()
            gen.fit(feats, label, train_d, None, cross_sectional=True)
            fit_s = time.perf_counter() - t0
            test = feats[feats.index.get_level_values("datetime").isin(test_d)]
            t0 = time.perf_counter()
            pred = gen.predict(test)
            x.update(train_bars=len(train_d), test_bars=len(test_d), train_rows=int(data_dt.isin(train_d).sum()),
                     test_rows=len(pred), trees=int(gen.booster.num_trees()), fit_seconds=fit_s, threads=lgb_threads,
                     predict_seconds=time.perf_counter() - t0)
        del feats
    spec = GraphBuildSettings(window=p["window"], stride=p["stride"], exchange="synthetic")
    build = None
    if "graph_build" not in skip:
        with _stage("graph_build", res) as x:
            build = build_graph(bars, spec)
            x.update(snapshots=len(build.snapshots), edges=sum(len(s.edges) for s in build.snapshots),
                     leads=sum(len(s.leads) for s in build.snapshots), regime_records=len(build.regimes),
                     snapshot_seconds=build.seconds["snapshots"], regime_seconds=build.seconds["regimes"],
                     window=spec.window, stride=spec.stride, top_k=spec.top_k, min_abs_rho=spec.min_abs_rho,
                     lead_max_lag=spec.lead_max_lag)
    if build is not None and not {"graph_write", "graph_read"} <= skip:
        server = EmbeddedGraphServer(work / "graph", heap=heap, startup_timeout_s=180)
        t0 = time.perf_counter()
        server.start()
        print(f"{MARK}{json.dumps({'event': 'server', 'pid': server.pid, 'start_seconds': time.perf_counter() - t0})}",
              flush=True)
        try:
            store = GraphStore.connect(GraphSettings(uri=server.uri, user=server.user, password=server.password,
                                                     database=server.database))
            try:
                if "graph_write" not in skip:
                    with _stage("graph_write", res) as x:
                        w = write_graph(store, build, spec.exchange)
                        n_e = sum(len(s.edges) + len(s.leads) for s in build.snapshots)
                        x.update(edges_and_leads=n_e, edges_per_s=n_e / w["write_snapshots"], **w,
                                 server="embedded ArcadeDB (Bolt)", heap=heap)
                    if "graph_read" not in skip:
                        with _stage("graph_read", res) as x:
                            back = read_graph(store, build.build_id, list(bars))
                            t0 = time.perf_counter()
                            g = graph_features(back.snapshots, back.regimes, bars)
                            x.update(read_seconds=back.seconds["read"], features_seconds=time.perf_counter() - t0,
                                     snapshots=len(back.snapshots), rows=g.shape[0], columns=g.shape[1])
                        del g, back
            finally:
                store.close()
        finally:
            server.stop()
    del build

    if "max_sharpe" not in skip:
        close = pd.DataFrame({s: df["close"] for s, df in bars.items()})
        with _stage("max_sharpe", res) as x:
            scores = cross_sectional_reversal(close, 1)
            times = close.index[::-1][: decisions * p["step"]: p["step"]][::-1]
            settings = OptimiserSettings(method="max_sharpe", cov_window_bars=p["cov"], periods_per_year=p["ppy"])
            cons = PortfolioConstraints(max_position_weight=0.25, cash_buffer=0.02)
            fast_sharpe.clear_cache()
            t0 = time.perf_counter()
            cold = rolling_optimise(close, times, scores, settings, cons)
            cold_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            warm = rolling_optimise(close, times, scores, settings, cons)
            warm_s = time.perf_counter() - t0
            d = warm.diagnostics
            x.update(decisions=len(warm.weights), cold_seconds=cold_s, warm_seconds=warm_s,
                     per_decision_warm_s=warm_s / max(len(warm.weights), 1),
                     compile_estimate_s=cold_s - warm_s, cov_window_bars=p["cov"], decision_step_bars=p["step"],
                     max_sharpe_decisions=int((d["method"] == "max_sharpe").sum()),
                     fallbacks=warm.fallback_counts(), same_weights=bool(np.allclose(
                         cold.weights.to_numpy(), warm.weights.to_numpy(), atol=1e-9, equal_nan=True)))

    if "backtest" not in skip:
        with _stage("backtest", res) as x:
            close = pd.DataFrame({s: df["close"] for s, df in bars.items()})
            rng = np.random.default_rng(0)
            listed = np.isfinite(close.to_numpy())
            w = np.exp(0.05 * rng.standard_normal(close.shape)) * listed
            w = w / w.sum(axis=1, keepdims=True).clip(1e-12) * 0.98
            targets = pd.DataFrame(w, index=close.index, columns=close.columns)
            settings = BacktestSettings(rebalance=1, initial_capital=1_000_000.0, periods_per_year=p["ppy"])
            r = run_backtest(bars, targets, settings)
            x.update(bars=len(close), fills=int(np.count_nonzero(r.trade_units.to_numpy())),
                     sharpe=float(r.metrics()["sharpe"]))
    return 0


# ---------------------------------------------------------------------------------------------- parent side
def _kill_tree(proc: subprocess.Popen, extra_pids: list[int]) -> None:
    """Kill the subprocess's process group (it was started in its own session) and any listed pids."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in extra_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _run_once(n: int, tf: str, skip: set[str], args: argparse.Namespace, stages: dict[str, Any], tag: str
              ) -> tuple[str | None, str | None, dict[str, Any]]:
    """One subprocess. Returns (failed stage, reason, server info); ``(None, None, ..)`` when it finished."""
    work = Path(tempfile.mkdtemp(prefix=f"bench_scaling_{tf}_{n}_", dir=args.workdir))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), tf, "--workdir", str(work),
           "--decisions", str(args.decisions), "--heap", args.heap, "--lgb-threads", str(args.lgb_threads), "--skip", ",".join(sorted(skip)) or "-"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    ps = psutil.Process(proc.pid)
    current, started = None, time.monotonic()
    server: dict[str, Any] = {}
    failed = reason = None
    tail: list[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line.startswith(MARK):
                ev = json.loads(line[len(MARK):])
                if ev["event"] == "start":
                    current, started = ev["stage"], time.monotonic()
                elif ev["event"] == "server":
                    server = ev
                    print(f"{tag} graph server up in {ev['start_seconds']:.1f} s (pid {ev['pid']})", flush=True)
                elif ev["event"] == "done":
                    current = None
                    if ev["stage"] == "generate_again":
                        continue
                    stages[ev["stage"]] = ev
                    print(f"{tag} {_describe(ev)}", flush=True)
            elif line:
                tail = (tail + [line.rstrip()])[-30:]
            if current is not None:
                rss = _tree_rss(ps)
                if time.monotonic() - started > args.stage_timeout:
                    failed, reason = current, f"timeout: over {args.stage_timeout:g} s"
                elif rss > args.mem_limit_gb * GB:
                    failed, reason = current, f"memory: process tree over {args.mem_limit_gb:g} GB ({rss / GB:.1f} GB)"
                if failed:
                    _kill_tree(proc, [server["pid"]] if server.get("pid") else [])
                    stages[failed] = {"stage": failed, "status": reason.split(":")[0], "reason": reason,
                                      "seconds_before_kill": time.monotonic() - started}
                    print(f"{tag} {failed}: STOPPED, {reason}", flush=True)
                    break
        rc = proc.wait()
        if failed is None and rc != 0:
            failed, reason = current or "unknown", f"error: exit code {rc}"
            stages[failed] = {"stage": failed, "status": "error", "reason": reason, "output_tail": tail,
                              "seconds_before_error": time.monotonic() - started}
            print(f"{tag} {failed}: FAILED ({reason}); last output:\n  " + "\n  ".join(tail), flush=True)
    finally:
        if proc.poll() is None:
            _kill_tree(proc, [])
        shutil.rmtree(work, ignore_errors=True)
    return failed, reason, server


def _describe(ev: dict[str, Any]) -> str:
    s = f"{ev['stage']}: {ev['seconds']:.2f} s, peak +{ev['peak_increase_gb']:.2f} GB (abs {ev['peak_gb']:.2f} GB)"
    keys = {"alpha158": ("rows", "columns"), "lightgbm": ("train_rows", "fit_seconds", "predict_seconds"),
            "graph_build": ("snapshots", "edges", "leads", "snapshot_seconds", "regime_seconds"),
            "graph_write": ("edges_and_leads", "edges_per_s"), "graph_read": ("read_seconds", "features_seconds"),
            "max_sharpe": ("decisions", "cold_seconds", "per_decision_warm_s"), "backtest": ("bars", "fills")}
    bits = [f"{k} {ev[k]:,.2f}" if isinstance(ev[k], float) else f"{k} {ev[k]:,}"
            for k in keys.get(ev["stage"], ()) if k in ev]
    return s + (f"; {', '.join(bits)}" if bits else "")


def _run_grid(args: argparse.Namespace) -> dict[str, Any]:
    vm = psutil.virtual_memory()
    out: dict[str, Any] = {
        "benchmark": "bench_scaling", "seed": SEED, "timeframes": {k: TIMEFRAMES[k] for k in args.tf_list},
        "machine": {"cores": os.cpu_count(), "ram_gb": vm.total / GB, "available_gb_at_start": vm.available / GB,
                    "platform": platform.platform(), "python": sys.version.split()[0]},
        "lgb_threads": args.lgb_threads, "stage_timeout_s": args.stage_timeout, "mem_limit_gb": args.mem_limit_gb, "decisions": args.decisions,
        "graph_server": "embedded ArcadeDB Bolt server, one per subprocess (started before graph_write, stopped "
                        f"after graph_read), heap {args.heap}",
        "command": " ".join([".venv/bin/python", "benchmarks/bench_scaling.py", *sys.argv[1:]]),
        "runs": {tf: {} for tf in args.tf_list},
    }
    t_all = time.perf_counter()
    for tf in args.tf_list:
        for n in args.size_list:
            tag = f"[{tf} n={n}]"
            run: dict[str, Any] = {"n_assets": n, "timeframe": tf, "loadavg_start": _loadavg(), "stages": {}}
            print(f"{tag} start, load average {' '.join(f'{x:.2f}' for x in run['loadavg_start'])}", flush=True)
            t0 = time.perf_counter()
            skip: set[str] = set()
            restarts = 0
            while True:
                failed, _reason, server = _run_once(n, tf, skip, args, run["stages"], tag)
                if server:
                    run["graph_server_start_s"] = server.get("start_seconds")
                if failed is None:
                    break
                if failed in ("generate", "unknown"):
                    break
                for dep in _dependents(failed):
                    run["stages"].setdefault(dep, {"stage": dep, "status": "skipped",
                                                   "reason": f"needs {failed}, which did not finish"})
                skip = {s for s in STAGES if s in run["stages"]} | {failed}
                if all(s in skip for s in STAGES):
                    break
                restarts += 1
                print(f"{tag} restarting for the stages left ({', '.join(s for s in STAGES if s not in skip)})",
                      flush=True)
            run.update(seconds=time.perf_counter() - t0, loadavg_end=_loadavg(), restarts=restarts)
            print(f"{tag} done in {run['seconds']:.0f} s, load average "
                  f"{' '.join(f'{x:.2f}' for x in run['loadavg_end'])}", flush=True)
            out["runs"][tf][str(n)] = run
            out["fits"] = _fits(out)
            out["total_seconds"] = time.perf_counter() - t_all
            if args.json:
                _write(args.json, out)
    return out


def _write(path: str, payload: dict[str, Any]) -> None:
    from graphwiz_trader.core.jsonout import write_json

    write_json(path, payload)


# ------------------------------------------------------------------------------------------ fits and tables
def _slope(x: list[float], y: list[float]) -> float:
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(lx, ly, 1)[0])


def _fits(out: dict[str, Any], target: int = 3000) -> dict[str, Any]:
    """Log-log slopes over the sizes >= 100 that finished, and the extrapolation to ``target`` assets.

    ``exponent``: least-squares slope of log(value) on log(n); the range ``[low, high]`` is the spread of the
    slopes between neighbouring sizes (100->200, 200->500), and the extrapolation from the largest measured
    size with each of the three slopes (a range, not a confidence interval: three points, beyond the range).
    """
    fits: dict[str, Any] = {}
    for tf, runs in out["runs"].items():
        for stage in STAGES:
            for metric, key in (("seconds", "seconds"), ("peak_increase_gb", "peak_increase_gb")):
                pts = sorted((int(n), r["stages"][stage][key]) for n, r in runs.items()
                             if int(n) >= 100 and r["stages"].get(stage, {}).get("status") == "ok")
                pts = [(n, v) for n, v in pts if v > 0]
                if len(pts) < 2:
                    continue
                ns, vs = [p[0] for p in pts], [p[1] for p in pts]
                b = _slope(ns, vs)
                seg = [_slope(ns[i:i + 2], vs[i:i + 2]) for i in range(len(ns) - 1)]
                lo, hi = min(seg + [b]), max(seg + [b])
                n0, v0 = ns[-1], vs[-1]
                fits.setdefault(tf, {}).setdefault(stage, {})[metric] = {
                    "sizes": ns, "values": vs, "exponent": b, "exponent_range": [lo, hi],
                    f"at_{target}": v0 * (target / n0) ** b,
                    f"at_{target}_range": [v0 * (target / n0) ** lo, v0 * (target / n0) ** hi]}
    return fits


def _fmt_s(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"


def _tables(out: dict[str, Any], target: int = 3000) -> str:
    lines: list[str] = []
    for tf, runs in out["runs"].items():
        sizes = sorted(runs, key=int)
        p = out["timeframes"][tf]
        lines.append(f"\n### {tf}: {p['bars']} bars\n")
        lines.append("Seconds (wall) | peak memory increase over the stage's start, GB | absolute peak, GB\n")
        head = "| stage | " + " | ".join(f"n={n}" for n in sizes) + f" | exponent (100->500) | at {target} |"
        lines += [head, "|" + "---|" * (len(sizes) + 3)]
        for stage in STAGES:
            cells = []
            for n in sizes:
                r = runs[n]["stages"].get(stage)
                if r is None:
                    cells.append("-")
                elif r.get("status") != "ok":
                    cells.append(r.get("status", "?"))
                else:
                    cells.append(f"{_fmt_s(r['seconds'])} s / +{r['peak_increase_gb']:.2f} / {r['peak_gb']:.2f}")
            f = out.get("fits", {}).get(tf, {}).get(stage, {}).get("seconds")
            if f:
                lo, hi = f["exponent_range"]
                a, b = f[f"at_{target}_range"]
                cells += [f"{f['exponent']:.2f} [{lo:.2f}, {hi:.2f}]",
                          f"{_fmt_s(f[f'at_{target}'])} s [{_fmt_s(a)}, {_fmt_s(b)}]"]
            else:
                cells += ["-", "-"]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        loads = ", ".join(f"n={n}: {runs[n]['loadavg_start'][0]:.2f} -> {runs[n]['loadavg_end'][0]:.2f}"
                          for n in sizes)
        lines.append(f"\n1-min load average at start -> end of each run: {loads}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="50,100,200,500", help="comma-separated asset counts (default 50,100,200,500)")
    ap.add_argument("--timeframes", default="1h,1d", help="comma-separated, from 1h,1d (default both)")
    ap.add_argument("--json", metavar="PATH", help="write every figure here (re-written after each run)")
    ap.add_argument("--decisions", type=int, default=20, help="max-Sharpe decisions per run (default 20)")
    ap.add_argument("--stage-timeout", type=float, default=600.0, help="seconds before a stage is stopped (600)")
    ap.add_argument("--mem-limit-gb", type=float, default=None,
                    help="process-tree RSS at which a stage is stopped (default: 75%% of available RAM at start)")
    ap.add_argument("--heap", default="2g", help="embedded graph server Java heap (default 2g)")
    ap.add_argument("--lgb-threads", type=int, default=1, help="LightGBM threads in the fold (default 1)")
    ap.add_argument("--workdir", help="parent folder of the per-run scratch folders (default: the temp dir)")
    ap.add_argument("--report", metavar="PATH", help="print the tables and fits of a saved JSON and exit")
    ap.add_argument("--child", nargs=2, metavar=("N", "TF"), help=argparse.SUPPRESS)
    ap.add_argument("--skip", default="-", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        skip = set() if args.skip == "-" else set(args.skip.split(","))
        return _child(int(args.child[0]), args.child[1], skip, Path(args.workdir), args.decisions, args.heap,
                      args.lgb_threads)
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        saved["fits"] = _fits(saved)
        print(_tables(saved))
        return 0
    args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.tf_list = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    bad = [t for t in args.tf_list if t not in TIMEFRAMES]
    if bad or any(n < 2 for n in args.size_list):
        ap.error(f"timeframes must be among {', '.join(TIMEFRAMES)} and sizes >= 2 (got {args.timeframes!r}, "
                 f"{args.sizes!r})")
    if args.mem_limit_gb is None:
        args.mem_limit_gb = math.floor(0.75 * psutil.virtual_memory().available / GB * 10) / 10
    print(f"bench_scaling: sizes {args.size_list}, timeframes {args.tf_list}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / GB:.1f} GB RAM, stage timeout {args.stage_timeout:g} s, memory limit "
          f"{args.mem_limit_gb:g} GB; SYNTHETIC market, seed {SEED}", flush=True)
    out = _run_grid(args)
    print(_tables(out))
    print(f"\ntotal {out['total_seconds']:.0f} s" + (f"; figures -> {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
