"""Fixtures of the report tests: a small backtest and walk-forward run, and a headless-Chromium renderer.

The browser is the system Chromium (``$GRAPHWIZ_CHROMIUM`` or ``/usr/bin/chromium``, Debian's ``chromium``),
driven by Playwright's Python API; Playwright never downloads a browser here. Every request that is not a
``file:`` or ``data:`` URL is refused and recorded, so a page that needs the network fails the check instead
of hanging or drawing blank. Screenshots go to the test's temp folder, or to ``$GRAPHWIZ_REPORT_SCREENSHOTS``
when set (never into the checkout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from graphwiz_trader.testkit.browser import CHROMIUM_ARGS, browser_missing, chromium_path


@dataclass
class Rendered:
    """What the browser saw."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    plotly_divs: int = 0
    drawn_divs: int = 0
    undrawn_ids: list[str] = field(default_factory=list)
    overflowing_tables: int = 0
    screenshot: Path | None = None


def render(html: Path, screenshot: Path | None = None, width: int = 1366, timeout_ms: int = 60_000) -> Rendered:
    """Load ``html`` from disk, wait until every plotly div has drawn its svg (or ``timeout_ms``), and
    take a full-page screenshot to ``screenshot`` when given."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    out = Rendered()
    exe = chromium_path()
    if exe is None:
        raise RuntimeError(browser_missing() or "no chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(exe), headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: out.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: out.page_errors.append(str(e)))

            def route(r):  # type: ignore[no-untyped-def]
                if r.request.url.startswith("file:") or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    out.blocked_requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(html.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            check = ("() => Array.from(document.querySelectorAll('div.plotly-graph-div'))"
                     ".every(d => d.querySelector('svg.main-svg') !== null)")
            try:
                page.wait_for_function(check, timeout=timeout_ms)
            except PlaywrightTimeout:
                pass
            out.plotly_divs = page.eval_on_selector_all("div.plotly-graph-div", "ds => ds.length")
            out.undrawn_ids = page.eval_on_selector_all(
                "div.plotly-graph-div", "ds => ds.filter(d => !d.querySelector('svg.main-svg')).map(d => d.id)")
            out.drawn_divs = out.plotly_divs - len(out.undrawn_ids)
            out.overflowing_tables = page.eval_on_selector_all(
                "div.tbl", "ds => ds.filter(d => d.scrollWidth > d.clientWidth + 1).length")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
                out.screenshot = screenshot
        finally:
            browser.close()
    return out


# ------------------------------------------------------------------------------------------------ fixtures

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_market():
    """6 synthetic assets, 40 days of hourly bars."""
    from graphwiz_trader.data.synthetic import SyntheticMarketSettings, generate_synthetic_market

    return generate_synthetic_market(SyntheticMarketSettings(n_assets=6, n_clusters=2, n_bars=24 * 40, seed=11))


@pytest.fixture(scope="session")
def backtest_runs(small_market):
    """Equal-weight (daily rebalance, with costs), its gross-of-costs twin and buy-and-hold, from the
    first decision on (as the runner trims them)."""
    from graphwiz_trader.backtest import BacktestSettings, CostModel, run_backtest
    from graphwiz_trader.backtest.benchmarks import buy_and_hold_targets, equal_weight_targets
    from graphwiz_trader.backtest.engine import MarketPanel, rebalance_times
    from graphwiz_trader.backtest.runner import _from

    panel = MarketPanel.from_bars(small_market.bars)
    close = panel.close_frame()
    settings = BacktestSettings(rebalance="1D")
    dec = rebalance_times(panel.index, panel.bar, "1D")
    dec = dec[dec >= panel.index[48]]
    ew = equal_weight_targets(close, dec, 48, 0.98)
    first = panel.index.get_loc(dec[0]) + 1
    runs = {
        "strategy": run_backtest(panel, ew, settings, name="strategy"),
        "strategy_gross_of_costs": run_backtest(panel, ew, settings.model_copy(update={"costs": CostModel.zero()}),
                                                name="strategy_gross_of_costs"),
        "buy_and_hold_SYN00/USDT": run_backtest(panel, buy_and_hold_targets(close, "SYN00/USDT", dec[0], 0.98),
                                                settings, name="buy_and_hold_SYN00/USDT"),
    }
    return {k: _from(v, first) for k, v in runs.items()}


def planted_panel(n_bars: int = 700, n_inst: int = 10, seed: int = 3):
    """Features, direction label and demeaned 1-bar forward return of a panel with a persistent planted
    signal (AR(1), phi 0.9) seen through ``G_leadlag`` (little noise) and ``KMID0`` (more noise)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_bars, freq="h", tz="UTC")
    inst = [f"SYN{i:02d}USDT" for i in range(n_inst)]
    a = np.zeros((n_bars, n_inst))
    for t in range(1, n_bars):
        a[t] = 0.9 * a[t - 1] + rng.normal(0, 1, n_inst) * np.sqrt(1 - 0.81)
    r_next = 0.002 * a + rng.normal(0, 0.01, (n_bars, n_inst))
    idx = pd.MultiIndex.from_product([dates, inst], names=["datetime", "instrument"])
    fwd = pd.Series(r_next.ravel(), index=idx, name="fwd")
    fwd = fwd - fwd.groupby(level="datetime").transform("mean")
    x = pd.DataFrame(rng.normal(size=(len(idx), 6)), index=idx,
                     columns=["ROC5", "STD20", "G_wdeg", "G_pagerank", "G_nbr_mom_1", "G_mkt_regime_high_vol"])
    x["G_leadlag"] = a.ravel() + rng.normal(0, 1.0, len(idx))
    x["KMID0"] = a.ravel() + rng.normal(0, 2.0, len(idx))
    return x, (fwd > 0).astype(float), fwd


@pytest.fixture(scope="session")
def walkforward_runs():
    """Baseline (no G_* columns) and hybrid walk-forward runs on :func:`planted_panel`, their
    comparison and the forward returns."""
    from graphwiz_trader.models.targets import LabelSpec
    from graphwiz_trader.research.compare import compare_results
    from graphwiz_trader.research.experiment import WalkForwardSettings, run_walkforward

    x, label, fwd = planted_panel()
    cfg = WalkForwardSettings(train_len=300, test_len=100, label=LabelSpec("direction", 1, relative=True),
                            num_boost_round=40)
    base = run_walkforward(x[[c for c in x.columns if not c.startswith("G_")]], label, cfg, fwd, name="alpha158",
                           progress=False)
    hyb = run_walkforward(x, label, cfg, fwd, name="hybrid", progress=False)
    return {"alpha158": base, "hybrid": hyb}, compare_results(base, hyb), fwd


@pytest.fixture
def screenshot_dir(tmp_path):
    """``$GRAPHWIZ_REPORT_SCREENSHOTS`` when set (e.g. the run folder), else the test's temp folder."""
    env = os.environ.get("GRAPHWIZ_REPORT_SCREENSHOTS")
    return Path(env) if env else tmp_path


def _figures(html: str) -> dict[str, list[dict]]:
    """div id -> the trace list a report passes to ``Plotly.newPlot``."""
    import json
    import re

    out = {}
    dec = json.JSONDecoder()
    for m in re.finditer(r'Plotly\.newPlot\(\s*"(fig-\d+)",\s*', html):
        out[m.group(1)], _ = dec.raw_decode(html, m.end())
    return out


@pytest.fixture
def plotly_figures():
    """A function: report HTML -> {div id: traces}."""
    return _figures


@pytest.fixture(scope="session")
def browser():
    """:func:`render`, or a skip saying why there is no browser (no playwright, no chromium)."""
    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    return render
