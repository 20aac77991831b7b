"""The dashboard and the graph explorer in headless Chromium (Debian's, driven by Playwright), served by uvicorn
on 127.0.0.1 from a real replay ServiceState and a graph store holding a graph built from a SYNTHETIC market:
they render real data, update live from the event stream, refuse a CREATE in the Cypher box, log no console
error and request nothing from any other host. Screenshots go to the test's temp folder and to
$GRAPHWIZ_SERVICE_SCREENSHOTS (default /work/notes/screenshots when that folder's parent exists)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from graphwiz_trader.config.settings import ApiSettings
from graphwiz_trader.data.synthetic import generate_synthetic_market
from graphwiz_trader.graph.builders.regimes import RegimeSettings
from graphwiz_trader.graph.pipeline import GraphBuildSettings, build_graph, write_graph
from graphwiz_trader.service.api import create_app
from graphwiz_trader.testkit.browser import (
    CHROMIUM_ARGS,
    browser_missing,
    chromium_path,
)
from graphwiz_trader.testkit.service import ServedApp, replay_service

READ_KEY = "dashboard-read-key-0123456789"
TRADE_KEY = "dashboard-trade-key-0123456789"


pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


def _screenshot(page, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """A full-page screenshot into the test's temp folder, copied out (see the module docstring)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get("GRAPHWIZ_SERVICE_SCREENSHOTS")
    folder = Path(target) if target else Path("/work/notes/screenshots")
    if target or folder.parent.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, folder / shot.name)
        print(f"screenshot: {folder / shot.name}")
    print(f"screenshot: {shot}")


@pytest.fixture(scope="module")
def served(_graph_store_session, tmp_path_factory):
    store = _graph_store_session
    store.clear()
    market = generate_synthetic_market(n_assets=10, n_bars=24 * 30, seed=21)
    regimes = RegimeSettings(min_train=300, refit_every=100, burn_in=100, asset_vol_window=24, asset_min_history=100)
    build = build_graph(market.bars, GraphBuildSettings(window=120, stride=24, top_k=4, regimes=regimes))
    write_graph(store, build, "binance")
    live = GraphBuildSettings(window=120, stride=24, top_k=4, regimes=regimes)   # the strategy's own live graph
    svc = replay_service(tmp_path_factory.mktemp("dash"), days=30, start_bar=500, cycles=30, graph_store=store,
                         graph_build=build.build_id, graph_spec=live)
    keys = [f"{hashlib.sha256(k.encode()).hexdigest()} {s} {n}"
            for k, s, n in ((READ_KEY, "read", "dash"), (TRADE_KEY, "trade", "ops"))]
    app = create_app(svc.state, ApiSettings(keys=keys))
    with ServedApp(app, access_log=False) as srv:
        yield srv, svc, build
    svc.close()


