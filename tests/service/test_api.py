"""The service API over a real ServiceState (replay strategy on a SYNTHETIC market): keys and scopes on every
route, the rate limit, signals equal to the strategy's scores, controls through the state, JSON errors, the
OpenAPI schema, /metrics for Prometheus, the event stream, and no key in any response or log line."""

from __future__ import annotations

import hashlib
import json
import logging

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Gauge

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.service.api import STATIC_DIR, create_app
from graphwiz_trader.testkit.service import ServedApp, replay_service

READ_KEY = "read-key-0123456789-abcdefghij"
TRADE_KEY = "trade-key-0123456789-abcdefghij"


def _line(key: str, scope: str, name: str) -> str:
    return f"{hashlib.sha256(key.encode()).hexdigest()} {scope} {name}"


def settings(**kw: object) -> ApiSettings:
    return ApiSettings(keys=[_line(READ_KEY, "read", "dash"), _line(TRADE_KEY, "trade", "ops")], **kw)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    s = replay_service(tmp_path_factory.mktemp("svc"), cycles=8)
    yield s
    s.close()


@pytest.fixture(scope="module")
def registry(svc):
    reg = CollectorRegistry()
    Gauge("graphwiz_equity", "equity (quote)", registry=reg).set(svc.state.snapshot()["equity"])
    return reg


@pytest.fixture()
def client(svc, registry):
    return TestClient(create_app(svc.state, settings(), registry), raise_server_exceptions=False)


READ_ROUTES = [("GET", "/api/v1/positions"), ("GET", "/api/v1/pnl"), ("GET", "/api/v1/equity"),
               ("GET", "/api/v1/risk"), ("GET", "/api/v1/model"), ("GET", "/api/v1/overview"),
               ("GET", "/openapi.json"), ("GET", "/metrics")]
TRADE_ROUTES = [("POST", "/api/v1/pause"), ("POST", "/api/v1/resume"), ("POST", "/api/v1/kill")]


def test_health_needs_no_key_and_says_little(client, svc):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["cycle"], body["as_of"], body["data_age_s"]) == \
        ("ok", 7, svc.state.snapshot()["as_of"], 0.0)
    assert body == svc.state.health()
    assert not {"equity", "cash", "positions", "weights"} & set(body)  # nothing about the account without a key


@pytest.mark.parametrize("method, path", READ_ROUTES + TRADE_ROUTES)
def test_every_route_refuses_a_missing_or_wrong_key_with_401_json(client, method, path):
    for headers in ({}, {"X-API-Key": "not-a-key-at-all"}, {"Authorization": "Bearer not-a-key-at-all"},
                    {"Authorization": f"Basic {READ_KEY}"}):
        r = client.request(method, path, headers=headers, json={"reason": "test"})
        assert r.status_code == 401, (path, headers)
        assert r.headers["content-type"] == "application/json" and "API key" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("method, path", TRADE_ROUTES)
def test_a_read_key_is_refused_on_trade_routes_with_403_and_nothing_changes(client, svc, method, path):
    r = client.request(method, path, headers={"X-API-Key": READ_KEY}, json={"reason": "try", "flatten": True})
    assert r.status_code == 403 and "needs 'trade'" in r.json()["error"]
    snap = svc.state.snapshot()
    assert not snap["paused"] and not snap["killed"]


@pytest.mark.parametrize("method, path", READ_ROUTES)
def test_read_routes_answer_a_read_key_in_either_header(client, method, path):
    assert client.request(method, path, headers={"X-API-Key": READ_KEY}).status_code == 200
    assert client.request(method, path, headers={"Authorization": f"Bearer {TRADE_KEY}"}).status_code == 200


