"""Load on the service API: ``POST /api/v1/signals`` with 20 symbols from 50 concurrent clients.

Target (issue 10): >= 200 req/s, p99 <= 250 ms, 0 errors, for 60 s.

The server is a separate process (this script with ``--serve``): uvicorn, one worker, on 127.0.0.1 only,
serving ``create_app`` over a real :class:`~graphwiz_trader.service.state.ServiceState`: a replay strategy on a
20-asset SYNTHETIC market after 30 real cycles, so ``latest_signals`` answers the cached scores and target
weights of the newest cycle. Every request carries a read key (checked by SHA-256 + ``hmac.compare_digest``);
the rate limit is set out of the way (10^6 per minute) because one key sends everything here.

The load generator (aiohttp, this process) keeps ``--clients`` requests in flight for ``--seconds``, then does
the same against ``GET /health`` (the peer: the cheapest route, same server, same run) for
``--peer-seconds``; the ratio of the two throughputs says how much of the cost is the signals route itself.
Both share the 2 cores with the server, so the figures are a floor. Prints req/s, p50/p99 latency, errors,
the targets, and the machine's load average.

    python benchmarks/bench_service_load.py [--seconds 60] [--peer-seconds 15] [--clients 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="duration of the signals load (s), default 60")
    p.add_argument("--peer-seconds", type=float, default=15.0, help="duration of the /health peer load (s)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (requests in flight), default 50")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.folder)
        return 0
    if not (0 < args.seconds <= 600 and 0 < args.peer_seconds <= 600 and 1 <= args.clients <= 1000):
        p.error("--seconds and --peer-seconds must be in (0, 600], --clients in [1, 1000]")
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
    if args.json:
        from graphwiz_trader.core.jsonout import write_json

        write_json(Path(args.json), {"clients": args.clients, "signals": sig, "health": peer, "target_met": ok,
                                     "ratio_signals_to_health": sig["rps"] / peer["rps"],
                                     "loadavg": os.getloadavg()})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