class Watch:
    """Console errors, page errors and requests to hosts other than 127.0.0.1 (refused)."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.console: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", lambda m: self.console.append((m.text, m.location.get("url", "")))
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.route("**/*", self._route)

    def _route(self, route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if url.startswith("data:") or urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium_path()), headless=True, args=list(CHROMIUM_ARGS))
        yield b
        b.close()


def test_the_dashboard_renders_real_data_and_updates_live(served, browser, tmp_path):
    srv, svc, _ = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    watch = Watch(page)
    page.goto(f"{srv.url}/?key={READ_KEY}", wait_until="load")
    assert "key=" not in page.url                                        # moved into sessionStorage
    assert page.evaluate("sessionStorage.getItem('graphwiz_api_key')") == READ_KEY
    page.wait_for_function("document.querySelector('#equity-chart svg.main-svg') !== null "
                           "&& document.querySelector('#drawdown-chart svg.main-svg') !== null "
                           "&& document.querySelector('#weights-chart svg.main-svg') !== null", timeout=20_000)
    page.wait_for_function("document.getElementById('live').textContent === 'live'", timeout=10_000)
    snap = svc.state.snapshot()
    assert page.text_content("#c-cycle") == str(snap["cycle"])
    assert page.text_content("#c-equity") == f"{snap['equity']:,.2f}"
    held = [p["symbol"] for p in svc.state.positions()]
    rows = page.eval_on_selector_all("#positions tbody tr td:first-child", "tds => tds.map(t => t.textContent)")
    assert rows == held and held
    bars = page.evaluate("(() => { const d = document.getElementById('weights-chart'); const ax = d._fullLayout.xaxis;"
                         " return d.data[0].x.map((s, i) => [ax._categories.indexOf(s), s, d.data[0].y[i]]); })()")
    weights = svc.state.target_weights()
    assert sorted((pos, sym) for pos, sym, _ in bars) == list(enumerate(sorted(weights, key=lambda s: -weights[s])))
    assert all(y == pytest.approx(weights[sym]) for _, sym, y in bars)     # each bar stands at its own symbol
    # the market regime and the graph features of the strategy's live graph, execution quality from the fills
    assert page.text_content("#c-regime") == snap["regime"] and snap["regime"] in svc.strategy.graph.regime_names
    top = svc.state.top_graph_features()
    cells = page.eval_on_selector_all("#features tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => "
                                      "c.textContent))")
    assert [c[:2] for c in cells] == [[f["feature"], f["symbol"]] for f in top] and len(top) == 10
    xq = svc.state.execution_quality()
    assert xq["fills"] > 0 and page.text_content("#x-fills") == str(xq["fills"])
    assert page.text_content("#x-mean") == f"{xq['mean_bps']:.2f} bps" and xq["mean_bps"] > 0
    n_points = page.evaluate("document.getElementById('equity-chart').data[0].x.length")
    assert n_points == len(svc.state.equity_curve()) == 30
    # a cycle run by the service (in the server's event loop) reaches the page through the stream
    asyncio.run_coroutine_threadsafe(svc.run_cycles(1), srv.loop).result(timeout=30)
    page.wait_for_function(f"document.getElementById('c-cycle').textContent === '{snap['cycle'] + 1}'",
                           timeout=10_000)
    page.wait_for_function("document.getElementById('equity-chart').data[0].x.length === 31", timeout=10_000)
    r = httpx.post(f"{srv.url}/api/v1/pause", headers={"X-API-Key": TRADE_KEY}, json={"reason": "dashboard test"})
    assert r.status_code == 200
    page.wait_for_function("document.getElementById('c-state').textContent === 'paused'", timeout=10_000)
    _screenshot(page, tmp_path, "service_dashboard.png")
    httpx.post(f"{srv.url}/api/v1/resume", headers={"X-API-Key": TRADE_KEY}, json={"reason": "dashboard test"})
    assert watch.console == [] and watch.page_errors == []
    assert watch.foreign == [], f"the page asked other hosts for {watch.foreign}"
    page.close()


def test_without_a_key_the_dashboard_asks_for_one(served, browser):
    srv, _, _ = served
    page = browser.new_page()
    watch = Watch(page)
    page.goto(f"{srv.url}/", wait_until="load")
    page.wait_for_selector("#message.show")
    assert "Enter an API key" in page.text_content("#message")
    page.fill("#login input", "wrong-key-xyz")
    page.click("#login button[type=submit]")
    page.wait_for_function("document.getElementById('message').textContent.includes('not valid')", timeout=10_000)
    assert [u for _, u in watch.console if "/api/v1/" not in u] == [] and watch.page_errors == []
    assert watch.foreign == []
    page.close()


def test_the_explorer_draws_the_graph_moves_in_time_and_refuses_create(served, browser, tmp_path):
    srv, _, build = served
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    watch = Watch(page)
    page.goto(f"{srv.url}/explorer?key={READ_KEY}", wait_until="load")
    page.wait_for_function("document.querySelector('#graph svg.main-svg') !== null "
                           "&& document.getElementById('g-nodes').textContent === '10'", timeout=20_000)
    last = build.snapshots[-1]
    assert page.text_content("#g-asof") == last.as_of.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert page.text_content("#g-edges") == str(len(last.edges))
    assert page.evaluate("document.getElementById('slider').max") == str(len(build.snapshots) - 1)
    # move the slider back to the 10th snapshot
    page.evaluate("(() => { const s = document.getElementById('slider'); s.value = 9;"
                  " s.dispatchEvent(new Event('input')); })()")
    tenth = build.snapshots[9]
    page.wait_for_function(f"document.getElementById('g-asof').textContent === "
                           f"'{tenth.as_of.strftime('%Y-%m-%d %H:%M:%S UTC')}'", timeout=10_000)
    assert page.text_content("#g-edges") == str(len(tenth.edges))
    colours = page.evaluate("(() => { const d = document.getElementById('graph').data;"
                            " return new Set(d[d.length - 1].marker.color).size; })()")
    assert colours == len(set(tenth.communities.values()))
    # a read query fills the table
    page.click("#cypher-run")
    page.wait_for_function("document.querySelectorAll('#cypher-result tbody tr').length > 0", timeout=10_000)
    assert page.eval_on_selector_all("#cypher-result thead th", "ts => ts.map(t => t.textContent)") == [
        "asset_a", "asset_b", "rho"]
    # a CREATE is refused with the server's message, and nothing is written
    page.fill("#cypher-query", "CREATE (n:Asset {symbol: 'EVIL/USDT'}) RETURN n")
    page.click("#cypher-run")
    page.wait_for_selector("#cypher-error.show", timeout=10_000)
    assert "read-only: refused CREATE" in page.text_content("#cypher-error")
    store = served[1].state.graph_store
    assert store.query("MATCH (a:Asset {symbol: 'EVIL/USDT'}) RETURN count(a) AS n")[0]["n"] == 0
    _screenshot(page, tmp_path, "service_explorer.png")
    # the one console error is the browser's note of the refused request (HTTP 400 from /api/v1/cypher)
    assert all(u.endswith("/api/v1/cypher") and "400" in t for t, u in watch.console), watch.console
    assert len(watch.console) == 1 and watch.page_errors == [] and watch.foreign == []
    page.close()


def test_the_docs_page_lists_the_routes_offline(served, browser, tmp_path):
    srv, _, _ = served
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    watch = Watch(page)
    page.goto(f"{srv.url}/docs?key={READ_KEY}", wait_until="load")
    page.wait_for_function("document.querySelectorAll('.route').length >= 17", timeout=10_000)
    _screenshot(page, tmp_path, "service_docs.png")
    assert watch.console == [] and watch.page_errors == [] and watch.foreign == []
    page.close()