def test_signals_are_the_strategys_newest_scores_and_weights(client, svc):
    last = svc.results[-1]
    syms = ["SYN01/USDT", "SYN04/USDT"]
    r = client.post("/api/v1/signals", headers={"X-API-Key": READ_KEY}, json={"symbols": syms})
    assert r.status_code == 200
    body = r.json()
    expected = svc.market.signal.loc[last["as_of"], syms]
    assert body["scores"] == pytest.approx(expected.to_dict())
    assert body["weights"] == pytest.approx({s: last["target_weights"].get(s, 0.0) for s in syms})
    assert body["as_of"] == svc.state.snapshot()["as_of"] and body["model_version"]
    unknown = client.post("/api/v1/signals", headers={"X-API-Key": READ_KEY}, json={"symbols": ["NOPE/USDT"]})
    assert unknown.status_code == 404 and "unknown symbol(s) NOPE/USDT" in unknown.json()["error"]
    empty = client.post("/api/v1/signals", headers={"X-API-Key": READ_KEY}, json={"symbols": []})
    assert empty.status_code == 422 and empty.json()["error"].startswith("invalid request: symbols:")
    broken = client.post("/api/v1/signals", headers={"X-API-Key": READ_KEY, "Content-Type": "application/json"},
                         content=b"{not json")
    assert broken.status_code == 422 and "Traceback" not in broken.text


def test_reads_match_the_state_and_the_journal(client, svc):
    h = {"X-API-Key": READ_KEY}
    eq = client.get("/api/v1/equity", headers=h).json()["points"]
    assert [p["equity"] for p in eq] == pytest.approx([r["equity"] for r in svc.results])
    pnl = client.get("/api/v1/pnl", headers=h).json()
    assert pnl["pnl_quote"] == pytest.approx(svc.results[-1]["equity"] - svc.results[0]["equity"])
    assert pnl["return"] == pytest.approx(pnl["pnl_quote"] / svc.results[0]["equity"])
    pos = client.get("/api/v1/positions", headers=h).json()
    assert {p["symbol"] for p in pos["positions"]} == {s for s, q in svc.results[-1]["positions"].items() if q}
    assert client.get("/api/v1/model", headers=h).json()["model_version"] == svc.state.snapshot()["model_version"]
    risk = client.get("/api/v1/risk", headers=h).json()
    assert risk["paused"] is False and set(risk["breakers"]) >= {"drawdown", "daily_loss"}


