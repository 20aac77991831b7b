"""A real Prometheus (Debian's ``prometheus``) scrapes the service's /metrics with a read key as its bearer
token, and a PromQL query returns the equity series the strategy's cycles produced."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.service.api import create_app
from graphwiz_trader.service.metrics import ServiceMetrics
from graphwiz_trader.testkit.service import ServedApp, replay_service

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed "
                                                           "(apt-get install prometheus; .ci/run installs it)")
READ_KEY = "prometheus-scrape-key-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_service_with_a_bearer_key_and_returns_the_equity_series(tmp_path: Path):
    svc = replay_service(tmp_path / "svc", cycles=0)
    metrics = ServiceMetrics()
    try:
        equities = []
        for _ in range(4):
            (r,) = asyncio.run(svc.run_cycles(1))
            metrics.observe_cycle(r, svc.state.snapshot())
            equities.append(float(r["equity"]))
        key_file = tmp_path / "prometheus.key"
        key_file.write_text(READ_KEY)
        digest = hashlib.sha256(READ_KEY.encode()).hexdigest()
        app = create_app(svc.state, ApiSettings(keys=[f"{digest} read prometheus"]), metrics.registry)
        with ServedApp(app, access_log=False) as served:
            port = _free_port()
            (tmp_path / "prometheus.yml").write_text(
                "global:\n  scrape_interval: 1s\n"
                "scrape_configs:\n"
                "  - job_name: graphwiz\n"
                "    metrics_path: /metrics\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{served.port}']}}]\n"
                f"    authorization: {{type: Bearer, credentials_file: {key_file}}}\n")
            proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                result: list[dict] = []
                while time.monotonic() < deadline and not result:
                    time.sleep(0.5)
                    if proc.poll() is not None:
                        pytest.fail(f"prometheus exited: {proc.stderr.read().decode()[-2000:]}")
                    try:
                        result = _query(port, 'graphwiz_equity_quote{job="graphwiz"}')
                    except OSError:
                        continue
                assert result, "no graphwiz_equity_quote sample was scraped within 60 s"
                assert float(result[0]["value"][1]) == pytest.approx(equities[-1], rel=1e-12)
                # three more cycles, each scraped before the next: the range query returns the series in order
                first_seen = len(equities) - 1
                for _ in range(3):
                    (r,) = asyncio.run_coroutine_threadsafe(svc.run_cycles(1), served.loop).result(timeout=60)
                    metrics.observe_cycle(r, svc.state.snapshot())
                    equities.append(float(r["equity"]))
                    while time.monotonic() < deadline + 60:
                        now = _query(port, 'graphwiz_equity_quote{job="graphwiz"}')
                        if float(now[0]["value"][1]) == equities[-1]:
                            break
                        time.sleep(0.3)
                series = _query(port, 'graphwiz_equity_quote{job="graphwiz"}[5m]')[0]["values"]
                values = [float(v) for _, v in series]
                changes = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
                print(f"PromQL graphwiz_equity_quote{{job=\"graphwiz\"}}[5m] -> {len(series)} samples, values in "
                      f"order {changes}")
                assert changes == pytest.approx(equities[first_seen:], rel=1e-12)
                up = _query(port, 'up{job="graphwiz"}')
                assert up and up[0]["value"][1] == "1"   # the scrape authenticated (401 would make it 0)
                fills = _query(port, "graphwiz_fills_total")
                assert fills and float(fills[0]["value"][1]) == sum(
                    r["trades_executed"] for r in svc.results)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    finally:
        svc.close()

