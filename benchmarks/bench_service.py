"""The service under load and over time: the API's throughput, and a long replayed soak.

``load``: ``POST /api/v1/signals`` with 20 symbols from 50 concurrent clients for 60 s.
Target (issue 10): >= 200 req/s, p99 <= 250 ms, 0 errors.

- The server is a separate process (this script with ``--serve``): uvicorn, one worker, on 127.0.0.1 only.
  It serves ``create_app`` over a real :class:`~graphwiz_trader.service.state.ServiceState`: a replay strategy on
  a 20-asset SYNTHETIC market after 30 real cycles, so ``latest_signals`` answers the cached scores and target
  weights of the newest cycle.
- Every request carries a read key (checked by SHA-256 + ``hmac.compare_digest``). The rate limit is set out of
  the way (10^6 per minute) because one key sends everything here.
- The load generator (aiohttp, this process) keeps ``--clients`` requests in flight for ``--seconds``, then does
  the same against ``GET /health`` (the peer: the cheapest route, same server, same run) for ``--peer-seconds``.
  The ratio of the two throughputs says how much of the cost is the signals route itself. Both share the 2
  cores with the server, so the figures are a floor.

``soak``: a replayed :class:`~graphwiz_trader.service.loop.ProductionTradingService` for ``--cycles`` (2,000)
cycles. Target: memory flat, no leaked threads or file handles.

- The shipped ``config/trading_config.yaml``, with its symbols replaced by a 20-asset SYNTHETIC market: the hybrid
  model (Alpha158 + graph features) trained at start on 2,160 bars, max-Sharpe on a 720-bar covariance, the
  graph store on the embedded server (started here, in a temporary folder), the HTTP API. Champion/challenger
  rounds every ``--retrain-hours`` (168) of replayed time replace the strategy's own retraining (mlflow in a
  temporary runs folder).
- A client thread asks ``/health``, ``/metrics`` and ``/api/v1/overview`` every 0.2 s (new connection each time),
  so the HTTP side runs all along.
- Every ``--sample-every`` cycles the service's process is sampled: RSS, threads, open file descriptors,
  asyncio tasks (and the JVM's RSS, apart: its heap is capped by ``graph.embedded_heap``). The baseline is the
  sample after the first quarter: caches, the first rounds and the server's connections are in place by then.
  The peer is the same run's first quarter: the cycle time of the last quarter is divided by the first
  quarter's.
- Flat (:func:`judge_soak`): the samples after the baseline in two halves; the later half's peak RSS within
  max(32 MB, 5 %) of the earlier half's and a slope under 10 MB per 1,000 cycles; peak open files and asyncio
  tasks within 2; the same threads at the end as at the baseline.

    python benchmarks/bench_service.py load [--seconds 60] [--peer-seconds 15] [--clients 50] [--json FILE]
    python benchmarks/bench_service.py soak [--cycles 2000] [--sample-every 100] [--retrain-hours 168] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

KEY = "bench-read-key-" + "0123456789abcdef" * 2
TARGET_RPS, TARGET_P99_MS = 200.0, 250.0


def serve(port: int, folder: str) -> None:
    """The server process: a real replay ServiceState behind create_app, uvicorn on 127.0.0.1:port."""
    import uvicorn

    from graphwiz_trader.config.settings import ApiSettings
    from graphwiz_trader.service.api import create_app
    from graphwiz_trader.testkit.service import replay_service

    svc = replay_service(folder, n_assets=20, days=12, cycles=30)
    settings = ApiSettings(keys=[f"{hashlib.sha256(KEY.encode()).hexdigest()} read bench"],
                           rate_per_minute=1_000_000, burst=100_000)
    app = create_app(svc.state, settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _load(url: str, method: str, body: dict | None, clients: int, seconds: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    headers = {"X-API-Key": KEY}

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                async with session.request(method, url, json=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            lat.append(time.perf_counter() - t0)

    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - t0
    arr = np.asarray(lat) * 1e3
    return {"requests": int(arr.size), "seconds": wall, "rps": arr.size / wall,
            "p50_ms": float(np.percentile(arr, 50)) if arr.size else None,
            "p99_ms": float(np.percentile(arr, 99)) if arr.size else None,
            "errors": int(sum(errors.values())), "error_kinds": errors}


def _wait_ready(base: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server process exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not answer {base}/health within {timeout_s:.0f} s")


# ================================================================================================ soak
SOAK_ASSETS, SOAK_WARMUP_BARS = 20, 2_200


def _process_sample(cycle: int, cycle_s: float) -> dict:
    import gc

    import psutil

    me = psutil.Process()
    jvm = [c for c in me.children(recursive=True) if "java" in (c.name() or "")]
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = 0
    return {"cycle": cycle, "rss_mb": me.memory_info().rss / 2**20, "threads": threading.active_count(),
            "thread_names": sorted(t.name for t in threading.enumerate()), "open_files": me.num_fds(),
            "asyncio_tasks": tasks, "gc_objects": len(gc.get_objects()), "cycle_s": cycle_s,
            "jvm_rss_mb": sum(c.memory_info().rss for c in jvm) / 2**20}


def _http_client(base: str, stop: threading.Event, stopping: threading.Event, counts: dict) -> None:
    """/health, /metrics and /api/v1/overview every 0.2 s, a new connection each time; ``stopping``: the
    service's shutdown has begun (refused connections from then on are expected)."""
    import urllib.error
    import urllib.request

    while not stop.is_set():
        for path in ("/health", "/metrics", "/api/v1/overview"):
            req = urllib.request.Request(base + path, headers={"X-API-Key": KEY, "Authorization": f"Bearer {KEY}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    r.read()
                    counts[r.status] = counts.get(r.status, 0) + 1
            except urllib.error.HTTPError as exc:
                counts[exc.code] = counts.get(exc.code, 0) + 1
            except OSError as exc:
                if not counts.get(200):
                    key = "before the first answer (start-up)"
                elif stopping.is_set():
                    key = "after the service stopped"
                else:
                    key = f"{type(exc).__name__} on {path}: {getattr(exc, 'reason', exc)}"
                counts[key] = counts.get(key, 0) + 1
        stop.wait(0.2)


def soak(cycles: int, sample_every: int, folder: Path, retrain_hours: int = 168) -> dict:
    """Run the replayed service for ``cycles`` cycles; samples every ``sample_every`` cycles (see the docstring)."""
    os.environ["GRAPHWIZ_GRAPH_DIR"] = str(folder / "graph")
    os.environ["GRAPHWIZ_RUNS_DIR"] = str(folder / "runs")
    from graphwiz_trader.config.loader import load_yaml, validate_mapping
    from graphwiz_trader.config.settings import TradingSettings
    from graphwiz_trader.core.logging import configure_logging
    from graphwiz_trader.data.synthetic import (
        SyntheticMarketSettings,
        generate_synthetic_market,
    )
    from graphwiz_trader.service.loop import ProductionTradingService
    from graphwiz_trader.strategies.session import replay_engine

    configure_logging()
    logging.getLogger("graphwiz_trader").setLevel(logging.WARNING)
    market = generate_synthetic_market(SyntheticMarketSettings(
        n_assets=SOAK_ASSETS, n_clusters=4, n_bars=SOAK_WARMUP_BARS + cycles + 24, seed=11))
    symbols = sorted(market.bars)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = load_yaml(Path(__file__).resolve().parents[1] / "config" / "trading_config.yaml")
    raw["strategy"]["symbols"] = symbols
    raw["service"].update({"port": port, "run_id": "soak", "journal": str(folder / "journal.sqlite")})
    raw["service"]["retrain"].update({"enabled": retrain_hours > 0, "interval_hours": max(retrain_hours, 1)})
    raw["service"]["api"].update({"keys": [f"{hashlib.sha256(KEY.encode()).hexdigest()} read soak"],
                                  "rate_per_minute": 1_000_000, "burst": 100_000})
    settings = validate_mapping(raw, TradingSettings, "config/trading_config.yaml (soak)")
    engine = replay_engine(settings, market.bars, start=market.bars[symbols[0]].index[SOAK_WARMUP_BARS])
    samples: list[dict] = []
    times: list[float] = []
    last = [time.perf_counter()]

    stop, stopping, counts = threading.Event(), threading.Event(), {}

    class SoakService(ProductionTradingService):
        """The service, sampled every ``sample_every`` cycles; ``stopping`` set when its shutdown begins."""

        async def _after_cycle(self, result: dict) -> None:
            await super()._after_cycle(result)
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
            if self.cycles_done % sample_every == 0 or self.cycles_done == 1:
                samples.append(_process_sample(self.cycles_done, times[-1]))
                print(f"  cycle {self.cycles_done:5d}: RSS {samples[-1]['rss_mb']:7.1f} MB, "
                      f"{samples[-1]['threads']} threads, {samples[-1]['open_files']} open files, "
                      f"{samples[-1]['asyncio_tasks']} tasks", flush=True)

        async def _shutdown(self) -> None:
            stopping.set()
            await super()._shutdown()

    svc = SoakService(settings=settings, engine=engine, cycles=cycles, run_folder=folder / "serve")
    client = threading.Thread(target=_http_client, args=(f"http://127.0.0.1:{port}", stop, stopping, counts),
                              daemon=True)
    client.start()
    t0 = time.perf_counter()
    try:
        code = asyncio.run(svc.run())
    finally:
        stop.set()
        client.join(15)
    wall = time.perf_counter() - t0
    return {"cycles": svc.cycles_done, "exit_code": code, "seconds": wall, "samples": samples,
            "cycle_seconds": times, "http": {str(k): v for k, v in counts.items()},
            "alerts": [a.key for a in svc.alerts.sent]}


def judge_soak(r: dict) -> dict:
    """The flatness verdict of the module docstring.

    The samples after the baseline (the first quarter) are cut in two halves. Retraining makes RSS a saw-tooth
    (a round allocates, the next frees), so single samples are compared by their halves' peaks: flat when the
    later half's peak RSS is within max(32 MB, 5 %) of the earlier half's and the least-squares slope is under
    10 MB per 1,000 cycles; the later half's peak open files and asyncio tasks within 2 of the earlier half's;
    the same thread names at the end as at the baseline.
    """
    samples = r["samples"]
    base = next(x for x in samples if x["cycle"] >= r["cycles"] // 4)
    end = samples[-1]
    after = [x for x in samples if x["cycle"] >= base["cycle"]]
    early, late = after[: len(after) // 2], after[len(after) // 2:]
    q = max(1, len(r["cycle_seconds"]) // 4)
    first, last = np.median(r["cycle_seconds"][1:q]), np.median(r["cycle_seconds"][-q:])
    slope = float(np.polyfit([x["cycle"] for x in after], [x["rss_mb"] for x in after], 1)[0] * 1000) \
        if len(after) > 2 else float("nan")

    def peak(xs: list[dict], k: str) -> float:
        return max(x[k] for x in xs) if xs else float("nan")

    rss_ok = bool(peak(late, "rss_mb") - peak(early, "rss_mb") <= max(32.0, 0.05 * peak(early, "rss_mb"))
                  and slope < 10.0)
    threads_ok = end["thread_names"] == base["thread_names"]
    files_ok = bool(peak(late, "open_files") - peak(early, "open_files") <= 2)
    tasks_ok = bool(peak(late, "asyncio_tasks") - peak(early, "asyncio_tasks") <= 2)
    return {"baseline": base, "end": end, "rss_slope_mb_per_1000_cycles": slope,
            "peak_rss_mb": [peak(early, "rss_mb"), peak(late, "rss_mb")],
            "peak_open_files": [peak(early, "open_files"), peak(late, "open_files")],
            "peak_asyncio_tasks": [peak(early, "asyncio_tasks"), peak(late, "asyncio_tasks")],
            "halves": [[early[0]["cycle"], early[-1]["cycle"]], [late[0]["cycle"], late[-1]["cycle"]]],
            "cycle_s_first_quarter_median": float(first), "cycle_s_last_quarter_median": float(last),
            "last_to_first_cycle_time_ratio": float(last / first), "rss_ok": rss_ok, "threads_ok": threads_ok,
            "files_ok": files_ok, "tasks_ok": tasks_ok,
            "target_met": bool(rss_ok and threads_ok and files_ok and tasks_ok and r["cycles"] > 0)}


def print_soak(r: dict, v: dict) -> None:
    print(f"service soak, {r['cycles']} replayed cycles (SYNTHETIC, {SOAK_ASSETS} assets, shipped config), "
          f"{r['seconds']:.0f} s, exit code {r['exit_code']}, {os.cpu_count()} cores")
    print(f"{'cycle':>6} {'RSS MB':>8} {'JVM MB':>8} {'threads':>7} {'files':>6} {'tasks':>6} {'gc objects':>11}")
    for x in r["samples"]:
        print(f"{x['cycle']:6d} {x['rss_mb']:8.1f} {x['jvm_rss_mb']:8.1f} {x['threads']:7d} {x['open_files']:6d} "
              f"{x['asyncio_tasks']:6d} {x['gc_objects']:11d}")
    b, e, (h1, h2) = v["baseline"], v["end"], v["halves"]
    print(f"halves after the baseline: cycles {h1[0]}-{h1[1]} and {h2[0]}-{h2[1]}; peak RSS {v['peak_rss_mb'][0]:.1f} "
          f"-> {v['peak_rss_mb'][1]:.1f} MB (slope {v['rss_slope_mb_per_1000_cycles']:+.1f} MB per 1,000 cycles), "
          f"peak open files {v['peak_open_files'][0]} -> {v['peak_open_files'][1]}, peak tasks "
          f"{v['peak_asyncio_tasks'][0]} -> {v['peak_asyncio_tasks'][1]}, threads {b['threads']} -> {e['threads']}")
    if not v["threads_ok"]:
        print(f"  threads started since: {sorted(set(e['thread_names']) - set(b['thread_names']))}, "
              f"gone: {sorted(set(b['thread_names']) - set(e['thread_names']))}")
    print(f"cycle time median: first quarter {v['cycle_s_first_quarter_median'] * 1e3:.1f} ms, last quarter "
          f"{v['cycle_s_last_quarter_median'] * 1e3:.1f} ms (ratio {v['last_to_first_cycle_time_ratio']:.2f}); "
          f"HTTP answers {r['http']}; alerts sent {len(r['alerts'])}")
    print(f"target: peak RSS within max(32 MB, 5 %) and slope < 10 MB per 1,000 cycles, same threads, peak open "
          f"files and tasks within 2 -> "
          f"{'met' if v['target_met'] else 'NOT met'}")


# ================================================================================================ main
def run_load(args: argparse.Namespace) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    folder = tempfile.mkdtemp(prefix="bench_service_")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--folder", folder])
    try:
        _wait_ready(base, proc)
        import httpx

        syms = [f"SYN{i:02d}/USDT" for i in range(20)]
        probe = httpx.post(base + "/api/v1/signals", json={"symbols": syms}, headers={"X-API-Key": KEY}).json()
        assert len(probe["scores"]) == 20 and all(v is not None for v in probe["scores"].values()), probe
        sig = asyncio.run(_load(base + "/api/v1/signals", "POST", {"symbols": syms}, args.clients, args.seconds))
        peer = asyncio.run(_load(base + "/health", "GET", None, args.clients, args.peer_seconds))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    ok = sig["rps"] >= TARGET_RPS and (sig["p99_ms"] or 1e9) <= TARGET_P99_MS and sig["errors"] == 0
    print(f"service API load, {args.clients} clients, uvicorn 1 worker on 127.0.0.1, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'route':<34} {'seconds':>7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for name, r in (("POST /api/v1/signals (20 symbols)", sig), ("GET /health (peer)", peer)):
        print(f"{name:<34} {r['seconds']:7.1f} {r['requests']:9d} {r['rps']:8.1f} {r['p50_ms'] or 0:8.1f} "
              f"{r['p99_ms'] or 0:8.1f} {r['errors']:6d}")
    print(f"target: >= {TARGET_RPS:.0f} req/s, p99 <= {TARGET_P99_MS:.0f} ms, 0 errors -> {'met' if ok else 'NOT met'}; "
          f"signals/health throughput ratio {sig['rps'] / peer['rps']:.2f}")
    return {"clients": args.clients, "signals": sig, "health": peer, "target_met": ok,
            "ratio_signals_to_health": sig["rps"] / peer["rps"], "loadavg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("part", nargs="?", choices=["load", "soak", "all"], default="all",
                   help="which benchmark: load, soak or all (default all)")
    p.add_argument("--seconds", type=float, default=60.0, help="load: duration of the signals load (s), default 60")
    p.add_argument("--peer-seconds", type=float, default=15.0, help="load: duration of the /health peer load (s), "
                   "default 15")
    p.add_argument("--clients", type=int, default=50, help="load: concurrent clients (requests in flight), default 50")
    p.add_argument("--cycles", type=int, default=2000, help="soak: replayed service cycles, default 2000")
    p.add_argument("--retrain-hours", type=int, default=168, help="soak: champion/challenger round every N hours "
                   "of replayed time, 0 = off (default 168)")
    p.add_argument("--sample-every", type=int, default=100, help="soak: cycles between samples, default 100")
    p.add_argument("--json", help="also write the figures to this JSON file (default: none)")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.folder)
        return 0
    if not (0 < args.seconds <= 600 and 0 < args.peer_seconds <= 600 and 1 <= args.clients <= 1000):
        p.error("--seconds and --peer-seconds must be in (0, 600], --clients in [1, 1000]")
    if not (8 <= args.cycles <= 100_000 and 1 <= args.sample_every <= args.cycles // 4):
        p.error("--cycles must be in [8, 100000], --sample-every in [1, cycles / 4]")
    out: dict = {}
    if args.part in ("load", "all"):
        out["load"] = run_load(args)
    if args.part in ("soak", "all"):
        with tempfile.TemporaryDirectory(prefix="bench_service_soak_") as folder:
            r = soak(args.cycles, args.sample_every, Path(folder), args.retrain_hours)
        v = judge_soak(r)
        print_soak(r, v)
        out["soak"] = {**{k: r[k] for k in ("cycles", "exit_code", "seconds", "samples", "http", "alerts")}, **v}
    if args.json:
        from graphwiz_trader.core.jsonout import write_json

        write_json(Path(args.json), out)
    return 0 if all(x["target_met"] for x in out.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