def test_the_rate_limit_answers_429_with_retry_after_after_the_burst(svc):
    c = TestClient(create_app(svc.state, settings(rate_per_minute=6, burst=3)))
    codes = [c.get("/api/v1/model", headers={"X-API-Key": READ_KEY}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = c.get("/api/v1/model", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["error"]
    assert c.get("/api/v1/model", headers={"X-API-Key": TRADE_KEY}).status_code == 200   # another key's bucket
    # guessing keys is limited per address too
    guesses = [c.get("/api/v1/model", headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(5)]
    assert guesses == [401, 401, 401, 429, 429]


def test_controls_go_through_the_state_and_the_runs_journal_flags(tmp_path):
    svc = replay_service(tmp_path, cycles=4)
    try:
        c = TestClient(create_app(svc.state, settings()), raise_server_exceptions=False)
        h = {"X-API-Key": TRADE_KEY}
        assert c.post("/api/v1/pause", headers=h, json={}).status_code == 422     # a reason is required
        r = c.post("/api/v1/pause", headers=h, json={"reason": "maintenance"})
        assert r.status_code == 200 and r.json()["paused"] is True
        assert svc.journal.run_state("service-test")["paused"]
        r = c.post("/api/v1/resume", headers=h, json={"reason": "done"})
        assert r.status_code == 200 and r.json()["paused"] is False
        assert svc.state.positions()
        r = c.post("/api/v1/kill", headers=h, json={"reason": "stop now", "flatten": True})
        held = sum(1 for p in svc.state.positions() if abs(p["value_quote"] or 0) > 1.0)
        assert r.status_code == 200 and r.json()["killed"] is True
        assert r.json()["flatten_orders"] == held > 0           # one closing order per held position
        assert svc.journal.run_state("service-test")["killed"]
    finally:
        svc.close()


def test_an_unexpected_failure_is_a_json_500_without_a_traceback(svc, monkeypatch, caplog):
    c = TestClient(create_app(svc.state, settings()), raise_server_exceptions=False)
    monkeypatch.setattr(svc.state, "target_weights", lambda: (_ for _ in ()).throw(RuntimeError("boom inside")))
    r = c.get("/api/v1/positions", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 500 and r.json() == {
        "error": "internal error (RuntimeError); the service log has the details"}
    assert "boom inside" in caplog.text
    missing = c.get("/api/v1/nothing-here", headers={"X-API-Key": READ_KEY})
    assert missing.status_code == 404 and missing.json()["error"] == "no route GET /api/v1/nothing-here"


def test_the_openapi_schema_lists_every_api_route(client):
    app = client.app
    spec = client.get("/openapi.json", headers={"X-API-Key": READ_KEY}).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    routed = {(m, r.path) for r in app.routes if getattr(r, "include_in_schema", False)
              for m in r.methods if m != "HEAD"}
    assert documented == routed
    assert {p for _, p in documented} >= {
        "/health", "/metrics", "/openapi.json", "/api/v1/signals", "/api/v1/positions", "/api/v1/pnl",
        "/api/v1/equity", "/api/v1/risk", "/api/v1/model", "/api/v1/pause", "/api/v1/resume", "/api/v1/kill",
        "/api/v1/stream", "/api/v1/graph", "/api/v1/graph/times", "/api/v1/graph/builds", "/api/v1/cypher"}
    assert client.get("/redoc").status_code == 404     # no CDN-backed docs pages
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in client.get("/static/docs.js").text


def test_the_pages_load_nothing_from_the_internet(client):
    import re

    for f in sorted(STATIC_DIR.iterdir()):
        text = f.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), f.name
        assert not re.search(r"""(fetch|import)\(\s*["'](https?:)?//""", text), f.name
    js = client.get("/static/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()


def test_metrics_need_a_read_key_or_a_localhost_scrape_when_opened(svc, registry):
    c = TestClient(create_app(svc.state, settings(), registry))
    assert c.get("/metrics").status_code == 401
    r = c.get("/metrics", headers={"Authorization": f"Bearer {READ_KEY}"})    # Prometheus' bearer credentials
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    line = next(x for x in r.text.splitlines() if x.startswith("graphwiz_equity "))
    assert float(line.split()[1]) == pytest.approx(svc.state.snapshot()["equity"])
    opened = create_app(svc.state, settings(metrics_open_to_localhost=True), registry)
    assert TestClient(opened, client=("127.0.0.1", 50000)).get("/metrics").status_code == 200
    assert TestClient(opened, client=("10.1.2.3", 50000)).get("/metrics").status_code == 401


def test_no_key_appears_in_any_response_or_log_line(svc, registry, caplog):
    caplog.set_level(logging.DEBUG)
    app = create_app(svc.state, settings(rate_per_minute=600, burst=100), registry)
    bodies: list[str] = []
    with ServedApp(app) as served, httpx.Client(base_url=served.url, timeout=10) as http:
        for key in (READ_KEY, TRADE_KEY, "wrong-key-0123456789-abcdef"):
            h = {"X-API-Key": key}
            for method, path in READ_ROUTES + TRADE_ROUTES + [("GET", f"/?key={key}"), ("GET", "/nothing")]:
                r = http.request(method, path, headers=h, json={"reason": f"because {key}"})
                bodies.append(json.dumps(dict(r.headers)) + r.text)
            r = http.post("/api/v1/signals", headers=h, json={"symbols": ["SYN00/USDT"]})
            bodies.append(r.text)
    # the service's log lines (the test's own HTTP client logs the URLs it requests: not the service's)
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records
                       if not r.name.startswith(("httpx", "httpcore")))
    assert "GET /?key=*** HTTP/1.1" in logged          # the access log ran and saw the redacted query
    assert "refused (401)" in logged and "API pause by key 'ops'" in logged
    for key in (READ_KEY, TRADE_KEY):
        assert key not in "\n".join(bodies).replace(f"because {key}", "")
        assert key not in logged.replace(f"because {key}", "")


def test_the_stream_sends_the_snapshot_then_one_event_per_published_change(tmp_path):
    svc = replay_service(tmp_path, cycles=2)
    try:
        app = create_app(svc.state, settings())
        with ServedApp(app) as served, httpx.Client(base_url=served.url, timeout=10) as http, \
                http.stream("GET", "/api/v1/stream", headers={"X-API-Key": READ_KEY}) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            lines = s.iter_lines()
            first = [next(lines), next(lines)]
            assert first[0] == "event: snapshot" and json.loads(first[1][6:])["cycle"] == 1
            r = http.post("/api/v1/pause", headers={"X-API-Key": TRADE_KEY}, json={"reason": "stream test"})
            assert r.status_code == 200
            nxt = [x for x in (next(lines), next(lines), next(lines)) if x]
            assert nxt[0] == "event: cycle" and json.loads(nxt[1][6:])["paused"] is True
    finally:
        svc.close()
